// Incremental decoding with a key/value cache, and greedy, temperature and top-k sampling.
//
// Each step feeds one new token per row through every layer, attending to the cached keys and
// values of all earlier positions, with the relative bias bucket(position − key position).
//
// A prompt is prefilled in one pass (`prefill`, in chunks of at most 512 tokens so that attention
// maps stay small), then each step feeds one new token per row.
//
// Capacity and groups at decode time: every call gates its B·T new tokens as one group (G = 1,
// S = B·T), with capacity from that group size (praxis' rule: floor(S·cf/E) rounded up to 4, or
// the given capacity, at least 1). A prefill of one prompt routes exactly as the full forward pass
// of that prompt with G = 1 does (tested bitwise). For a step with B = 1 both of a token's experts
// always fit (they are distinct experts and each has at least one slot), so no token is dropped and
// cached decoding reproduces the full forward pass whenever the full pass dropped nothing either.
// With B > 1, two rows choosing the same expert in one step can exceed a capacity of 1.

import Foundation

/// How the next token is chosen from the logits.
public enum SamplingStrategy: Sendable, Equatable {
    /// The most likely token (lowest id on ties).
    case greedy
    /// Sample from softmax(logits / temperature), restricted to the `topK` most likely tokens when
    /// given.
    case temperature(Float, topK: Int?)
}

/// A decoder with a key/value cache for generating continuations. Each step runs the same
/// decoder layers as the full pass (DecoderLayer.swift), with the layers' keys and values cached.
public struct IncrementalDecoder {
    /// The parameters.
    public let parameters: ModelParameters
    private let constants: GLaMModel<Variable<Float>>
    /// Embᵀ `[M, V]`, so that a step's logits read the embedding in memory order.
    private let transposedEmbedding: Variable<Float>
    /// Keys and values per layer, of the L positions seen so far (each head's kᵀ and v).
    private var caches: [KeyValueCache<Float>?]
    /// The number of positions decoded so far.
    public private(set) var position = 0
    /// Rows decoded in parallel.
    public let batchSize: Int

    /// A decoder for `batchSize` rows, starting at position 0.
    public init(parameters: ModelParameters, batchSize: Int = 1) {
        self.parameters = parameters
        self.batchSize = batchSize
        constants = parameters.constants
        transposedEmbedding = Variable(constant: parameters.embedding.transposed())
        caches = Array(repeating: nil, count: parameters.configuration.numLayers)
    }

    /// Feeds one token per row at the next position and returns the logits `[B, V]` for the
    /// position after it. `observer`, when given, receives the step's intermediates (T = 1).
    public mutating func step(_ tokens: [Int], observer: (any ForwardObserver)? = nil) throws(ModelError) -> Tensor<Float> {
        try prefill(tokens, observer: observer).reshaped(to: [batchSize, parameters.configuration.vocabSize])  // [B, V]
    }

    /// Feeds T new tokens per row at once (`tokens` is `[B·T]`, row-major), attending to the cache
    /// and causally among themselves, and returns the logits `[B, T, V]`, one per new position. The
    /// keys and values join the cache, so decoding goes on after the last of them.
    public mutating func prefill(_ tokens: [Int], observer: (any ForwardObserver)? = nil) throws(ModelError) -> Tensor<Float> {
        let c = parameters.configuration
        let b = batchSize
        guard !tokens.isEmpty, tokens.count % b == 0 else {
            throw ModelError("prefill: \(tokens.count) tokens do not fill a batch of \(b) rows")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ModelError("token id \(bad) is outside the vocabulary 0..<\(c.vocabSize)")
        }
        let t = tokens.count / b
        let context = ForwardContext<Float>(decodingAt: position, batchSize: b, length: t, configuration: c, observer: observer)
        var x = constants.embedded(tokens, batchSize: b, context: context)  // [B, T, M]
        for (i, layer) in constants.layers.enumerated() {
            x = try layer(x, layer: i, context: context, cache: &caches[i]).output  // [B, T, M]
        }
        position += t
        return constants.logits(x, context: context, transposedEmbedding: transposedEmbedding).value  // [B, T, V]
    }

    /// The most prompt tokens `generate` prefills in one pass (each chunk is one routing group).
    public static let prefillChunk = 512

    /// Continues one prompt by `count` tokens (the prompt prefilled in chunks of `prefillChunk`).
    ///
    /// - Returns: the new tokens (not the prompt).
    public static func generate(
        parameters: ModelParameters, prompt: [Int], count: Int, strategy: SamplingStrategy, seed: UInt64
    ) throws(ModelError) -> [Int] {
        guard !prompt.isEmpty else { throw ModelError("generate: the prompt is empty") }
        var decoder = IncrementalDecoder(parameters: parameters)
        let v = parameters.configuration.vocabSize
        var logits = Tensor<Float>(zeros: [1, v])
        for start in stride(from: 0, to: prompt.count, by: prefillChunk) {
            let chunk = Array(prompt[start..<min(start + prefillChunk, prompt.count)])
            let all = try decoder.prefill(chunk)  // [1, T, V]
            logits = Tensor(shape: [1, v], scalars: Array(all.scalars[((chunk.count - 1) * v)...]))
        }
        var generator = SeededGenerator(seed: seed)
        var out: [Int] = []
        for _ in 0..<count {
            let next = choose(from: logits.scalars, strategy: strategy, generator: &generator)
            out.append(next)
            logits = try decoder.step([next])
        }
        return out
    }

    /// Picks a token from one row of logits.
    public static func choose(from logits: [Float], strategy: SamplingStrategy, generator: inout SeededGenerator) -> Int {
        switch strategy {
        case .greedy:
            var best = 0
            for j in logits.indices where logits[j] > logits[best] { best = j }
            return best
        case .temperature(let temperature, let topK):
            var candidates = Array(logits.indices)
            if let topK, topK > 0, topK < logits.count {
                // Stable: ties keep the lower id first.
                candidates = candidates.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
                candidates = Array(candidates.prefix(topK)).sorted()
            }
            let scaled = candidates.map { Double(logits[$0]) / Double(max(temperature, 1e-6)) }
            let peak = scaled.max() ?? 0
            let weights = scaled.map { Foundation.exp($0 - peak) }
            let total = weights.reduce(0, +)
            var u = Double(generator.next() >> 11) * 0x1p-53 * total
            for (index, weight) in weights.enumerated() {
                u -= weight
                if u < 0 { return candidates[index] }
            }
            return candidates.last!
        }
    }
}
