// One core's share of an expert-parallel training step (MeshTrainer.swift). The decoder is cut at
// every MoE layer's all-to-alls into segments, each recorded on its own tape:
//
//   segment 0:     embedding, layers up to the first MoE layer's dispatch   → expert input, h, gates
//   experts s:     this core's experts (E/d of them, H/m of each) on the slots of every group
//   segment s + 1: combine of MoE layer s, the residual, layers up to the next dispatch (or the loss)
//
// Values cross segments as new leaves; backward runs the segments in reverse, each seeded with the
// gradients that came back into its outputs (`Tape.gradients(seeds:)`). Every piece computes
// exactly what `decoderForward` computes for this core's groups, so on one core the step is
// bitwise the single-device step.

/// One core's tapes and boundary values during a step. Only its own core's task touches it while
/// the cores run; the trainer reads it between phases.
final class CoreStep: @unchecked Sendable {
    let context: DecoderContext<Float>
    /// This core's parameters (expert weights: its shards).
    let parameters: [String: Tensor<Float>]
    let moeLayers: [Int]
    var segments: [Segment] = []
    var expertPasses: [ExpertPass] = []
    /// Gradients of this core's loss, accumulated over segments (expert weights: its shards).
    var gradients: [String: Tensor<Float>] = [:]

    /// A decoder segment's tape, its leaves and its outputs.
    struct Segment {
        let tape: Tape<Float>
        let variables: [String: Variable<Float>]
        /// Leaves fed from the previous segment (h, the two gates) and the experts (their outputs).
        var residual, firstGate, secondGate, expertOutput: Variable<Float>?
        /// What goes on: the expert input `[E, G·C, M]`, h, gates, aux loss and slots of the MoE layer.
        var expertInput, h, gateOne, gateTwo, auxLoss: Variable<Float>?
        var slots: [[Int]] = []
        var routing: Top2Routing?
        /// The last segment's CE and z-loss.
        var crossEntropy, zLoss: Variable<Float>?
        /// The gradients of this segment's tape, once its backward has run.
        var leafGradients: Gradients<Float>?
    }

    /// One MoE layer's local experts on a tape.
    struct ExpertPass {
        let tape: Tape<Float>
        let input, wi, wo, output: Variable<Float>
    }

    init(configuration: ModelConfiguration, batch: TokenBatch, parameters: [String: Tensor<Float>]) {
        context = DecoderContext(configuration: configuration, batch: batch)
        self.parameters = parameters
        moeLayers = (0..<configuration.numLayers).filter(configuration.isMoELayer)
    }

    var configuration: ModelConfiguration { context.configuration }

    /// Runs segment `s`; `expertOutput` `[E·G·C, M]` (this core's G groups) is what came back from the experts of MoE
    /// layer s − 1 (nil for s = 0).
    func forwardSegment(_ s: Int, expertOutput: Tensor<Float>?) throws {
        let tape = Tape<Float>()
        let p = parameters.filter { !MeshLayout.isExpertWeight($0.key) }.mapValues { tape.variable($0) }
        var segment = Segment(tape: tape, variables: p)
        var x: Variable<Float>  // [B, T, M]
        var first = 0
        if s == 0 {
            x = context.embedded(p)
        } else {
            let previous = segments[s - 1]
            let h = tape.variable(previous.h!.value), g1 = tape.variable(previous.gateOne!.value)
            let g2 = tape.variable(previous.gateTwo!.value), out = tape.variable(expertOutput!)
            let yg = combinedSlots(out, firstGate: g1, secondGate: g2, slots: previous.slots)  // [G, S, M]
            x = h + ungrouped(yg, like: h, paddings: context.paddings)
            (segment.residual, segment.firstGate, segment.secondGate, segment.expertOutput) = (h, g1, g2, out)
            first = moeLayers[s - 1] + 1
        }
        let end = s < moeLayers.count ? moeLayers[s] : configuration.numLayers
        for i in first..<end {
            let (h, y) = context.attentionBlock(i, x, p)
            x = h + context.denseFeedForward(i, y, p)
        }
        if s < moeLayers.count {
            let i = moeLayers[s]
            let (h, y) = context.attentionBlock(i, x, p)
            let gating: Top2GatingResult<Float>
            do {
                (_, gating) = try moeGating(
                    y, paddings: context.paddings, gate: p["layers.\(i).moe.gate"]!, configuration: context.moeConfiguration)
            } catch {
                throw ModelError("layer \(i): \(error.description)")
            }
            let xg = y.reshaped(to: [gating.routing.groups, gating.routing.groupSize, configuration.modelDim])  // [G, S, M]
            let (expertInput, slots) = dispatchedSlots(xg, gating: gating)  // [E, G·C, M]
            (segment.expertInput, segment.h, segment.gateOne, segment.gateTwo) = (expertInput, h, gating.firstGate, gating.secondGate)
            (segment.auxLoss, segment.slots, segment.routing) = (gating.auxLoss, slots, gating.routing)
        } else {
            (segment.crossEntropy, segment.zLoss) = context.losses(context.logits(x, p))!
        }
        segments.append(segment)
    }

    /// Runs this core's experts of MoE layer `s` on `input` `[E/d, G·C, M]`; returns `[E/d, G·C, M]`
    /// (a partial sum over H when H is split over `mdl`).
    func forwardExperts(_ s: Int, input: Tensor<Float>) -> Tensor<Float> {
        let tape = Tape<Float>()
        let prefix = "layers.\(moeLayers[s]).moe."
        let x = tape.variable(input), wi = tape.variable(parameters[prefix + "wi"]!), wo = tape.variable(parameters[prefix + "wo"]!)
        let out = experts(x, wi: wi, wo: wo, activation: configuration.moeActivation)
        expertPasses.append(ExpertPass(tape: tape, input: x, wi: wi, wo: wo, output: out))
        return out.value
    }

    /// The losses of this core's batch share: CE, z-loss, the aux losses summed over layers, and
    /// the total `CE + w_z·z + w_aux·Σaux` computed as `decoderForward` does.
    var losses: (loss: Float, crossEntropy: Float, zLoss: Float, auxLoss: Float) {
        let last = segments.last!
        var aux = Tensor<Float>(0)
        for segment in segments.dropLast() { aux = aux + segment.auxLoss!.value }
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
            seeds = [(segment.auxLoss!, Tensor(configuration.auxLossWeight)), (segment.expertInput!, expertInputGradient!)]
            for (output, leaf) in [(segment.h!, next.residual!), (segment.gateOne!, next.firstGate!), (segment.gateTwo!, next.secondGate!)]
            {
                if let gradient = next.leafGradients?[leaf] { seeds.append((output, gradient)) }
            }
        }
        let gradients = segment.tape.gradients(seeds: seeds.filter { $0.output.isRecorded })
        segments[s].leafGradients = gradients
        for (name, variable) in segment.variables {
            if let g = gradients[variable] { accumulate(name, g) }
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
        let prefix = "layers.\(moeLayers[s]).moe."
        accumulate(prefix + "wi", gradients[pass.wi] ?? Tensor(zeros: pass.wi.shape))
        accumulate(prefix + "wo", gradients[pass.wo] ?? Tensor(zeros: pass.wo.shape))
        return gradients[pass.input] ?? Tensor(zeros: pass.input.shape)
    }

    private func accumulate(_ name: String, _ gradient: Tensor<Float>) {
        gradients[name] = gradients[name].map { $0 + gradient } ?? gradient
    }
}
