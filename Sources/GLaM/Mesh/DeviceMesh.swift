// A virtual mesh of TPU cores (see the "Sharding over TPU cores" article): a shape with named axes, as praxis names
// them (`replica`, `data`, `mdl`). Core ids are row-major over the shape. Each core's data lives in
// its own shard; collectives along an axis (Collectives.swift) are the only way data moves between
// cores, and every byte they move is counted (CommunicationLedger).

import Synchronization

/// A mesh that cannot be built or used as asked.
public struct MeshError: Error, CustomStringConvertible, Equatable {
    /// The message.
    public let description: String
    /// An error with `message`.
    public init(_ message: String) { description = message }
}

/// A virtual mesh of cores with named axes.
public struct DeviceMesh: Sendable, Equatable {
    /// Cores along each axis.
    public let shape: [Int]
    /// The axes' names, e.g. `["data", "mdl"]`.
    public let axisNames: [String]

    /// A mesh of `shape` with one name per axis.
    public init(shape: [Int], axisNames: [String]) throws(MeshError) {
        guard !shape.isEmpty, shape.count == axisNames.count else {
            throw MeshError("a mesh needs one name per axis: shape \(shape), names \(axisNames)")
        }
        guard shape.allSatisfy({ $0 >= 1 }) else { throw MeshError("mesh axes must have at least one core: \(shape)") }
        guard Set(axisNames).count == axisNames.count else { throw MeshError("mesh axis names must differ: \(axisNames)") }
        self.shape = shape
        self.axisNames = axisNames
    }

    /// The axis GLaM splits batch rows, routing groups and experts over (praxis' name).
    public static let dataAxisName = "data"
    /// The axis GLaM splits the experts' hidden units H over (praxis' name).
    public static let modelAxisName = "mdl"

    /// A `data × mdl` mesh of d·m cores, the mesh GLaM trains on (`MeshLayout`, `MeshTrainer`).
    public init(dataCores d: Int, modelCores m: Int) throws(MeshError) {
        try self.init(shape: [d, m], axisNames: [Self.dataAxisName, Self.modelAxisName])
    }

    /// The number of cores.
    public var coreCount: Int { shape.reduce(1, *) }

    /// The position of axis `name`.
    public func axis(_ name: String) throws(MeshError) -> Int {
        guard let index = axisNames.firstIndex(of: name) else { throw MeshError("the mesh has no axis '\(name)' (axes: \(axisNames))") }
        return index
    }

    /// The coordinates of `core` (row-major).
    public func coordinates(of core: Int) -> [Int] {
        var rest = core
        var out = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() {
            out[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return out
    }

    /// The core at `coordinates`.
    public func core(at coordinates: [Int]) -> Int {
        coordinates.enumerated().reduce(0) { $0 * shape[$1.offset] + $1.element }
    }

    /// The cores that differ from `core` only along `axis`, in increasing coordinate: the group a
    /// collective along `axis` runs in. `core` itself is at its own coordinate's position.
    public func group(of core: Int, along axis: Int) -> [Int] {
        var c = coordinates(of: core)
        return (0..<shape[axis]).map { k in
            c[axis] = k
            return self.core(at: c)
        }
    }

    /// All groups along `axis`, each in increasing coordinate, ordered by their first core.
    public func groups(along axis: Int) -> [[Int]] {
        (0..<coreCount).filter { coordinates(of: $0)[axis] == 0 }.map { group(of: $0, along: axis) }
    }

    /// Runs `body(core)` for every core, in parallel (`Parallelism.forEachTask`), and returns the results in
    /// core order. Cores share nothing but what `body` is given.
    public func run<T: Sendable>(_ body: @Sendable (_ core: Int) -> T) -> [T] {
        // One slot per core, each written once; the lock is taken once per core.
        let results = Mutex([T?](repeating: nil, count: coreCount))
        Parallelism.forEachTask(coreCount) { core in
            let value = body(core)
            results.withLock { $0[core] = value }
        }
        return results.withLock { slots in slots.map { $0! } }
    }
}
