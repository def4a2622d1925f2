// GLaM as a typed value: the model, its decoder layers and their sub-layers, each holding its
// weights. `Weight` is what a weight is: `Tensor<Float>` for stored parameters (`ModelParameters`),
// `Variable<Scalar>` for a forward pass (recorded on a tape for gradients, or constants), or any
// other per-weight value (gradients, optimizer statistics, mesh shards).
//
//   GLaMModel            embedding [V, M], layers, finalNorm [M]
//   └ DecoderLayer       attentionNorm [M], attention, ffnNorm [M], feedForward
//     ├ SelfAttention    wq, wk, wv [M, N·D], wo [N·D, M], relativeBias [N, 32]
//     └ FeedForwardBlock .dense(GatedFeedForward: wiGate, wiLinear [M, H], wo [H, M])   odd layers
//                        .moe(MixtureOfExperts: gate [M, E], wi [E, M, H], wo [E, H, M]) even layers
//
// The computation of each piece sits beside it (SelfAttention in Attention.swift, GatedFeedForward
// in FeedForward.swift, MixtureOfExperts in MoE/MoELayer.swift, DecoderLayer in DecoderLayer.swift,
// the whole pass in Decoder.swift). `ParameterPath` addresses any weight; `map` turns a model of one
// kind of weight into another (tensors → tape variables → gradients) keeping the structure.

/// A GLaM decoder with its weights: the paper's Table 4 models, `small`, `tiny`, or any valid
/// `ModelConfiguration`.
///
/// ```swift
/// let parameters = try ModelParameters(configuration: ModelConfiguration.named("tiny")!, seed: 0)
/// let batch = TokenBatch(batchSize: 1, length: 4, tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5])
/// let output: DecoderOutput<Float> = try parameters.constants(batch)
/// print(output.logits.shape, output.loss!.value.scalar)  // [1, 4, V]; CE + z-loss and aux-loss terms
/// ```
public struct GLaMModel<Weight> {
    /// The configuration the weights belong to.
    public let configuration: ModelConfiguration
    /// The tied embedding `[V, M]`: input lookup `Emb[token]` and output softmax weight.
    public var embedding: Weight
    /// The decoder layers, in order (layer i is MoE when `configuration.isMoELayer(i)`).
    public var layers: [DecoderLayer<Weight>]
    /// The RMSNorm scale after the last layer `[M]`.
    public var finalNorm: Weight

    /// A model whose every weight is `make(path)`, in file order.
    public init(configuration c: ModelConfiguration, _ make: (ParameterPath) throws -> Weight) rethrows {
        configuration = c
        embedding = try make(.embedding)
        layers = try (0..<c.numLayers).map { i in try DecoderLayer(moe: c.isMoELayer(i)) { try make(.layer(i, $0)) } }
        finalNorm = try make(.finalNorm)
    }

    /// Every parameter's path, in file order.
    public var paths: [ParameterPath] { ParameterPath.all(in: configuration) }

    /// The weight at `path`. Setting a path the model does not have (a layer out of range, an MoE
    /// weight of a dense layer) is a programming error and traps.
    public subscript(path: ParameterPath) -> Weight {
        get {
            switch path {
            case .embedding: return embedding
            case .finalNorm: return finalNorm
            case .layer(let i, let weight): return layers[i][weight]
            }
        }
        set {
            switch path {
            case .embedding: embedding = newValue
            case .finalNorm: finalNorm = newValue
            case .layer(let i, let weight): layers[i][weight] = newValue
            }
        }
    }

    /// The same model with every weight transformed (`transform(path, weight)`, in file order).
    public func map<Other>(_ transform: (ParameterPath, Weight) throws -> Other) rethrows -> GLaMModel<Other> {
        try GLaMModel<Other>(configuration: configuration) { path in try transform(path, self[path]) }
    }

    /// Every `(path, weight)`, in file order.
    public var weights: [(path: ParameterPath, weight: Weight)] { paths.map { ($0, self[$0]) } }
}

extension GLaMModel: Sendable where Weight: Sendable {}
extension GLaMModel: Equatable where Weight: Equatable {}

/// One decoder layer's weights: `h = x + Attn(RMS(x)·attentionNorm)`, then
/// `x' = h + FFN(RMS(h)·ffnNorm)` (praxis `Transformer` with pre-norm, as glam.py configures it).
public struct DecoderLayer<Weight> {
    /// RMSNorm scale before attention `[M]`.
    public var attentionNorm: Weight
    /// The self-attention weights.
    public var attention: SelfAttention<Weight>
    /// RMSNorm scale before the feed-forward `[M]`.
    public var ffnNorm: Weight
    /// The feed-forward: a gated-GELU FFN (odd layers) or a mixture of experts (even layers).
    public var feedForward: FeedForwardBlock<Weight>

    /// A layer; `moe` chooses the feed-forward's kind; `make` gives each weight.
    init(moe: Bool, _ make: (LayerWeight) throws -> Weight) rethrows {
        attentionNorm = try make(.attentionNorm)
        attention = SelfAttention(
            wq: try make(.query), wk: try make(.key), wv: try make(.value), wo: try make(.attentionOutput),
            relativeBias: try make(.relativeBias))
        ffnNorm = try make(.ffnNorm)
        if moe {
            feedForward = .moe(MixtureOfExperts(gate: try make(.router), wi: try make(.expertInput), wo: try make(.expertOutput)))
        } else {
            feedForward = .dense(
                GatedFeedForward(wiGate: try make(.gateProjection), wiLinear: try make(.linearProjection), wo: try make(.ffnOutput)))
        }
    }

    /// The weight `weight` of this layer (traps for a weight of the other feed-forward kind).
    subscript(weight: LayerWeight) -> Weight {
        get {
            switch (weight, feedForward) {
            case (.attentionNorm, _): return attentionNorm
            case (.query, _): return attention.wq
            case (.key, _): return attention.wk
            case (.value, _): return attention.wv
            case (.attentionOutput, _): return attention.wo
            case (.relativeBias, _): return attention.relativeBias
            case (.ffnNorm, _): return ffnNorm
            case (.gateProjection, .dense(let ffn)): return ffn.wiGate
            case (.linearProjection, .dense(let ffn)): return ffn.wiLinear
            case (.ffnOutput, .dense(let ffn)): return ffn.wo
            case (.router, .moe(let moe)): return moe.gate
            case (.expertInput, .moe(let moe)): return moe.wi
            case (.expertOutput, .moe(let moe)): return moe.wo
            default: preconditionFailure("DecoderLayer: no \(weight) in a \(feedForward.isMoE ? "MoE" : "dense") layer")
            }
        }
        set {
            switch (weight, feedForward) {
            case (.attentionNorm, _): attentionNorm = newValue
            case (.query, _): attention.wq = newValue
            case (.key, _): attention.wk = newValue
            case (.value, _): attention.wv = newValue
            case (.attentionOutput, _): attention.wo = newValue
            case (.relativeBias, _): attention.relativeBias = newValue
            case (.ffnNorm, _): ffnNorm = newValue
            case (.gateProjection, .dense(var ffn)): ffn.wiGate = newValue; feedForward = .dense(ffn)
            case (.linearProjection, .dense(var ffn)): ffn.wiLinear = newValue; feedForward = .dense(ffn)
            case (.ffnOutput, .dense(var ffn)): ffn.wo = newValue; feedForward = .dense(ffn)
            case (.router, .moe(var moe)): moe.gate = newValue; feedForward = .moe(moe)
            case (.expertInput, .moe(var moe)): moe.wi = newValue; feedForward = .moe(moe)
            case (.expertOutput, .moe(var moe)): moe.wo = newValue; feedForward = .moe(moe)
            default: preconditionFailure("DecoderLayer: no \(weight) in a \(feedForward.isMoE ? "MoE" : "dense") layer")
            }
        }
    }
}

extension DecoderLayer: Sendable where Weight: Sendable {}
extension DecoderLayer: Equatable where Weight: Equatable {}

/// A layer's feed-forward sub-layer: GLaM alternates a dense gated-GELU FFN (odd layers) with a
/// top-2 mixture of experts (even layers).
public enum FeedForwardBlock<Weight> {
    /// The gated-GELU feed-forward of a dense layer.
    case dense(GatedFeedForward<Weight>)
    /// The mixture of experts of an MoE layer.
    case moe(MixtureOfExperts<Weight>)

    /// Whether this is a mixture of experts.
    public var isMoE: Bool {
        if case .moe = self { return true }
        return false
    }

    /// The mixture of experts, or nil for a dense FFN.
    public var mixtureOfExperts: MixtureOfExperts<Weight>? {
        if case .moe(let moe) = self { return moe }
        return nil
    }
}

extension FeedForwardBlock: Sendable where Weight: Sendable {}
extension FeedForwardBlock: Equatable where Weight: Equatable {}
