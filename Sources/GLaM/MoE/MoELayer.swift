// The mixture-of-experts feed-forward layer of GLaM's even layers (praxis `TransformerFeedForwardMoe`
// without its norm and residual; see the "Top-2 gating" article):
//
//   x [B, T, M] → [G, S, M]                    groups of S = B·T/G consecutive tokens
//   logits = x · W_g               [G, S, E]   router, no bias
//   gating (top-2, capacity C)     → gates, aux loss
//   expert_in[e, g, c] = x[g, s] for the token s in slot c of expert e     [E, G·C, M]
//   out = act(expert_in · Wi[e]) · Wo[e]                                    [E, G·C, M]
//   y[g, s] = Σ_k gate_k(s) · out[e_k(s), g, c_k(s)]                         [G, S, M]
//   y → [B, T, M], padded rows zeroed
//
// Two equivalent implementations of dispatch and combine are kept:
// - `.dense`: praxis' own einsums with the [G, S, E, C] dispatch and combine tensors (the readable
//   reference: 'gsec,gsm->egcm' and 'gsec,egcm->gsm');
// - `.indexed`: the same through row gathers, never forming the mostly-zero [G, S, E, C] tensors.
// Groups stay explicit: they are the unit the virtual mesh spreads over cores.

/// The expert feed-forward activation (GLaM-family papers write GELU; praxis' default MoE layer
/// uses ReLU).
public enum ExpertActivation: String, Sendable, CaseIterable {
    /// GELU, tanh approximation.
    case geluTanh = "gelu_tanh"
    /// ReLU.
    case relu
}

/// How the MoE layer moves tokens to experts and back.
public enum DispatchImplementation: Sendable, CaseIterable {
    /// Dense einsums with the `[G, S, E, C]` dispatch and combine tensors (praxis' form).
    case dense
    /// Row gathers by slot index (no `[G, S, E, C]` tensors).
    case indexed
}

/// Settings of one MoE layer.
public struct MoELayerConfiguration: Sendable, Equatable {
    /// The top-2 gating settings.
    public var gating: Top2GatingConfiguration
    /// G, the number of groups the B·T tokens are split into (praxis `num_groups`).
    public var numGroups: Int
    /// The experts' activation.
    public var activation: ExpertActivation

    /// A configuration.
    public init(gating: Top2GatingConfiguration, numGroups: Int, activation: ExpertActivation) {
        self.gating = gating
        self.numGroups = numGroups
        self.activation = activation
    }
}

/// The weights of one mixture-of-experts feed-forward layer (praxis `TransformerFeedForwardMoe`;
/// file names `layers.{i}.moe.*`).
public struct MixtureOfExperts<Weight> {
    /// Router W_g `[M, E]`, no bias (praxis `gate`).
    public var gate: Weight
    /// Expert input matrices `[E, M, H]` (praxis `wi`).
    public var wi: Weight
    /// Expert output matrices `[E, H, M]` (praxis `wo`).
    public var wo: Weight

    /// MoE weights.
    public init(gate: Weight, wi: Weight, wo: Weight) {
        (self.gate, self.wi, self.wo) = (gate, wi, wo)
    }
}

extension MixtureOfExperts: Sendable where Weight: Sendable {}
extension MixtureOfExperts: Equatable where Weight: Equatable {}

/// The weights of one MoE layer as variables.
public typealias MoEWeights<Scalar: TensorScalar> = MixtureOfExperts<Variable<Scalar>>

/// One MoE layer's tokens gated and placed in their experts' slots: what the all-to-all carries to
/// the experts, and what the combine needs when their outputs come back.
public struct RoutedTokens<Scalar: TensorScalar> {
    /// The top-2 gating (routing decisions, gates, aux loss).
    public let gating: Top2GatingResult<Scalar>
    /// `expert_in[e, g·C + c]`: the token in slot c of expert e in group g, zero for empty slots `[E, G·C, M]`.
    public let expertInput: Variable<Scalar>
    /// Per choice k (0, 1), each token's row in the `[E·G·C]` expert buffers, -1 when not dispatched.
    public let slots: [[Int]]
}

/// The output of an MoE layer.
public struct MoELayerOutput<Scalar: TensorScalar> {
    /// The layer output `[B, T, M]` (no residual; padded rows are zero).
    public let output: Variable<Scalar>
    /// The gating result (routing, gates, unweighted aux loss).
    public let gating: Top2GatingResult<Scalar>
}

/// Applies the MoE feed-forward layer to `x` `[B, T, M]` (already RMS-normalised).
///
/// - Parameters:
///   - x: the layer input `[B, T, M]`.
///   - paddings: `[B, T]`, 1 = padding; padded tokens are routed nowhere and output zero.
///   - weights: the router and the experts.
///   - configuration: gating, groups and activation.
///   - implementation: `.indexed` (fast) or `.dense` (praxis' einsums); they agree.
/// - Throws: `Top2GatingConfiguration.Invalid` for a configuration that does not fit the input.
@_specialize(where Scalar == Float)
public func moeLayer<Scalar>(
    _ x: Variable<Scalar>, paddings: Tensor<Scalar>?, weights: MoEWeights<Scalar>,
    configuration: MoELayerConfiguration, implementation: DispatchImplementation = .indexed
) throws(Top2GatingConfiguration.Invalid) -> MoELayerOutput<Scalar> {
    let e = configuration.gating.numExperts
    if x.value.rank == 3 {
        let m = x.shape[2]
        guard weights.wi.value.rank == 3, weights.wi.shape[0] == e, weights.wi.shape[1] == m,
            weights.wo.shape == [e, weights.wi.shape[2], m]
        else {
            throw .init(description: "MoE weights wi \(weights.wi.shape), wo \(weights.wo.shape) do not fit M = \(m), E = \(e)")
        }
    }
    let (xg, _, gating) = try moeGating(x, paddings: paddings, gate: weights.gate, configuration: configuration)  // [G, S, M]
    let yg = dispatchThroughExperts(xg, gating: gating, implementation: implementation) { expertIn in
        experts(expertIn, wi: weights.wi, wo: weights.wo, activation: configuration.activation)
    }  // [G, S, M]
    return MoELayerOutput(output: ungrouped(yg, like: x, paddings: paddings), gating: gating)
}

/// The MoE layer up to the dispatch: `x` `[B, T, M]` in groups `[G, S, M]`, the router logits
/// `x · gate` `[G, S, E]` and their top-2 gating. Checks the shapes of the input, router and paddings.
func moeGating<Scalar>(
    _ x: Variable<Scalar>, paddings: Tensor<Scalar>?, gate: Variable<Scalar>, configuration: MoELayerConfiguration
) throws(Top2GatingConfiguration.Invalid) -> (groups: Variable<Scalar>, logits: Variable<Scalar>, gating: Top2GatingResult<Scalar>) {
    guard x.value.rank == 3 else { throw .init(description: "MoE input must be [B, T, M], got \(x.shape)") }
    let (b, t, m) = (x.shape[0], x.shape[1], x.shape[2])
    let g = configuration.numGroups
    guard g >= 1, (b * t) % g == 0 else {
        throw .init(description: "num_groups \(g) does not divide the \(b * t) tokens (B·T = \(b)·\(t))")
    }
    let s = b * t / g
    let e = configuration.gating.numExperts
    guard gate.shape == [m, e] else { throw .init(description: "the router weights \(gate.shape) do not fit M = \(m), E = \(e)") }
    if let paddings, paddings.shape != [b, t] {
        throw .init(description: "paddings must be [B, T] = [\(b), \(t)], got \(paddings.shape)")
    }
    let c = try configuration.gating.capacity(groupSize: s)
    try configuration.gating.checkBuffers(capacity: c, elements: [e, g, c, m], what: "the experts' slot buffers [E, G, C, M]")
    let xg = x.reshaped(to: [g, s, m])  // [G, S, M]
    let logits = matmul(xg, gate)  // [G, S, E]
    let gating = try top2Gating(logits: logits, paddings: paddings?.reshaped(to: [g, s]), configuration: configuration.gating)
    return (xg, logits, gating)
}

/// The combined expert outputs `[G, S, M]` back in the shape of the layer input `x` `[B, T, M]`,
/// with padded rows zeroed.
func ungrouped<Scalar>(_ yg: Variable<Scalar>, like x: Variable<Scalar>, paddings: Tensor<Scalar>?) -> Variable<Scalar> {
    let (b, t, m) = (x.shape[0], x.shape[1], x.shape[2])
    let y = yg.reshaped(to: [b, t, m])  // [B, T, M]
    guard let paddings else { return y }
    return y * Variable(constant: paddings.map { 1 - $0 }.reshaped(to: [b, t, 1]))
}

/// Dispatches the tokens of `xg` `[G, S, M]` to their experts' slots `[E, G·C, M]`, applies
/// `expertFunction` to them, and combines the results back with the gates into `[G, S, M]`.
///
/// This is the part of the MoE layer that the virtual mesh distributes (the two all-to-alls sit
/// around `expertFunction`). Empty slots carry zero rows.
@_specialize(where Scalar == Float)
public func dispatchThroughExperts<Scalar>(
    _ xg: Variable<Scalar>, gating: Top2GatingResult<Scalar>, implementation: DispatchImplementation,
    _ expertFunction: (Variable<Scalar>) -> Variable<Scalar>
) -> Variable<Scalar> {
    let r = gating.routing
    let (g, s, e, c) = (r.groups, r.groupSize, r.numExperts, r.capacity)
    let m = xg.shape[2]
    switch implementation {
    case .dense:
        let combine = gating.combine().reshaped(to: [g, s, e * c])  // [G, S, E·C]
        let dispatch = Variable(constant: combine.value.map { $0 != 0 ? 1 : 0 })  // [G, S, E·C]
        let gathered = matmul(dispatch, xg, transposeA: true)  // 'gsec,gsm->gecm' [G, E·C, M]
        let expertIn = gathered.reshaped(to: [g, e, c, m]).transposed(permutation: [1, 0, 2, 3]).reshaped(to: [e, g * c, m])
        let out = expertFunction(expertIn)  // [E, G·C, M]
        let outByGroup = out.reshaped(to: [e, g, c, m]).transposed(permutation: [1, 0, 2, 3]).reshaped(to: [g, e * c, m])
        return matmul(combine, outByGroup)  // 'gsec,gecm->gsm' [G, S, M]
    case .indexed:
        let (expertIn, slots) = dispatchedSlots(xg, gating: gating)  // [E, G·C, M]
        let out = expertFunction(expertIn).reshaped(to: [e * g * c, m])  // [E·G·C, M]
        return combinedSlots(out, firstGate: gating.firstGate, secondGate: gating.secondGate, slots: slots)  // [G, S, M]
    }
}

/// The index-based dispatch: `expert_in[e, g·C + c] = x[g, s]` for the token s in slot c of expert
/// e, zero rows for empty slots. Returns `[E, G·C, M]` and, per choice k, each token's row in it
/// (-1 when not dispatched).
func dispatchedSlots<Scalar>(_ xg: Variable<Scalar>, gating: Top2GatingResult<Scalar>) -> (Variable<Scalar>, [[Int]]) {
    let r = gating.routing
    let (g, s, e, c) = (r.groups, r.groupSize, r.numExperts, r.capacity)
    let m = xg.shape[2]
    var source = [Int](repeating: -1, count: e * g * c)
    var slotOf = [[Int](repeating: -1, count: g * s), [Int](repeating: -1, count: g * s)]
    for token in 0..<(g * s) {
        for k in 0..<2 where gating.isDispatched(token: token, choice: k) {
            let expert = k == 0 ? r.firstExpert[token] : r.secondExpert[token]
            let slot = (expert * g + token / s) * c + (k == 0 ? r.firstSlot[token] : r.secondSlot[token])
            source[slot] = token
            slotOf[k][token] = slot
        }
    }
    return (xg.reshaped(to: [g * s, m]).gatheringRowsOrZero(source).reshaped(to: [e, g * c, m]), slotOf)
}

/// The index-based combine: `y[g, s] = Σ_k gate_k · out[slot_k(g, s)]` from expert outputs
/// `[E·G·C, M]`; returns `[G, S, M]`.
/// The gates are `[G, S, 1]`.
func combinedSlots<Scalar>(
    _ out: Variable<Scalar>, firstGate: Variable<Scalar>, secondGate: Variable<Scalar>, slots: [[Int]]
) -> Variable<Scalar> {
    let (g, s, m) = (firstGate.shape[0], firstGate.shape[1], out.shape[1])
    let first = out.gatheringRowsOrZero(slots[0]).reshaped(to: [g, s, m]) * firstGate  // [G, S, M]
    let second = out.gatheringRowsOrZero(slots[1]).reshaped(to: [g, s, m]) * secondGate  // [G, S, M]
    return first + second
}

/// The E expert feed-forward networks on their slots: `act(x · Wi[e]) · Wo[e]`, `[E, A, M] → [E, A, M]`.
/// On the mesh, `wi` and `wo` may be a core's slice of the experts (and of H: then the result is a
/// partial sum over H).
func experts<Scalar>(_ x: Variable<Scalar>, wi: Variable<Scalar>, wo: Variable<Scalar>, activation: ExpertActivation) -> Variable<Scalar> {
    let hidden = matmul(x, wi)  // [E, A, H]
    let activated = activation == .relu ? hidden.relu() : hidden.gelu()
    return matmul(activated, wo)  // [E, A, M]
}

extension MixtureOfExperts {
    /// The first half of the MoE layer, up to the all-to-all: `y` `[B, T, M]` in G groups, the
    /// router logits `[G, S, E]`, top-2 gating, and the dispatch of every kept choice into its
    /// expert's slots `[E, G·C, M]`. `configuration.numGroups` sets G. The expert weights are not
    /// read (on the mesh they are elsewhere). `trace`, when given, receives the router logits and
    /// probabilities, the dispatch and combine tensors `[G, S, E, C]`, the aux loss and the expert
    /// inputs `[E, G, C, M]`.
    ///
    /// - Throws: `Top2GatingConfiguration.Invalid` for a configuration that does not fit the input.
    func route<Scalar>(
        _ y: Variable<Scalar>, paddings: Tensor<Scalar>?, configuration: MoELayerConfiguration,
        trace: ((_ name: String, _ value: Tensor<Scalar>) -> Void)? = nil
    ) throws(Top2GatingConfiguration.Invalid) -> RoutedTokens<Scalar> where Weight == Variable<Scalar> {
        let (xg, logits, gating) = try moeGating(y, paddings: paddings, gate: gate, configuration: configuration)  // [G, S, M]
        let (expertInput, slots) = dispatchedSlots(xg, gating: gating)  // [E, G·C, M]
        if let trace {
            let r = gating.routing
            trace("router_logits", logits.value)  // [G, S, E]
            trace("router_probabilities", gating.probabilities.value)  // [G, S, E]
            trace("dispatch", gating.dispatchTensor())  // [G, S, E, C]
            trace("combine", gating.combineTensor())  // [G, S, E, C]
            trace("aux_loss", gating.auxLoss.value)  // []
            trace("expert_inputs", expertInput.value.reshaped(to: [r.numExperts, r.groups, r.capacity, y.shape[2]]))  // [E, G, C, M]
        }
        return RoutedTokens(gating: gating, expertInput: expertInput, slots: slots)
    }
}

/// The second half of the MoE layer, after the experts: each token's two expert outputs, weighted
/// by its gates, `y[g, s] = Σ_k gate_k · out[slot_k(g, s)]`, back in the shape of the layer input
/// `like` `[B, T, M]` with padded rows zeroed. `expertOutput` is `[E·G·C, M]`; the gates `[G, S, 1]`.
func combinedExpertOutputs<Scalar>(
    _ expertOutput: Variable<Scalar>, firstGate: Variable<Scalar>, secondGate: Variable<Scalar>, slots: [[Int]],
    like y: Variable<Scalar>, paddings: Tensor<Scalar>?
) -> Variable<Scalar> {
    let yg = combinedSlots(expertOutput, firstGate: firstGate, secondGate: secondGate, slots: slots)  // [G, S, M]
    return ungrouped(yg, like: y, paddings: paddings)  // [B, T, M]
}
