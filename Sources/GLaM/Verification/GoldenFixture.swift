// Golden fixtures (see the "Golden fixtures" article): safetensors files whose metadata says which
// computation they check, with inputs, parameters and expected outputs from an independent reference.
//
// Loading validates the envelope (format, version, kind, config JSON, tolerance JSON); each kind
// (FixtureKinds.swift) validates its own inputs. Strictly: every config key a kind reads must be
// present (null where a value is optional), and every tensor must be one the kind reads, so that a
// misspelt `expected.combined` is an error, not a silently skipped check. A malformed fixture is a
// `FixtureError` (exit 2 in `glam verify`); a computed value outside tolerance is a failed
// `TensorComparison` (exit 1).

import Foundation

/// A fixture that cannot be run: which file, and why.
public struct FixtureError: Error, CustomStringConvertible {
    /// The fixture file.
    public let file: String
    /// What is wrong, in one line.
    public let reason: String

    /// An error about `file`.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    /// `file: reason`.
    public var description: String { "\(file): \(reason)" }
}

/// A pass criterion `|actual − expected| ≤ absolute + relative · |expected|` for every element.
public struct Tolerance: Sendable, Equatable, CustomStringConvertible {
    /// The absolute part (atol).
    public var absolute: Double
    /// The relative part (rtol).
    public var relative: Double

    /// A tolerance.
    public init(absolute: Double, relative: Double) {
        self.absolute = absolute
        self.relative = relative
    }

    /// `atol A, rtol R`.
    public var description: String { "atol \(absolute), rtol \(relative)" }
}

/// One expected tensor compared with the computed one.
public struct TensorComparison: Sendable {
    /// The expected tensor's name (`expected.…`).
    public let name: String
    /// The largest |actual − expected| (infinity when shapes differ or a value is not finite).
    public let maxAbsoluteDifference: Double
    /// The tolerance applied.
    public let tolerance: Tolerance
    /// Whether every element is within tolerance (and the shapes agree).
    public let passed: Bool
    /// Why it failed beyond the numbers (e.g. a shape mismatch), if anything.
    public let detail: String?

    /// A comparison that failed for a structural reason (the expected tensor has no counterpart).
    public init(name: String, failure: String, tolerance: Tolerance) {
        self.name = name
        self.tolerance = tolerance
        maxAbsoluteDifference = .infinity
        passed = false
        detail = failure
    }

    /// Compares `actual` with `expected` elementwise.
    public init(name: String, actual: Tensor<Float>, expected: Tensor<Float>, tolerance: Tolerance) {
        self.name = name
        self.tolerance = tolerance
        guard actual.shape == expected.shape else {
            maxAbsoluteDifference = .infinity
            passed = false
            detail = "shape \(actual.shape) computed, \(expected.shape) expected"
            return
        }
        var worst = 0.0
        var ok = true
        var firstBad: String? = nil
        for (index, (a, e)) in zip(actual.scalars, expected.scalars).enumerated() {
            let difference = abs(Double(a) - Double(e))
            let within = difference <= tolerance.absolute + tolerance.relative * abs(Double(e))
            if !within || !difference.isFinite {
                if ok { firstBad = "first mismatch at \(Self.index(index, in: expected.shape)): \(a) computed, \(e) expected" }
                ok = false
            }
            worst = max(worst, difference.isNaN ? .infinity : difference)
        }
        maxAbsoluteDifference = worst
        passed = ok
        detail = firstBad
    }

    /// The multi-dimensional index `[i, j, …]` of row-major flat index `flat` in `shape`.
    static func index(_ flat: Int, in shape: [Int]) -> [Int] {
        var rest = flat
        var index = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }
}

/// The expected tensors a fixture's kind computed (what `glam fixture` writes).
final class ComputedTensors: @unchecked Sendable {
    private(set) var tensors: [String: Tensor<Float>] = [:]
    func record(_ name: String, _ tensor: Tensor<Float>) { tensors[name] = tensor }
}

/// The names a fixture's kind has looked at (present or not): what it knows.
final class FixtureReads: @unchecked Sendable {
    private(set) var names: Set<String> = []
    func note(_ name: String) { names.insert(name) }
}

/// A loaded, envelope-validated golden fixture.
///
/// ```swift
/// let fixture = try GoldenFixture(contentsOf: URL(fileURLWithPath: "Fixtures/moe/top2_gating_spec_cf1.safetensors"))
/// let result = try fixture.run()  // recomputes every expected tensor
/// for comparison in result.comparisons {
///     print(comparison.name, comparison.passed, comparison.maxAbsoluteDifference)
/// }
/// ```
public struct GoldenFixture {
    /// The file it came from.
    public let file: String
    /// Which computation it checks (`top2_gating`, `moe_layer`, …).
    public let kind: String
    /// What produced the expected values.
    public let source: String
    /// The tensors, by name.
    public let tensors: [String: SafeTensor]
    /// The kind's settings (the `config` JSON object).
    let config: [String: Any]
    /// Per-tensor tolerances given by the fixture.
    let tolerances: [String: Tolerance]
    /// The tensor names the kind has read or looked for.
    let reads = FixtureReads()
    /// Every expected tensor the kind computed while running, present in the file or not.
    let computed = ComputedTensors()

    /// Whether a safetensors file's metadata marks it as a golden fixture.
    public static func isFixture(_ file: SafeTensorsFile) -> Bool { file.metadata["format"] == "glam-fixture" }

    /// Loads and validates the fixture at `url`.
    public init(contentsOf url: URL) throws(FixtureError) {
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(contentsOf: url)
        } catch {
            throw FixtureError(file: url.path, reason: error.reason)
        }
        try self.init(file, name: url.path)
    }

    /// Validates a fixture already read; `name` labels errors.
    public init(_ file: SafeTensorsFile, name: String) throws(FixtureError) {
        func fail(_ reason: String) -> FixtureError { FixtureError(file: name, reason: reason) }
        let metadata = file.metadata
        guard metadata["format"] == "glam-fixture" else {
            throw fail(
                "not a golden fixture (__metadata__ format is \(metadata["format"].map { "'\($0)'" } ?? "missing"), expected 'glam-fixture')"
            )
        }
        guard metadata["version"] == "1" else {
            throw fail("unsupported fixture version \(metadata["version"] ?? "(missing)") (this glam reads version 1)")
        }
        guard let kind = metadata["kind"] else { throw fail("__metadata__ has no kind") }
        guard let configText = metadata["config"] else { throw fail("__metadata__ has no config") }
        guard let config = (try? JSONSerialization.jsonObject(with: Data(configText.utf8))) as? [String: Any] else {
            throw fail("config is not a JSON object")
        }
        var tolerances: [String: Tolerance] = [:]
        if let toleranceText = metadata["tolerance"] {
            // The strict reader: a boolean is not a number here (Foundation's reader would give
            // `true` as 1), and NaN is not JSON.
            guard case .object(let map)? = try? parseStrictJSON(Array(toleranceText.utf8)) else {
                throw fail("tolerance is not a JSON object")
            }
            func number(_ value: StrictJSONValue) -> Double? {
                switch value {
                case .integer(let n): Double(n)
                case .float(let x): x
                default: nil
                }
            }
            for (tensor, value) in map {
                guard case .array(let pair) = value, pair.count == 2, let atol = number(pair[0]), let rtol = number(pair[1]),
                    atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite
                else { throw fail("tolerance for \(tensor) is not [atol, rtol] with non-negative numbers") }
                tolerances[tensor] = Tolerance(absolute: atol, relative: rtol)
            }
        }
        for tensorName in file.tensors.keys
        where !(tensorName.hasPrefix("input.") || tensorName.hasPrefix("param.") || tensorName.hasPrefix("expected.")) {
            throw fail("tensor \(tensorName) does not start with input., param. or expected.")
        }
        self.file = name
        self.kind = kind
        self.source = metadata["source"] ?? ""
        self.tensors = file.tensors
        self.config = config
        self.tolerances = tolerances
    }

    func fail(_ reason: String) -> FixtureError { FixtureError(file: file, reason: reason) }

    /// The float tensor `name`, which must exist (and, when given, have `rank`).
    func tensor(_ name: String, rank: Int? = nil) throws(FixtureError) -> Tensor<Float> {
        reads.note(name)
        guard let stored = tensors[name] else { throw fail("missing tensor \(name)") }
        if let rank, stored.shape.count != rank { throw fail("\(name) has shape \(stored.shape), expected rank \(rank)") }
        return stored.floatTensor()
    }

    /// The float tensor `name` if present.
    func optionalTensor(_ name: String) -> Tensor<Float>? {
        reads.note(name)
        return tensors[name]?.floatTensor()
    }

    /// The integer tensor `name` (I32 or I64), which must exist.
    func integerTensor(_ name: String) throws(FixtureError) -> (shape: [Int], values: [Int]) {
        reads.note(name)
        guard let stored = tensors[name] else { throw fail("missing tensor \(name)") }
        guard let values = stored.integers() else { throw fail("\(name) must be I32 or I64, got \(stored.dtype.rawValue)") }
        return (stored.shape, values)
    }

    /// The tolerance for `name`: the fixture's own, else `fallback` (the kind's default).
    func tolerance(for name: String, default fallback: Tolerance) -> Tolerance { tolerances[name] ?? fallback }

    /// Compares `actual` with `expected.<name>` if the fixture has it.
    func compare(_ name: String, _ actual: Tensor<Float>, default fallback: Tolerance) -> TensorComparison? {
        computed.record(name, actual)
        guard let expected = optionalTensor(name) else { return nil }
        return TensorComparison(name: name, actual: actual, expected: expected, tolerance: tolerance(for: name, default: fallback))
    }

    // MARK: Config accessors (each names the key when it is missing or of the wrong type)

    /// Fails unless the config has `key` (its value may be null).
    func require(_ key: String) throws(FixtureError) {
        guard config[key] != nil else { throw fail("config has no \"\(key)\" (a \(kind) fixture must give it)") }
    }

    func int(_ key: String) throws(FixtureError) -> Int {
        try require(key)
        guard let number = config[key] as? NSNumber, !isBoolean(number), number.doubleValue == number.doubleValue.rounded() else {
            throw fail("config \"\(key)\" must be an integer")
        }
        return number.intValue
    }

    func optionalInt(_ key: String) throws(FixtureError) -> Int? {
        try require(key)
        if config[key] is NSNull { return nil }
        return try int(key)
    }

    func double(_ key: String) throws(FixtureError) -> Double {
        try require(key)
        guard let number = config[key] as? NSNumber, !isBoolean(number) else { throw fail("config \"\(key)\" must be a number") }
        return number.doubleValue
    }

    func optionalDouble(_ key: String) throws(FixtureError) -> Double? {
        try require(key)
        if config[key] is NSNull { return nil }
        return try double(key)
    }

    func bool(_ key: String) throws(FixtureError) -> Bool {
        try require(key)
        guard let number = config[key] as? NSNumber, isBoolean(number) else { throw fail("config \"\(key)\" must be true or false") }
        return number.boolValue
    }

    func string(_ key: String) throws(FixtureError) -> String {
        try require(key)
        guard let text = config[key] as? String else { throw fail("config \"\(key)\" must be a string") }
        return text
    }

    private func isBoolean(_ number: NSNumber) -> Bool { String(describing: type(of: number)).contains("Boolean") }
}
