// The GLaM decoder and its losses (glam-spec.md sections 1.1–1.2 and 3.3):
//
//   x = Emb[tokens]                                   [B, T, M]  (not scaled)
//   for layer i:  h = x + Attn(RMS_a(x));  x = h + FFN_i(RMS_f(h))   (FFN_i: MoE if i even, else GLU)
//   logits = (RMS(x) · M^-½) · Embᵀ                   [B, T, V]  (tied embedding)
//   CE     = Σ_real −log softmax(logits)[target] / (B·T)      (the denominator counts padding)
//   z      = Σ_real (log Σ_v exp logits)² / (B·T)
//   aux    = Σ_MoE layers aux_l
//   loss   = CE + z_loss_weight · z + aux_loss_weight · aux

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

/// What a forward pass returns.
public struct DecoderOutput<Scalar: TensorScalar> {
    /// `[B, T, V]` output logits.
    public let logits: Variable<Scalar>
    /// Cross-entropy averaged over the B·T positions (nil without targets).
    public let crossEntropy: Variable<Scalar>?
    /// The z-loss mean(log Z²) over the B·T positions (nil without targets).
    public let zLoss: Variable<Scalar>?
    /// The sum of the MoE layers' load-balancing losses, unweighted (0 for a dense model).
    public let auxLoss: Variable<Scalar>
    /// `CE + z_loss_weight·z + aux_loss_weight·aux` (nil without targets).
    public let loss: Variable<Scalar>?
    /// The gating of each MoE layer, in layer order.
    public let gatings: [Top2GatingResult<Scalar>]
}

/// The GLaM decoder on `batch`, with parameters given as variables by name (contracts.md section 2).
///
/// Record the parameters on a `Tape` to get gradients; pass constants for inference.
/// - Throws: `ModelError` for a batch or parameters that do not fit the configuration.
@_specialize(where Scalar == Float)
public func decoderForward<Scalar>(
    parameters p: [String: Variable<Scalar>], configuration c: ModelConfiguration, batch: TokenBatch,
    moeImplementation: DispatchImplementation = .indexed
) throws(ModelError) -> DecoderOutput<Scalar> {
    if let problem = c.problem { throw ModelError("invalid configuration: \(problem)") }
    if let problem = batch.problem(vocabularySize: c.vocabSize) { throw ModelError(problem) }
    for (name, shape) in ModelParameters.shapes(for: c) {
        guard let v = p[name] else { throw ModelError("missing parameter \(name)") }
        guard v.shape == shape else { throw ModelError("parameter \(name) has shape \(v.shape), expected \(shape)") }
    }
    let context = DecoderContext<Scalar>(configuration: c, batch: batch)
    var x = context.embedded(p)  // [B, T, M]
    var gatings: [Top2GatingResult<Scalar>] = []
    var auxLoss = Variable<Scalar>(constant: Tensor(0))
    for i in 0..<c.numLayers {
        let (h, y) = context.attentionBlock(i, x, p)  // [B, T, M] each
        if c.isMoELayer(i) {
            let out: MoELayerOutput<Scalar>
            do {
                out = try moeLayer(
                    y, paddings: context.paddings, weights: context.moeWeights(i, p), configuration: context.moeConfiguration,
                    implementation: moeImplementation)
            } catch {
                throw ModelError("layer \(i): \(error.description)")
            }
            gatings.append(out.gating)
            auxLoss = auxLoss + out.gating.auxLoss
            x = h + out.output
        } else {
            x = h + context.denseFeedForward(i, y, p)
        }
    }
    let logits = context.logits(x, p)  // [B, T, V]
    guard let (crossEntropy, zLoss) = context.losses(logits) else {
        return DecoderOutput(logits: logits, crossEntropy: nil, zLoss: nil, auxLoss: auxLoss, loss: nil, gatings: gatings)
    }
    let loss = crossEntropy + zLoss * Scalar(c.zLossWeight) + auxLoss * Scalar(c.auxLossWeight)
    return DecoderOutput(logits: logits, crossEntropy: crossEntropy, zLoss: zLoss, auxLoss: auxLoss, loss: loss, gatings: gatings)
}
