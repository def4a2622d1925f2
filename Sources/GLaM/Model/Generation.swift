// Incremental decoding with a key/value cache, and greedy, temperature and top-k sampling.
//
// Each step feeds one new token per row through every layer, attending to the cached keys and
// values of all earlier positions, with the relative bias bucket(position − key position).
//
// Capacity and groups at decode time: every step gates its B new tokens as one group (G = 1,
// S = B), with capacity from that group size (praxis' rule: floor(B·cf/E) rounded up to 4, or the
// given capacity, at least 1). With B = 1 both of a token's experts always fit (they are distinct
// experts and each has at least one slot), so no token is ever dropped and cached decoding
// reproduces the full forward pass exactly whenever the full pass dropped nothing either. With
// B > 1, two rows choosing the same expert in one step can exceed a capacity of 1.

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
    /// Keys and values per layer: `[B, N, L, D]` for the L positions seen so far.
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
        caches = Array(repeating: nil, count: parameters.configuration.numLayers)
    }

    /// Feeds one token per row at the next position and returns the logits `[B, V]` for the
    /// position after it. `observer`, when given, receives the step's intermediates (T = 1).
    public mutating func step(_ tokens: [Int], observer: (any ForwardObserver)? = nil) throws(ModelError) -> Tensor<Float> {
        let c = parameters.configuration
        let b = batchSize
        guard tokens.count == b else { throw ModelError("step: \(tokens.count) tokens for a batch of \(b)") }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ModelError("token id \(bad) is outside the vocabulary 0..<\(c.vocabSize)")
        }
        let context = ForwardContext<Float>(decodingAt: position, batchSize: b, configuration: c, observer: observer)
        var x = constants.embedded(tokens, batchSize: b, context: context)  // [B, 1, M]
        for (i, layer) in constants.layers.enumerated() {
            x = try layer(x, layer: i, context: context, cache: &caches[i]).output  // [B, 1, M]
        }
        position += 1
        return constants.logits(x, context: context).value.reshaped(to: [b, c.vocabSize])  // [B, V]
    }

    /// Continues one prompt by `count` tokens.
    ///
    /// - Returns: the new tokens (not the prompt).
    public static func generate(
        parameters: ModelParameters, prompt: [Int], count: Int, strategy: SamplingStrategy, seed: UInt64
    ) throws(ModelError) -> [Int] {
        guard !prompt.isEmpty else { throw ModelError("generate: the prompt is empty") }
        var decoder = IncrementalDecoder(parameters: parameters)
        var logits = Tensor<Float>(zeros: [1, parameters.configuration.vocabSize])
        for token in prompt { logits = try decoder.step([token]) }
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
