// The log-likelihood of a continuation after a context, as in-context evaluation ranks choices
// (GPT-3's protocol; lm-eval's `loglikelihood` request):
//
//   ids = encode(context) + encode(continuation)           (context alone empty: [end of text])
//   log p(continuation | context) = Σ over the continuation's ids i of log softmax(logits[i − 1])[ids[i]]
//
// and whether every continuation id is the arg max of its logits ("is greedy"). A sequence longer
// than `maximumLength` + 1 ids loses ids from the left of the context.
//
// Routing: each sequence is its own routing group (S = its length, no padding), so its score is
// that of the sequence alone, whatever else is in the batch; sequences of equal length are batched
// together, one group per row.

import Foundation

/// The score of one continuation.
public struct ContinuationScore: Sendable, Equatable {
    /// Σ log p of the continuation's tokens, in nats.
    public let logLikelihood: Double
    /// Whether greedy decoding would produce every continuation token.
    public let isGreedy: Bool
    /// The continuation's tokens.
    public let tokenCount: Int
}

/// Scores continuations after contexts with a model and its tokenizer.
public struct ContinuationScorer: Sendable {
    /// The model's parameters.
    public let parameters: ModelParameters
    /// The tokenizer of the model.
    public let tokenizer: BytePairTokenizer
    /// The most input positions of one sequence (ids beyond it are cut from the left).
    public let maximumLength: Int
    /// The most sequences of one length run together.
    public let batchSize: Int

    /// A scorer; `maximumLength` ≥ 1 and `batchSize` ≥ 1.
    ///
    /// - Throws: `ModelError` when the tokenizer's vocabulary is larger than the model's, or a size
    ///   is below 1.
    public init(parameters: ModelParameters, tokenizer: BytePairTokenizer, maximumLength: Int = 1024, batchSize: Int = 8)
        throws(ModelError)
    {
        guard tokenizer.vocabularySize <= parameters.configuration.vocabSize else {
            throw ModelError(
                "the tokenizer has \(tokenizer.vocabularySize) ids, the model's vocabulary \(parameters.configuration.vocabSize)")
        }
        guard maximumLength >= 1, batchSize >= 1 else {
            throw ModelError("maximum length and batch size must be at least 1, got \(maximumLength) and \(batchSize)")
        }
        self.parameters = parameters
        self.tokenizer = tokenizer
        self.maximumLength = maximumLength
        self.batchSize = batchSize
    }

    /// The ids a request is scored on, and how many of the last ones are the continuation.
    func sequence(context: String, continuation: String) -> (ids: [Int], continuationCount: Int) {
        let contextIDs = tokenizer.encode(context), continuationIDs = tokenizer.encode(continuation)
        var ids = (contextIDs.isEmpty ? [tokenizer.endOfText] : contextIDs) + continuationIDs
        if ids.count > maximumLength + 1 { ids.removeFirst(ids.count - maximumLength - 1) }
        return (ids, min(continuationIDs.count, ids.count - 1))
    }

    /// The score of each `(context, continuation)`, in order. `progress(done, total)` is called
    /// after each batch.
    public func score(
        _ requests: [(context: String, continuation: String)], progress: (Int, Int) -> Void = { _, _ in }
    ) throws(ModelError) -> [ContinuationScore] {
        try score(sequences: requests.map { sequence(context: $0.context, continuation: $0.continuation) }, progress: progress)
    }

    /// The log-likelihood of all of `text` (lm-eval's `loglikelihood_rolling`): its tokens after
    /// the end-of-text id, in windows of at most `maximumLength` predicted tokens, each window
    /// read after as many of the tokens before it as fit.
    public func rollingLogLikelihood(of text: String) throws(ModelError) -> Double {
        let ids = tokenizer.encode(text)
        var windows: [(ids: [Int], continuationCount: Int)] = []
        for start in stride(from: 0, to: ids.count, by: maximumLength) {
            let end = min(start + maximumLength, ids.count)
            let window = start == 0 ? [tokenizer.endOfText] + ids[..<end] : Array(ids[max(0, end - maximumLength - 1)..<end])
            windows.append((window, end - start))
        }
        return try score(sequences: windows).map(\.logLikelihood).reduce(0, +)
    }

    /// The scores of id sequences whose last `continuationCount` ids are scored.
    func score(
        sequences: [(ids: [Int], continuationCount: Int)], progress: (Int, Int) -> Void = { _, _ in }
    ) throws(ModelError) -> [ContinuationScore] {
        var scores = [ContinuationScore?](repeating: nil, count: sequences.count)
        // Equal input lengths together, so that no row needs padding.
        var byLength: [Int: [Int]] = [:]
        for (index, sequence) in sequences.enumerated() { byLength[sequence.ids.count - 1, default: []].append(index) }
        let v = parameters.configuration.vocabSize
        var done = 0
        for t in byLength.keys.sorted() {
            let members = byLength[t]!
            for start in stride(from: 0, to: members.count, by: batchSize) {
                let rows = Array(members[start..<min(start + batchSize, members.count)])
                var configuration = parameters.configuration
                configuration.numGroups = rows.count  // one routing group per sequence
                let model = GLaMModel(configuration: configuration) { parameters[$0] }.constants
                let batch = TokenBatch(
                    batchSize: rows.count, length: t, tokens: rows.flatMap { sequences[$0].ids.dropLast() })
                let output: DecoderOutput<Float> = try model(batch)
                let logits = output.logits.value.scalars  // [B, T, V]
                for (row, index) in rows.enumerated() {
                    let (ids, count) = sequences[index]
                    var total = 0.0
                    var greedy = true
                    for position in (t - count)..<t {
                        let base = (row * t + position) * v
                        let values = logits[base..<(base + v)]
                        let peak = values.max()!
                        let logSum = Double(peak) + Foundation.log(values.reduce(0.0) { $0 + Foundation.exp(Double($1 - peak)) })
                        let target = ids[position + 1]
                        total += Double(values[base + target]) - logSum
                        if values.firstIndex(of: peak)! - base != target { greedy = false }
                    }
                    scores[index] = ContinuationScore(logLikelihood: total, isGreedy: greedy, tokenCount: count)
                }
                done += rows.count
                progress(done, sequences.count)
            }
        }
        return scores.map { $0! }
    }

    /// Greedy continuation of `context`: at most `maximumTokens` tokens, stopped at the end-of-text
    /// id, then cut before the first occurrence of any of `until` (lm-eval's `generate_until`).
    public func generate(after context: String, until: [String], maximumTokens: Int) throws(ModelError) -> String {
        var prompt = tokenizer.encode(context)
        if prompt.isEmpty { prompt = [tokenizer.endOfText] }
        if prompt.count > maximumLength { prompt.removeFirst(prompt.count - maximumLength) }
        let ids = try IncrementalDecoder.generate(
            parameters: parameters, prompt: prompt, count: maximumTokens, strategy: .greedy, seed: 0)
        var text = tokenizer.decode(Array(ids.prefix { $0 != tokenizer.endOfText }))
        for stop in until {
            if let range = text.range(of: stop) { text = String(text[..<range.lowerBound]) }
        }
        return text
    }
}
