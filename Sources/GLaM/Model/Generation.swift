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

/// A decoder with a key/value cache for generating continuations.
public struct IncrementalDecoder {
    /// The parameters.
    public let parameters: ModelParameters
    private var configuration: ModelConfiguration { parameters.configuration }
    private let constants: [String: Variable<Float>]
    /// Keys and values per layer: `[B, N, L, D]` for the L positions seen so far.
    private var keys: [Tensor<Float>?]
    private var values: [Tensor<Float>?]
    /// The number of positions decoded so far.
    public private(set) var position = 0
    /// Rows decoded in parallel.
    public let batchSize: Int

    /// A decoder for `batchSize` rows, starting at position 0.
    public init(parameters: ModelParameters, batchSize: Int = 1) {
        self.parameters = parameters
        self.batchSize = batchSize
        constants = parameters.tensors.mapValues { Variable(constant: $0) }
        keys = Array(repeating: nil, count: parameters.configuration.numLayers)
        values = keys
    }

    /// Feeds one token per row at the next position and returns the logits `[B, V]` for the
    /// position after it.
    public mutating func step(_ tokens: [Int]) throws(ModelError) -> Tensor<Float> {
        let c = configuration
        let (b, m, n, d) = (batchSize, c.modelDim, c.numHeads, c.headDim)
        guard tokens.count == b else { throw ModelError("step: \(tokens.count) tokens for a batch of \(b)") }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
            throw ModelError("token id \(bad) is outside the vocabulary 0..<\(c.vocabSize)")
        }
        let p = constants
        let epsilon = c.rmsNormEpsilon
        let length = position + 1
        let buckets = (0..<length).map {
            relativePositionBucket(distance: position - $0, buckets: c.relativeBuckets, maxDistance: c.relativeMaxDistance)
        }
        var x = p["embedding"]!.gatheringRows(tokens).reshaped(to: [b, 1, m])  // [B, 1, M]
        for i in 0..<c.numLayers {
            let prefix = "layers.\(i)."
            let y = rmsNormalized(x, scale: p[prefix + "attention_norm.scale"]!, epsilon: epsilon)  // [B, 1, M]
            func heads(_ w: String) -> Tensor<Float> {
                matmul(y.value, p[prefix + w]!.value).reshaped(to: [b, n, 1, d])  // [B, N, 1, D] (T = 1)
            }
            let q = heads("attention.wq")
            keys[i] = Self.appending(heads("attention.wk"), to: keys[i])  // [B, N, L, D]
            values[i] = Self.appending(heads("attention.wv"), to: values[i])  // [B, N, L, D]
            let bias = p[prefix + "attention.relative_bias"]!.gatheringColumns(buckets, shape: [1, length])  // [N, 1, L]
            let logits = Variable(constant: matmul(q, keys[i]!, transposeB: true)) + bias  // [B, N, 1, L]
            let probabilities = logits.maskedSoftmax(
                visible: [Bool](repeating: true, count: b * length), extraZeroLogit: c.attentionExtraLogit)  // [B, N, 1, L]
            let merged = matmul(probabilities.value, values[i]!).reshaped(to: [b, 1, n * d])  // [B, 1, N·D]
            let h = x + matmul(Variable(constant: merged), p[prefix + "attention.wo"]!)  // [B, 1, M]
            let z = rmsNormalized(h, scale: p[prefix + "ffn_norm.scale"]!, epsilon: epsilon)  // [B, 1, M]
            if c.isMoELayer(i) {
                let weights = MoEWeights(gate: p[prefix + "moe.gate"]!, wi: p[prefix + "moe.wi"]!, wo: p[prefix + "moe.wo"]!)
                let layer = MoELayerConfiguration(gating: c.gating, numGroups: 1, activation: c.moeActivation)
                do {
                    x = h + (try moeLayer(z, paddings: nil, weights: weights, configuration: layer)).output
                } catch {
                    throw ModelError("layer \(i): \(error.description)")
                }
            } else {
                let weights = FeedForwardWeights(
                    wiGate: p[prefix + "ffn.wi_gate"]!, wiLinear: p[prefix + "ffn.wi_linear"]!, wo: p[prefix + "ffn.wo"]!)
                x = h + gatedFeedForward(z, weights: weights, nonPadding: nil)
            }
        }
        let final = rmsNormalized(x, scale: p["final_norm.scale"]!, epsilon: epsilon) * (1 / Float(m).squareRoot())
        position += 1
        return matmul(final.value.reshaped(to: [b, m]), p["embedding"]!.value, transposeB: true)  // [B, V]
    }

    /// `cache` `[B, N, L, D]` with `new` `[B, N, 1, D]` appended along L.
    static func appending(_ new: Tensor<Float>, to cache: Tensor<Float>?) -> Tensor<Float> {
        guard let cache else { return new }
        let (bn, l, d) = (cache.shape[0] * cache.shape[1], cache.shape[2], cache.shape[3])
        var out = [Float]()
        out.reserveCapacity(bn * (l + 1) * d)
        for row in 0..<bn {
            out += cache.scalars[(row * l * d)..<((row + 1) * l * d)]
            out += new.scalars[(row * d)..<((row + 1) * d)]
        }
        return Tensor(shape: [cache.shape[0], cache.shape[1], l + 1, d], scalars: out)
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
