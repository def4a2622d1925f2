// The decoder's pieces (glam-spec.md section 1.2), shared by `decoderForward` and the
// expert-parallel trainer, which runs the same pieces on each core with the MoE experts and the
// all-to-alls in between:
//
//   embedded:        x = Emb[tokens]                                    [B, T, M]
//   attentionBlock:  h = x + Attn(RMS_a(x)),  y = RMS_f(h)              [B, T, M]
//   denseFeedForward / MoE layer on y;  x = h + FFN(y)
//   logits:          (RMS(x) · M^-½) · Embᵀ                              [B, T, V]
//   losses:          CE and z-loss averaged over the B·T positions

/// What one decoder pass needs from its batch: paddings, the attention mask, relative-position
/// buckets. Built once per batch; no checks (`decoderForward` validates).
struct DecoderContext<Scalar: TensorScalar> {
    let configuration: ModelConfiguration
    let batch: TokenBatch
    /// `[B, T]`, 1 = padding (nil: none).
    let paddings: Tensor<Scalar>?
    /// `[B, T, 1]`, 1 − padding (nil: none).
    let nonPadding: Tensor<Scalar>?
    /// `[B, T, T]` whether a query may attend to a key.
    let visible: [Bool]
    /// `[T, T]` relative-position bucket of (query − key).
    let buckets: [Int]

    init(configuration c: ModelConfiguration, batch: TokenBatch) {
        configuration = c
        self.batch = batch
        let (b, t) = (batch.batchSize, batch.length)
        let paddingValues = batch.paddings.map { $0.map { Scalar($0) } }
        paddings = paddingValues.map { Tensor(shape: [b, t], scalars: $0) }
        nonPadding = paddingValues.map { Tensor(shape: [b, t, 1], scalars: $0.map { 1 - $0 }) }
        let segments = batch.segmentIDs ?? (batch.paddings ?? [Float](repeating: 0, count: b * t)).map { $0 >= 1 ? 0 : 1 }
        visible = attentionVisibility(segmentIDs: segments, batch: b, length: t)
        var buckets = [Int](repeating: 0, count: t * t)
        for query in 0..<t {
            for key in 0..<t {
                buckets[query * t + key] = relativePositionBucket(
                    distance: query - key, buckets: c.relativeBuckets, maxDistance: c.relativeMaxDistance)
            }
        }
        self.buckets = buckets
    }

    var epsilon: Scalar { Scalar(configuration.rmsNormEpsilon) }

    /// The MoE layers' settings.
    var moeConfiguration: MoELayerConfiguration {
        MoELayerConfiguration(gating: configuration.gating, numGroups: configuration.numGroups, activation: configuration.moeActivation)
    }

    /// `Emb[tokens]` `[B, T, M]` (not scaled).
    func embedded(_ p: [String: Variable<Scalar>]) -> Variable<Scalar> {
        p["embedding"]!.gatheringRows(batch.tokens).reshaped(to: [batch.batchSize, batch.length, configuration.modelDim])
    }

    /// Layer `i` up to its feed-forward: `h = x + Attn(RMS_a(x))` and the FFN input `y = RMS_f(h)`.
    func attentionBlock(_ i: Int, _ x: Variable<Scalar>, _ p: [String: Variable<Scalar>]) -> (h: Variable<Scalar>, y: Variable<Scalar>) {
        let prefix = "layers.\(i)."
        let weights = AttentionWeights(
            wq: p[prefix + "attention.wq"]!, wk: p[prefix + "attention.wk"]!, wv: p[prefix + "attention.wv"]!,
            wo: p[prefix + "attention.wo"]!, relativeBias: p[prefix + "attention.relative_bias"]!)
        let normalized = rmsNormalized(x, scale: p[prefix + "attention_norm.scale"]!, epsilon: epsilon)  // [B, T, M]
        let h =
            x
            + selfAttention(
                normalized, weights: weights, heads: configuration.numHeads, headDim: configuration.headDim, visible: visible,
                buckets: buckets, extraZeroLogit: configuration.attentionExtraLogit)  // [B, T, M]
        return (h, rmsNormalized(h, scale: p[prefix + "ffn_norm.scale"]!, epsilon: epsilon))
    }

    /// The gated-GELU feed-forward of dense layer `i` on `y`.
    func denseFeedForward(_ i: Int, _ y: Variable<Scalar>, _ p: [String: Variable<Scalar>]) -> Variable<Scalar> {
        let prefix = "layers.\(i)."
        let weights = FeedForwardWeights(
            wiGate: p[prefix + "ffn.wi_gate"]!, wiLinear: p[prefix + "ffn.wi_linear"]!, wo: p[prefix + "ffn.wo"]!)
        return gatedFeedForward(y, weights: weights, nonPadding: nonPadding)
    }

    /// The weights of MoE layer `i`.
    func moeWeights(_ i: Int, _ p: [String: Variable<Scalar>]) -> MoEWeights<Scalar> {
        let prefix = "layers.\(i)."
        return MoEWeights(gate: p[prefix + "moe.gate"]!, wi: p[prefix + "moe.wi"]!, wo: p[prefix + "moe.wo"]!)
    }

    /// The output logits `(RMS(x) · M^-½) · Embᵀ` `[B, T, V]` (tied embedding).
    func logits(_ x: Variable<Scalar>, _ p: [String: Variable<Scalar>]) -> Variable<Scalar> {
        let final = rmsNormalized(x, scale: p["final_norm.scale"]!, epsilon: epsilon) * (1 / Scalar(configuration.modelDim).squareRoot())
        return matmul(final, p["embedding"]!, transposeB: true)  // [B, T, V]
    }

    /// Cross-entropy and z-loss of `logits` over the real positions, each divided by B·T; nil
    /// without targets.
    func losses(_ logits: Variable<Scalar>) -> (crossEntropy: Variable<Scalar>, zLoss: Variable<Scalar>)? {
        guard let targets = batch.targets else { return nil }
        let (b, t) = (batch.batchSize, batch.length)
        let weight = Variable(constant: nonPadding ?? Tensor(repeating: 1, shape: [b, t, 1]))  // [B, T, 1]
        let logZ = logits.logSumExp()  // [B, T, 1]
        let targetLogit = logits.gatheringAlongLastAxis(targets)  // [B, T, 1]
        let positions = Scalar(b * t)
        let crossEntropy = ((logZ - targetLogit) * weight).sum() * (1 / positions)
        let zLoss = (logZ.squared() * weight).sum() * (1 / positions)
        return (crossEntropy, zLoss)
    }
}
