// The GLaM decoder and its losses (see the "The model" article):
//
//   x = Emb[tokens]                                   [B, T, M]  (not scaled)
//   for layer i:  h = x + Attn(RMS_a(x));  x = h + FFN_i(RMS_f(h))   (FFN_i: MoE if i even, else GLU)
//   logits = (RMS(x) · M^-½) · Embᵀ                   [B, T, V]  (tied embedding)
//   CE     = Σ_real −log softmax(logits)[target] / (B·T)      (the denominator counts padding)
//   z      = Σ_real (log Σ_v exp logits)² / (B·T)
//   aux    = Σ_MoE layers aux_l
//   loss   = CE + z_loss_weight · z + aux_loss_weight · aux
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
    /// The gating of each MoE layer, in layer order: `gatings[k]` is decoder layer `moeLayers[k]`
    /// (`gatings[1]` is layer 2). ``gating(ofLayer:)`` and ``routing(ofLayer:routerTopCount:)``
    /// look a layer up by its decoder index.
    public let gatings: [Top2GatingResult<Scalar>]
    /// The decoder layer of each entry of `gatings`: the MoE layers 0, 2, 4, … of the configuration.
    public let moeLayers: [Int]
    /// The top-2 gating settings the MoE layers routed with.
    let gatingConfiguration: Top2GatingConfiguration
    /// The batch's `[B, T]` paddings (nil: every token real).
    let paddings: Tensor<Scalar>?

    /// The gating of decoder layer `layer`; nil when that layer is dense or out of range.
    public func gating(ofLayer layer: Int) -> Top2GatingResult<Scalar>? {
        moeLayers.firstIndex(of: layer).map { gatings[$0] }
    }

    /// The routing of decoder layer `layer` told token by token (``MoELayerTrace``: each token's two
    /// experts, gates, queue places against the capacity C, drops and padding), keeping each token's
    /// `routerTopCount` most probable experts; nil when that layer is dense or out of range.
    public func routing(ofLayer layer: Int, routerTopCount: Int = 4) -> MoELayerTrace? {
        gating(ofLayer: layer).map {
            MoELayerTrace(layer: layer, gating: $0, paddings: paddings, configuration: gatingConfiguration, routerTopCount: routerTopCount)
        }
    }
}

extension GLaMModel {
    /// The GLaM decoder on `batch` (GLaM's forward pass and losses; see the "The model" article).
    ///
    /// Make the weights variables on a `Tape` (`variables(on:)`) to get gradients; use `constants`
    /// for inference. `observer`, when given, receives every named intermediate (Tracer.swift).
    /// - Throws: `ModelError` for a batch or weights that do not fit the configuration.
    @_specialize(where Weight == Variable<Float>, Scalar == Float)
    public func callAsFunction<Scalar>(_ batch: TokenBatch, observer: (any ForwardObserver)? = nil) throws(ModelError) -> DecoderOutput<
        Scalar
    >
    where Weight == Variable<Scalar> {
        let c = configuration
        if let problem = c.problem { throw ModelError("invalid configuration: \(problem)") }
        if let problem = batch.problem(vocabularySize: c.vocabSize) { throw ModelError(problem) }
        for (path, weight) in weights where weight.shape != path.shape(in: c) {
            throw ModelError("parameter \(path) has shape \(weight.shape), expected \(path.shape(in: c))")
        }
        let context = ForwardContext<Scalar>(configuration: c, batch: batch, observer: observer)
        var x = embedded(batch.tokens, batchSize: batch.batchSize, context: context)  // [B, T, M]
        var gatings: [Top2GatingResult<Scalar>] = []
        var auxLoss = Variable<Scalar>(constant: Tensor(0))
        var noCache: KeyValueCache<Scalar>? = nil
        for (i, layer) in layers.enumerated() {
            let (output, gating) = try layer(x, layer: i, context: context, cache: &noCache)
            if let gating {
                gatings.append(gating)
                auxLoss = auxLoss + gating.auxLoss
            }
            x = output
        }
        let (logits, losses) = head(x, batch: batch, context: context)  // [B, T, V]
        guard let (crossEntropy, zLoss) = losses else {
            return DecoderOutput(
                logits: logits, crossEntropy: nil, zLoss: nil, auxLoss: auxLoss, loss: nil, gatings: gatings, moeLayers: c.moeLayers,
                gatingConfiguration: c.gating, paddings: context.paddings)
        }
        let loss = crossEntropy + zLoss * Scalar(c.zLossWeight) + auxLoss * Scalar(c.auxLossWeight)
        return DecoderOutput(
            logits: logits, crossEntropy: crossEntropy, zLoss: zLoss, auxLoss: auxLoss, loss: loss, gatings: gatings,
            moeLayers: c.moeLayers,
            gatingConfiguration: c.gating, paddings: context.paddings)
    }

    /// `Emb[tokens]` `[B, T, M]` (not scaled).
    func embedded<Scalar>(_ tokens: [Int], batchSize b: Int, context: ForwardContext<Scalar>) -> Variable<Scalar>
    where Weight == Variable<Scalar> {
        let x = embedding.gatheringRows(tokens).reshaped(to: [b, tokens.count / b, configuration.modelDim])  // [B, T, M]
        context.trace("embedded", x)
        return x
    }

    /// The decoder's head after the last layer, as every pass runs it (the full pass here, the
    /// mesh's last segment): the logits `[B, T, V]` and, with targets, cross-entropy and z-loss.
    func head<Scalar>(_ x: Variable<Scalar>, batch: TokenBatch, context: ForwardContext<Scalar>) -> (
        logits: Variable<Scalar>, losses: (crossEntropy: Variable<Scalar>, zLoss: Variable<Scalar>)?
    ) where Weight == Variable<Scalar> {
        let logits = self.logits(x, context: context)  // [B, T, V]
        return (logits, Self.losses(logits, batch: batch, context: context))
    }

    /// The output logits `(RMS(x)·finalNorm · M^-½) · Embᵀ` `[B, T, V]` (tied embedding).
    /// `transposedEmbedding`, when given, is Embᵀ `[M, V]` already laid out (a decoder keeps one:
    /// one token's product then reads it in memory order); the product's bits are the same.
    func logits<Scalar>(
        _ x: Variable<Scalar>, context: ForwardContext<Scalar>, transposedEmbedding: Variable<Scalar>? = nil
    ) -> Variable<Scalar> where Weight == Variable<Scalar> {
        let final = rmsNormalized(x, scale: finalNorm, epsilon: context.epsilon) * (1 / Scalar(configuration.modelDim).squareRoot())
        context.trace("final_norm", final)
        let logits = transposedEmbedding.map { matmul(final, $0) } ?? matmul(final, embedding, transposeB: true)  // [B, T, V]
        context.trace("logits", logits)
        return logits
    }

    /// Cross-entropy and z-loss of `logits` `[B, T, V]` over the real positions, each divided by
    /// B·T; nil without targets.
    static func losses<Scalar>(_ logits: Variable<Scalar>, batch: TokenBatch, context: ForwardContext<Scalar>) -> (
        crossEntropy: Variable<Scalar>, zLoss: Variable<Scalar>
    )? {
        guard let targets = batch.targets else { return nil }
        let (b, t) = (batch.batchSize, batch.length)
        let weight = Variable(constant: context.nonPadding ?? Tensor(repeating: 1, shape: [b, t, 1]))  // [B, T, 1]
        let logZ = logits.logSumExp()  // [B, T, 1]
        let targetLogit = logits.gatheringAlongLastAxis(targets)  // [B, T, 1]
        let positions = Scalar(b * t)
        let crossEntropy = ((logZ - targetLogit) * weight).sum() * (1 / positions)
        let zLoss = (logZ.squared() * weight).sum() * (1 / positions)
        return (crossEntropy, zLoss)
    }
}

extension GLaMModel where Weight == Tensor<Float> {
    /// The weights as constants (inference: nothing is recorded).
    public var constants: GLaMModel<Variable<Float>> { map { Variable(constant: $1) } }

    /// The weights as variables recorded on `tape` (for gradients).
    public func variables(on tape: Tape<Float>) -> GLaMModel<Variable<Float>> { map { tape.variable($1) } }
}

extension GLaMModel {
    /// The gradient of every weight after a backward pass: a model of gradient tensors, zero for a
    /// weight the loss does not depend on.
    public func gradients<Scalar>(from gradients: Gradients<Scalar>) -> GLaMModel<Tensor<Scalar>> where Weight == Variable<Scalar> {
        map { gradients[$1] ?? Tensor(zeros: $1.shape) }
    }
}
