// One core's share of an expert-parallel training step (MeshTrainer.swift). The decoder is cut at
// every MoE layer's all-to-alls into segments, each recorded on its own tape:
//
//   segment 0:     embedding, layers up to the first MoE layer's dispatch   → expert input, h, gates
//   experts s:     this core's experts (E/d of them, H/m of each) on the slots of every group
//   segment s + 1: combine of MoE layer s, the residual, layers up to the next dispatch (or the loss)
//
// Values cross segments as new leaves; backward runs the segments in reverse, each seeded with the
// gradients that came back into its outputs (`Tape.gradients(seeds:)`). Every piece computes
// exactly what the full pass computes for this core's groups, so on one core the step is
// bitwise the single-device step.

/// One core's tapes and boundary values during a step. Only its own core's task touches it while
/// the cores run; the trainer reads it between phases.
final class CoreStep: @unchecked Sendable {
    let context: ForwardContext<Float>
    let batch: TokenBatch
    /// This core's parameters (expert weights: its shards).
    let parameters: ModelParameters
    let moeLayers: [Int]
    var segments: [Segment] = []
    var expertPasses: [ExpertPass] = []
    /// Gradients of this core's loss, accumulated over segments (expert weights: its shards).
    var gradients: [ParameterPath: Tensor<Float>] = [:]

    /// A decoder segment's tape, its leaves and its outputs.
    struct Segment {
        let tape: Tape<Float>
        let variables: GLaMModel<Variable<Float>>
        /// Leaves fed from the previous segment (h, the two gates) and the experts (their outputs).
        var residual, firstGate, secondGate, expertOutput: Variable<Float>?
        /// The MoE layer this segment ends with, cut at its experts (nil for the last segment).
        var open: OpenLayer<Float>?
        /// The last segment's logits `[B, T, V]`, and its CE and z-loss (with targets).
        var logits, crossEntropy, zLoss: Variable<Float>?
        /// The gradients of this segment's tape, once its backward has run.
        var leafGradients: Gradients<Float>?

        /// The routed tokens of the MoE layer this segment ends with.
        var routed: RoutedTokens<Float>? { open?.routed }
    }

    /// One MoE layer's local experts on a tape.
    struct ExpertPass {
        let tape: Tape<Float>
        let input, wi, wo, output: Variable<Float>
    }

    init(configuration: ModelConfiguration, batch: TokenBatch, parameters: ModelParameters, observer: (any ForwardObserver)? = nil) {
        context = ForwardContext(configuration: configuration, batch: batch, observer: observer)
        self.batch = batch
        self.parameters = parameters
        moeLayers = configuration.moeLayers
    }

    var configuration: ModelConfiguration { context.configuration }

    /// Runs segment `s`: the closing of MoE layer s − 1 (its experts' outputs `expertOutput`
    /// `[E·G·C, M]` for this core's G groups; nil for s = 0, which embeds instead), the dense layers
    /// after it, and the opening of MoE layer s (or the logits and losses after the last layer).
    /// The layers are `DecoderLayer`'s own opening, call and closing.
    func forwardSegment(_ s: Int, expertOutput: Tensor<Float>?) throws {
        let tape = Tape<Float>()
        let p = parameters.variables(on: tape)
        var segment = Segment(tape: tape, variables: p)
        var noCache: KeyValueCache<Float>? = nil
        var x: Variable<Float>  // [B, T, M]
        var first = 0
        if s == 0 {
            x = p.embedded(batch.tokens, batchSize: batch.batchSize, context: context)
        } else {
            let i = moeLayers[s - 1]
            let previous = segments[s - 1]
            let routed = previous.routed!
            let h = tape.variable(previous.open!.residual.value), out = tape.variable(expertOutput!)
            let g1 = tape.variable(routed.gating.firstGate.value), g2 = tape.variable(routed.gating.secondGate.value)
            x = p.layers[i].closing(
                residual: h, .experts(ExpertReturn(output: out, firstGate: g1, secondGate: g2, slots: routed.slots)), layer: i,
                context: context)
            (segment.residual, segment.firstGate, segment.secondGate, segment.expertOutput) = (h, g1, g2, out)
            first = i + 1
        }
        let end = s < moeLayers.count ? moeLayers[s] : configuration.numLayers
        for i in first..<end {
            x = try p.layers[i](x, layer: i, context: context, cache: &noCache).output
        }
        if s < moeLayers.count {
            let i = moeLayers[s]
            segment.open = try p.layers[i].opening(x, layer: i, context: context, cache: &noCache)
        } else {
            let (logits, losses) = p.head(x, batch: batch, context: context)  // [B, T, V]
            segment.logits = logits
            if let (crossEntropy, zLoss) = losses { (segment.crossEntropy, segment.zLoss) = (crossEntropy, zLoss) }
        }
        segments.append(segment)
    }

    /// The expert weights of MoE layer `s` on this core (its shards).
    private func expertWeights(_ s: Int) -> MixtureOfExperts<Tensor<Float>> {
        parameters.layers[moeLayers[s]].feedForward.mixtureOfExperts!
    }

    /// Runs this core's experts of MoE layer `s` on `input` `[E/d, G·C, M]`; returns `[E/d, G·C, M]`
    /// (a partial sum over H when H is split over `mdl`).
    func forwardExperts(_ s: Int, input: Tensor<Float>) -> Tensor<Float> {
        let tape = Tape<Float>()
        let weights = expertWeights(s)
        let x = tape.variable(input), wi = tape.variable(weights.wi), wo = tape.variable(weights.wo)
        let out = MixtureOfExperts(gate: Variable(constant: weights.gate), wi: wi, wo: wo).experts(
            x, activation: configuration.moeActivation)
        expertPasses.append(ExpertPass(tape: tape, input: x, wi: wi, wo: wo, output: out))
        return out.value
    }

    /// The losses of this core's batch share: CE, z-loss, the aux losses summed over layers, and
    /// the total `CE + w_z·z + w_aux·Σaux` computed as the full pass does.
    var losses: (loss: Float, crossEntropy: Float, zLoss: Float, auxLoss: Float) {
        let last = segments.last!
        var aux = Tensor<Float>(0)
        for segment in segments.dropLast() { aux = aux + segment.routed!.gating.auxLoss.value }
        let (ce, z) = (last.crossEntropy!.value, last.zLoss!.value)
        let loss = ce + z * configuration.zLossWeight + aux * configuration.auxLossWeight
        return (loss.scalar, ce.scalar, z.scalar, aux.scalar)
    }

    /// Backward through segment `s`. For the last segment the seed is d loss = 1; otherwise the
    /// expert input gets `expertInputGradient` `[E, G·C, M]` and h and the gates get what the next
    /// segment sent back. Accumulates parameter gradients.
    func backwardSegment(_ s: Int, expertInputGradient: Tensor<Float>?) {
        let segment = segments[s]
        var seeds: [(output: Variable<Float>, seed: Tensor<Float>)]
        if s == segments.count - 1 {
            seeds = [(segment.crossEntropy!, Tensor(1)), (segment.zLoss!, Tensor(configuration.zLossWeight))]
        } else {
            let next = segments[s + 1]
            let (open, routed) = (segment.open!, segment.routed!)
            seeds = [(routed.gating.auxLoss, Tensor(configuration.auxLossWeight)), (routed.expertInput, expertInputGradient!)]
            for (output, leaf) in [
                (open.residual, next.residual!), (routed.gating.firstGate, next.firstGate!), (routed.gating.secondGate, next.secondGate!),
            ] {
                if let gradient = next.leafGradients?[leaf] { seeds.append((output, gradient)) }
            }
        }
        let gradients = segment.tape.gradients(seeds: seeds.filter { $0.output.isRecorded })
        segments[s].leafGradients = gradients
        for (path, variable) in segment.variables.weights {
            if let g = gradients[variable] { accumulate(path, g) }
        }
    }

    /// The gradient that reached the expert outputs fed into segment `s` `[E·G·C, M]`.
    func expertOutputGradient(_ s: Int) -> Tensor<Float> {
        let segment = segments[s]
        return segment.leafGradients?[segment.expertOutput!] ?? Tensor(zeros: segment.expertOutput!.shape)
    }

    /// Backward through the experts of MoE layer `s` with d output `gradient` `[E/d, G·C, M]`;
    /// accumulates the expert weights' gradients and returns d input (partial over H when split).
    func backwardExperts(_ s: Int, gradient: Tensor<Float>) -> Tensor<Float> {
        let pass = expertPasses[s]
        let gradients = pass.tape.gradients(seeds: [(pass.output, gradient)])
        accumulate(.layer(moeLayers[s], .expertInput), gradients[pass.wi] ?? Tensor(zeros: pass.wi.shape))
        accumulate(.layer(moeLayers[s], .expertOutput), gradients[pass.wo] ?? Tensor(zeros: pass.wo.shape))
        return gradients[pass.input] ?? Tensor(zeros: pass.input.shape)
    }

    private func accumulate(_ path: ParameterPath, _ gradient: Tensor<Float>) {
        gradients[path] = gradients[path].map { $0 + gradient } ?? gradient
    }
}
