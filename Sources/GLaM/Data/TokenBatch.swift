// What the model reads: B token sequences of length T, flattened row-major, with their targets,
// paddings and packed-sequence segment ids. `TextDataset` makes them; `GLaMModel` checks them.

/// A batch of B token sequences of length T, flattened row-major (`[B·T]`).
public struct TokenBatch: Sendable, Equatable {
    /// B.
    public let batchSize: Int
    /// T.
    public let length: Int
    /// Input token ids.
    public var tokens: [Int]
    /// The token each position should predict, or nil for inference.
    public var targets: [Int]?
    /// 1 where a position is padding, else 0; nil: no padding.
    public var paddings: [Float]?
    /// Packed-sequence segment ids (0 = padding), or nil: one segment per row.
    public var segmentIDs: [Int]?

    /// A batch; arrays are `[B·T]` row-major.
    public init(batchSize: Int, length: Int, tokens: [Int], targets: [Int]? = nil, paddings: [Float]? = nil, segmentIDs: [Int]? = nil) {
        self.batchSize = batchSize
        self.length = length
        self.tokens = tokens
        self.targets = targets
        self.paddings = paddings
        self.segmentIDs = segmentIDs
    }

    /// Rows `range` of the batch.
    public func rows(_ range: Range<Int>) -> TokenBatch {
        let t = length
        func slice<T>(_ values: [T]) -> [T] { Array(values[(range.lowerBound * t)..<(range.upperBound * t)]) }
        return TokenBatch(
            batchSize: range.count, length: t, tokens: slice(tokens), targets: targets.map(slice), paddings: paddings.map(slice),
            segmentIDs: segmentIDs.map(slice))
    }

    /// Why the batch does not fit a model with vocabulary `vocabularySize`, or nil.
    func problem(vocabularySize v: Int) -> String? {
        let count = batchSize * length
        guard batchSize >= 1, length >= 1 else { return "batch must have B ≥ 1 and T ≥ 1, got [\(batchSize), \(length)]" }
        if tokens.count != count { return "tokens has \(tokens.count) entries, expected B·T = \(count)" }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= v }) { return "token id \(bad) is outside the vocabulary 0..<\(v)" }
        if let targets {
            if targets.count != count { return "targets has \(targets.count) entries, expected \(count)" }
            if let bad = targets.first(where: { $0 < 0 || $0 >= v }) { return "target id \(bad) is outside the vocabulary 0..<\(v)" }
        }
        if let paddings, paddings.count != count { return "paddings has \(paddings.count) entries, expected \(count)" }
        if let segmentIDs, segmentIDs.count != count { return "segment ids has \(segmentIDs.count) entries, expected \(count)" }
        return nil
    }
}
