// The reference MoE layer that the library's index-based layer must equal: praxis'
// `TransformerFeedForwardMoe` written with its own einsums over the dense, mostly-zero
// [G, S, E, C] dispatch and combine tensors (praxis `gshard_utils.top2_gating_on_logits` gives
// them), built from differentiable operations so that gradients can be compared too:
//
//   combine[g, s, e, c] = gate_k(s) where choice k of token s holds slot c of expert e, else 0
//   dispatch = combine ≠ 0
//   expert_in = einsum('gsec,gsm->egcm', dispatch, x)
//   out = act(expert_in · Wi[e]) · Wo[e]
//   y = einsum('gsec,egcm->gsm', combine, out), padded rows zeroed
//
// It shares only top-2 gating with the library (tested on its own against praxis); the dispatch,
// experts and combine are written here again, the way praxis writes them.

@testable import GLaM

/// praxis' MoE layer with dense dispatch and combine einsums, on `x` `[B, T, M]`.
func denseMoELayer<Scalar>(
    _ x: Variable<Scalar>, paddings: Tensor<Scalar>?, weights: MoEWeights<Scalar>, configuration: MoELayerConfiguration
) throws -> MoELayerOutput<Scalar> {
    let (b, t, m) = (x.shape[0], x.shape[1], x.shape[2])
    let g = configuration.numGroups
    let s = b * t / g
    let xg = x.reshaped(to: [g, s, m])  // [G, S, M]
    let logits = matmul(xg, weights.gate)  // [G, S, E]
    let gating = try top2Gating(logits: logits, paddings: paddings?.reshaped(to: [g, s]), configuration: configuration.gating)
    let r = gating.routing
    let (e, c) = (r.numExperts, r.capacity)
    // One-hot position of each dispatched choice in [G, S, E·C].
    var positions = [[Scalar]](repeating: [Scalar](repeating: 0, count: g * s * e * c), count: 2)
    for token in 0..<(g * s) {
        for k in 0..<2 where gating.isDispatched(token: token, choice: k) {
            let (expert, slot) = k == 0 ? (r.firstExpert[token], r.firstSlot[token]) : (r.secondExpert[token], r.secondSlot[token])
            positions[k][(token * e + expert) * c + slot] = 1
        }
    }
    let oneHot = positions.map { Variable(constant: Tensor(shape: [g, s, e * c], scalars: $0)) }
    let combine = gating.firstGate * oneHot[0] + gating.secondGate * oneHot[1]  // [G, S, E·C]
    let dispatch = Variable(constant: combine.value.map { $0 != 0 ? 1 : 0 })  // [G, S, E·C]
    let gathered = matmul(dispatch, xg, transposeA: true)  // 'gsec,gsm->gecm' [G, E·C, M]
    let expertIn = gathered.reshaped(to: [g, e, c, m]).transposed(permutation: [1, 0, 2, 3]).reshaped(to: [e, g * c, m])
    let hidden = matmul(expertIn, weights.wi)  // [E, G·C, H]
    let out = matmul(configuration.activation == .relu ? hidden.relu() : hidden.gelu(), weights.wo)  // [E, G·C, M]
    let outByGroup = out.reshaped(to: [e, g, c, m]).transposed(permutation: [1, 0, 2, 3]).reshaped(to: [g, e * c, m])
    var y = matmul(combine, outByGroup).reshaped(to: [b, t, m])  // 'gsec,gecm->gsm', [B, T, M]
    if let paddings { y = y * Variable(constant: paddings.map { 1 - $0 }.reshaped(to: [b, t, 1])) }
    return MoELayerOutput(output: y, gating: gating)
}
