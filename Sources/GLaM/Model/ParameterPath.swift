// Where each of GLaM's weights sits in the model, as a typed path, and the one mapping between
// those paths and the parameter names of checkpoint and fixture files (see the "Checkpoints"
// article). Nothing else in the package spells a parameter name: the model, optimizer, mesh and
// planner all go by `ParameterPath`.
//
// M = model_dim, N = num_heads, D = head_dim, H = ff_dim (dense) or moe_hidden_dim (experts),
// E = num_experts, V = vocab_size. Matrices multiply from the right: y = x · W.
//
//   name                                   shape        path
//   embedding                              [V, M]       .embedding
//   layers.{i}.attention_norm.scale        [M]          .layer(i, .attentionNorm)
//   layers.{i}.attention.wq / wk / wv      [M, N·D]     .layer(i, .query / .key / .value)
//   layers.{i}.attention.wo                [N·D, M]     .layer(i, .attentionOutput)
//   layers.{i}.attention.relative_bias     [N, 32]      .layer(i, .relativeBias)
//   layers.{i}.ffn_norm.scale              [M]          .layer(i, .ffnNorm)
//   layers.{i}.ffn.wi_gate / wi_linear     [M, H]       .layer(i, .gateProjection / .linearProjection)
//   layers.{i}.ffn.wo                      [H, M]       .layer(i, .ffnOutput)
//   layers.{i}.moe.gate                    [M, E]       .layer(i, .router)
//   layers.{i}.moe.wi                      [E, M, H]    .layer(i, .expertInput)
//   layers.{i}.moe.wo                      [E, H, M]    .layer(i, .expertOutput)
//   final_norm.scale                       [M]          .finalNorm

/// One weight of a decoder layer.
public enum LayerWeight: Int, Sendable, CaseIterable {
    /// RMSNorm scale before attention `[M]`.
    case attentionNorm
    /// Wq `[M, N·D]`.
    case query
    /// Wk `[M, N·D]`.
    case key
    /// Wv `[M, N·D]`.
    case value
    /// Wo of attention `[N·D, M]`.
    case attentionOutput
    /// The per-head relative-position bias `[N, buckets]`.
    case relativeBias
    /// RMSNorm scale before the feed-forward `[M]`.
    case ffnNorm
    /// Dense FFN W_gate `[M, H]` (praxis `wi_0`, through GELU).
    case gateProjection
    /// Dense FFN W_linear `[M, H]` (praxis `wi_1`).
    case linearProjection
    /// Dense FFN W_o `[H, M]`.
    case ffnOutput
    /// MoE router W_g `[M, E]` (praxis `gate`).
    case router
    /// Experts' input matrices `[E, M, H]` (praxis `wi`).
    case expertInput
    /// Experts' output matrices `[E, H, M]` (praxis `wo`).
    case expertOutput

    /// The weights of a layer whose feed-forward is dense (`moe` false) or a mixture of experts.
    static func all(moe: Bool) -> [LayerWeight] {
        [.attentionNorm, .query, .key, .value, .attentionOutput, .relativeBias, .ffnNorm]
            + (moe ? [.router, .expertInput, .expertOutput] : [.gateProjection, .linearProjection, .ffnOutput])
    }
}

/// Where a parameter sits in a GLaM model: the typed key of every parameter collection (weights,
/// gradients, optimizer statistics, mesh shards).
public enum ParameterPath: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The tied input embedding and output softmax weight `[V, M]`.
    case embedding
    /// A weight of decoder layer `index` (0-based).
    case layer(Int, LayerWeight)
    /// The RMSNorm scale after the last layer `[M]`.
    case finalNorm

    /// Every parameter of a model with configuration `c`, in file order: the embedding, the layers
    /// in order, the final norm.
    public static func all(in c: ModelConfiguration) -> [ParameterPath] {
        [.embedding] + (0..<c.numLayers).flatMap { i in LayerWeight.all(moe: c.isMoELayer(i)).map { .layer(i, $0) } } + [.finalNorm]
    }

    /// The parameter's shape in a model with configuration `c`.
    public func shape(in c: ModelConfiguration) -> [Int] {
        let (m, nd, h, e) = (c.modelDim, c.numHeads * c.headDim, c.ffDim, c.numExperts)
        switch self {
        case .embedding: return [c.vocabSize, m]
        case .finalNorm: return [m]
        case .layer(_, let weight):
            switch weight {
            case .attentionNorm, .ffnNorm: return [m]
            case .query, .key, .value: return [m, nd]
            case .attentionOutput: return [nd, m]
            case .relativeBias: return [c.numHeads, c.relativeBuckets]
            case .gateProjection, .linearProjection: return [m, h]
            case .ffnOutput: return [h, m]
            case .router: return [m, e]
            case .expertInput: return [e, m, c.moeHiddenDim]
            case .expertOutput: return [e, c.moeHiddenDim, m]
            }
        }
    }

    /// Whether this is an expert weight (`wi` or `wo` of a MoE layer): split over the mesh, not replicated.
    public var isExpertWeight: Bool {
        if case .layer(_, let weight) = self { return weight == .expertInput || weight == .expertOutput }
        return false
    }

    /// The tensor axis of H in an expert weight: 2 in `wi` `[E, M, H]`, 1 in `wo` `[E, H, M]`.
    var expertHiddenAxis: Int {
        if case .layer(_, .expertInput) = self { return 2 }
        return 1
    }

    /// The parameter's name in checkpoint and fixture files (`layers.3.attention.wq`, …).
    ///
    /// This and `init(name:)` are the package's only spelling of the file names.
    public var name: String {
        switch self {
        case .embedding: return "embedding"
        case .finalNorm: return "final_norm.scale"
        case .layer(let i, let weight):
            let leaf: String
            switch weight {
            case .attentionNorm: leaf = "attention_norm.scale"
            case .query: leaf = "attention.wq"
            case .key: leaf = "attention.wk"
            case .value: leaf = "attention.wv"
            case .attentionOutput: leaf = "attention.wo"
            case .relativeBias: leaf = "attention.relative_bias"
            case .ffnNorm: leaf = "ffn_norm.scale"
            case .gateProjection: leaf = "ffn.wi_gate"
            case .linearProjection: leaf = "ffn.wi_linear"
            case .ffnOutput: leaf = "ffn.wo"
            case .router: leaf = "moe.gate"
            case .expertInput: leaf = "moe.wi"
            case .expertOutput: leaf = "moe.wo"
            }
            return "layers.\(i).\(leaf)"
        }
    }

    /// The path of a file's parameter name, or nil for a name that is not one.
    public init?(name: String) {
        switch name {
        case "embedding": self = .embedding
        case "final_norm.scale": self = .finalNorm
        default:
            let parts = name.split(separator: ".", maxSplits: 2)
            guard parts.count == 3, parts[0] == "layers", let i = Int(parts[1]), i >= 0, String(i) == parts[1],
                let weight = LayerWeight.allCases.first(where: { ParameterPath.layer(i, $0).name == name })
            else { return nil }
            self = .layer(i, weight)
        }
    }

    /// The file name.
    public var description: String { name }

    /// File order: the embedding, then layers by index and weight, then the final norm.
    public static func < (a: ParameterPath, b: ParameterPath) -> Bool {
        func key(_ p: ParameterPath) -> (Int, Int, Int) {
            switch p {
            case .embedding: return (0, 0, 0)
            case .layer(let i, let w): return (1, i, w.rawValue)
            case .finalNorm: return (2, 0, 0)
            }
        }
        return key(a) < key(b)
    }
}
