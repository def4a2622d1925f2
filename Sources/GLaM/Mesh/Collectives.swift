// Collectives along one axis of a `DeviceMesh`, on per-core shards (one tensor per core, in core
// order), with every byte a core sends counted per axis. Reductions sum in increasing coordinate
// order, so every member of a group ends with the same bits, whatever the scheduling.
//
// Bytes are counted as the bandwidth-optimal algorithms send them, for a group of n cores and a
// shard of b bytes: all-reduce (ring) 2·(n−1)/n·b, all-gather (n−1)·b, reduce-scatter (n−1)/n·b,
// all-to-all (n−1)/n·b (a core keeps its own chunk). A group of one core sends nothing.

import Synchronization

/// The bytes each core has sent along each mesh axis.
public final class CommunicationLedger: Sendable {
    private let sent = Mutex<[String: [Int]]>([:])

    /// An empty ledger.
    public init() {}

    /// Adds `bytes` sent by `core` along `axis`, on a mesh of `coreCount` cores.
    package func record(axis: String, core: Int, bytes: Int, coreCount: Int) {
        sent.withLock { table in
            var row = table[axis] ?? [Int](repeating: 0, count: coreCount)
            row[core] += bytes
            table[axis] = row
        }
    }

    /// Bytes sent per core along `axis` (zeros if none).
    public func bytesSent(along axis: String, coreCount: Int) -> [Int] {
        sent.withLock { $0[axis] ?? [Int](repeating: 0, count: coreCount) }
    }

    /// Total bytes sent by all cores along all axes.
    public var totalBytes: Int { sent.withLock { $0.values.reduce(0) { $0 + $1.reduce(0, +) } } }

    /// Forgets everything recorded.
    public func reset() { sent.withLock { $0 = [:] } }
}

extension DeviceMesh {
    func checkShards<Scalar>(_ shards: [Tensor<Scalar>], _ what: String) throws(MeshError) {
        guard shards.count == coreCount else { throw MeshError("\(what): \(shards.count) shards for \(coreCount) cores") }
    }

    /// All-reduce (sum) along `axis`: each core receives the sum of its group's shards, summed in
    /// increasing coordinate order. Shards of a group must have equal shapes.
    public func allReduce<Scalar: TensorScalar>(
        _ shards: [Tensor<Scalar>], along axisName: String, ledger: CommunicationLedger? = nil
    ) throws(MeshError) -> [Tensor<Scalar>] {
        try checkShards(shards, "all-reduce")
        let axis = try self.axis(axisName)
        var out = shards
        for group in groups(along: axis) {
            let shape = shards[group[0]].shape
            guard group.allSatisfy({ shards[$0].shape == shape }) else {
                throw MeshError("all-reduce along \(axisName): shard shapes differ")
            }
            var total = shards[group[0]]
            for core in group.dropFirst() { total = total + shards[core] }
            let n = group.count
            for core in group {
                out[core] = total
                if n > 1 {
                    let bytes = total.scalarCount * MemoryLayout<Scalar>.size
                    ledger?.record(axis: axisName, core: core, bytes: 2 * (n - 1) * bytes / n, coreCount: coreCount)
                }
            }
        }
        return out
    }

    /// All-gather along `axis`: each core receives its group's shards joined along tensor axis
    /// `dimension`, in coordinate order.
    package func allGather(
        _ shards: [Tensor<Float>], along axisName: String, concatenatingAlong dimension: Int, ledger: CommunicationLedger? = nil
    ) throws(MeshError) -> [Tensor<Float>] {
        try checkShards(shards, "all-gather")
        let axis = try self.axis(axisName)
        var out = shards
        for group in groups(along: axis) {
            let joined = Tensor.concatenated(group.map { shards[$0] }, alongAxis: dimension)
            for core in group {
                out[core] = joined
                ledger?.record(axis: axisName, core: core, bytes: (group.count - 1) * shards[core].scalarCount * 4, coreCount: coreCount)
            }
        }
        return out
    }

    /// Reduce-scatter along `axis`: the group's shards are summed (in coordinate order) and split
    /// along tensor axis `dimension`; the core at coordinate k receives part k.
    package func reduceScatter(
        _ shards: [Tensor<Float>], along axisName: String, splittingAlong dimension: Int, ledger: CommunicationLedger? = nil
    ) throws(MeshError) -> [Tensor<Float>] {
        try checkShards(shards, "reduce-scatter")
        let axis = try self.axis(axisName)
        var out = shards
        for group in groups(along: axis) {
            let n = group.count
            guard group.allSatisfy({ shards[$0].shape == shards[group[0]].shape }) else {
                throw MeshError("reduce-scatter along \(axisName): shard shapes differ")
            }
            var summed = shards[group[0]]
            for core in group.dropFirst() { summed = summed + shards[core] }
            guard summed.shape[summed.normalizedAxis(dimension)] % n == 0 else {
                throw MeshError("reduce-scatter along \(axisName): dimension \(dimension) of \(summed.shape) does not split into \(n)")
            }
            let parts = summed.split(alongAxis: dimension, into: n)
            for (k, core) in group.enumerated() {
                out[core] = parts[k]
                if n > 1 { ledger?.record(axis: axisName, core: core, bytes: (n - 1) * parts[k].scalarCount * 4, coreCount: coreCount) }
            }
        }
        return out
    }

    /// All-to-all along `axis`: every core splits its shard along `splitDimension` into n chunks and
    /// sends chunk j to the group's core j; each core joins the chunks it receives along
    /// `concatDimension` in sender order. (GShard's dispatch: G-sharded `[G, E, C, M]` becomes
    /// E-sharded with split dimension E and concatenation dimension G.)
    public func allToAll(
        _ shards: [Tensor<Float>], along axisName: String, splitDimension: Int, concatDimension: Int, ledger: CommunicationLedger? = nil
    ) throws(MeshError) -> [Tensor<Float>] {
        try checkShards(shards, "all-to-all")
        let axis = try self.axis(axisName)
        var out = shards
        for group in groups(along: axis) {
            let n = group.count
            var chunks: [[Tensor<Float>]] = []
            for core in group {
                let shard = shards[core]
                guard shard.rank > max(splitDimension, concatDimension), shard.shape[splitDimension] % n == 0 else {
                    throw MeshError("all-to-all along \(axisName): dimension \(splitDimension) of \(shard.shape) does not split into \(n)")
                }
                chunks.append(shard.split(alongAxis: splitDimension, into: n))
                if n > 1 { ledger?.record(axis: axisName, core: core, bytes: (n - 1) * shard.scalarCount * 4 / n, coreCount: coreCount) }
            }
            for (j, core) in group.enumerated() {
                out[core] = Tensor.concatenated((0..<n).map { chunks[$0][j] }, alongAxis: concatDimension)
            }
        }
        return out
    }
}
