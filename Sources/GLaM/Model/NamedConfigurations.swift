// The paper's models (Table 4, vocabulary 256K; the "The model" article) and small CPU models, by
// the names `glam params` lists, with parameter counting.

/// A configuration with a name, and what the paper reports for it (if it is one of its models).
public struct NamedConfiguration: Sendable {
    /// The name (`glam-64b-64e`, `small`, …).
    public let name: String
    /// The configuration.
    public let configuration: ModelConfiguration
    /// The paper's Table 4 total and activated parameter counts, as printed there.
    public let paperTotal: String?
    /// See `paperTotal`.
    public let paperActivated: String?
}

extension ModelConfiguration {
    /// GLaM's vocabulary size (SentencePiece, 256K).
    public static let paperVocabularySize = 256_000

    private static func paper(_ layers: Int, _ m: Int, _ h: Int, _ n: Int, _ d: Int, _ e: Int) -> ModelConfiguration {
        ModelConfiguration(
            vocabSize: paperVocabularySize, modelDim: m, numLayers: layers, numHeads: n, headDim: d, ffDim: h, numExperts: e)
    }

    /// Every named configuration: the paper's Table 4 rows, then the CPU models.
    public static let named: [NamedConfiguration] = [
        NamedConfiguration(name: "glam-0.1b", configuration: paper(12, 768, 3072, 12, 64, 0), paperTotal: "130M", paperActivated: "130M"),
        NamedConfiguration(
            name: "glam-0.1b-64e", configuration: paper(12, 768, 3072, 12, 64, 64), paperTotal: "1.9B", paperActivated: "145M"),
        NamedConfiguration(
            name: "glam-1.7b", configuration: paper(24, 2048, 8192, 16, 128, 0), paperTotal: "1.7B", paperActivated: "1.700B"),
        NamedConfiguration(
            name: "glam-1.7b-32e", configuration: paper(24, 2048, 8192, 16, 128, 32), paperTotal: "20B", paperActivated: "1.878B"),
        NamedConfiguration(
            name: "glam-1.7b-64e", configuration: paper(24, 2048, 8192, 16, 128, 64), paperTotal: "27B", paperActivated: "1.879B"),
        NamedConfiguration(
            name: "glam-1.7b-128e", configuration: paper(24, 2048, 8192, 16, 128, 128), paperTotal: "53B", paperActivated: "1.881B"),
        NamedConfiguration(
            name: "glam-1.7b-256e", configuration: paper(24, 2048, 8192, 16, 128, 256), paperTotal: "105B", paperActivated: "1.886B"),
        NamedConfiguration(name: "glam-8b", configuration: paper(32, 4096, 16384, 32, 128, 0), paperTotal: "8.7B", paperActivated: "8.7B"),
        NamedConfiguration(
            name: "glam-8b-64e", configuration: paper(32, 4096, 16384, 32, 128, 64), paperTotal: "143B", paperActivated: "9.8B"),
        NamedConfiguration(
            name: "glam-137b", configuration: paper(64, 8192, 65536, 128, 128, 0), paperTotal: "137B", paperActivated: "137B"),
        NamedConfiguration(
            name: "glam-64b-64e", configuration: paper(64, 8192, 32768, 128, 128, 64), paperTotal: "1.2T", paperActivated: "96.6B"),
        // CPU models: tiny and small train in minutes here; medium is the larger benchmark model.
        NamedConfiguration(
            name: "tiny",
            configuration: ModelConfiguration(
                vocabSize: 512, modelDim: 64, numLayers: 4, numHeads: 4, headDim: 16, ffDim: 128, numExperts: 4),
            paperTotal: nil, paperActivated: nil),
        NamedConfiguration(
            name: "tiny-dense",
            configuration: ModelConfiguration(
                vocabSize: 512, modelDim: 64, numLayers: 4, numHeads: 4, headDim: 16, ffDim: 128, numExperts: 0),
            paperTotal: nil, paperActivated: nil),
        NamedConfiguration(
            name: "small",
            configuration: ModelConfiguration(
                vocabSize: 2048, modelDim: 256, numLayers: 4, numHeads: 4, headDim: 64, ffDim: 512, numExperts: 8),
            paperTotal: nil, paperActivated: nil),
        NamedConfiguration(
            name: "small-dense",
            configuration: ModelConfiguration(
                vocabSize: 2048, modelDim: 256, numLayers: 4, numHeads: 4, headDim: 64, ffDim: 512, numExperts: 0),
            paperTotal: nil, paperActivated: nil),
        NamedConfiguration(
            name: "medium",
            configuration: ModelConfiguration(
                vocabSize: 2048, modelDim: 512, numLayers: 4, numHeads: 8, headDim: 64, ffDim: 1024, numExperts: 16),
            paperTotal: nil, paperActivated: nil),
    ]

    /// The named configuration `name`, or nil.
    public static func named(_ name: String) -> ModelConfiguration? { named.first { $0.name == name }?.configuration }
}

/// Parameter counts of a configuration (the "The model" article).
///
/// Per layer: attention `4·M·N·D` (Wq, Wk, Wv, Wo) + relative bias `N·32` + two RMSNorm scales
/// `2·M`; a dense layer adds the gated-GELU FFN `3·M·H`; an MoE layer adds `E` experts of
/// `2·M·H_moe` and the router `M·E`. The model adds the tied embedding `V·M` and the final norm `M`.
/// Activated parameters count, in each MoE layer, the router and the two experts a token uses.
public struct ParameterCount: Sendable, Equatable {
    /// All parameters.
    public let total: Int
    /// Parameters one token uses (top-2 experts in each MoE layer).
    public let activated: Int
    /// The tied embedding's `V·M`, included in both counts.
    public let embedding: Int

    /// Counts `configuration`'s parameters.
    public init(_ c: ModelConfiguration) {
        let (m, nd) = (c.modelDim, c.numHeads * c.headDim)
        let shared = 4 * m * nd + c.numHeads * c.relativeBuckets + 2 * m
        var total = c.vocabSize * m + m
        var activated = total
        for layer in 0..<c.numLayers {
            if c.isMoELayer(layer) {
                total += shared + c.numExperts * 2 * m * c.moeHiddenDim + m * c.numExperts
                activated += shared + min(2, c.numExperts) * 2 * m * c.moeHiddenDim + m * c.numExperts
            } else {
                total += shared + 3 * m * c.ffDim
                activated += shared + 3 * m * c.ffDim
            }
        }
        self.total = total
        self.activated = activated
        embedding = c.vocabSize * m
    }
}

extension ModelConfiguration {
    /// Model FLOPs of one training token at sequence length `t` (forward + backward = 3 × forward),
    /// the count that model-FLOP utilisation (MFU) and `glam compare`'s x-axis use.
    ///
    /// forward = 2 × (activated matrix parameters outside the embedding lookup + the output
    /// projection V·M) + 4·T·N·D per layer (the attention logits q·kᵀ and the weighted sum p·v, each
    /// 2·T·N·D per token, counted over all T keys as the paper's accounting does). An MoE layer
    /// counts the router and the two experts a token uses.
    public func trainingFLOPsPerToken(length t: Int) -> Double {
        3 * forwardFLOPsPerToken(length: t)
    }

    /// Model FLOPs of one token's forward pass at sequence length `t` (see `trainingFLOPsPerToken`).
    public func forwardFLOPsPerToken(length t: Int) -> Double {
        let count = ParameterCount(self)
        var matrix = Double(count.activated - count.embedding)  // includes norms, negligible
        matrix += Double(vocabSize * modelDim)  // output projection (tied embedding)
        let attention = Double(numLayers * 4 * t * numHeads * headDim)
        return 2 * matrix + attention
    }
}
