// The load-balancing auxiliary loss of GShard (see the "Top-2 gating" article) and the variants
// MoE users compare it with. Only P (mean router probability) carries gradient; f comes from argmax,
// so every variant is linear in the router probabilities:
//
//   aux = Σ_{g,e} w_{g,e} · P_{g,e},   P_{g,e} = Σ_s p_{g,s,e} · real_{g,s} / S
//
// with the weights w of `loadBalancingWeights`, defined once here and used both by the loss and by
// its split into one share per token (`auxiliaryLossShares`).

/// The weights `w` `[G·E]` (and the non-padding `[G·S]` they go with) that make the auxiliary loss
/// `Σ_{g,e} w_{g,e} · P_{g,e}`:
///
/// - `.gshard` (GLaM, praxis `E² · mean_{g,e}(f_{g,e}/d_g · P_{g,e}/d_g)`): `w = E/G · f_{g,e} / d_g²`,
///   where `f_{g,e}` = (real tokens of group g whose top-1 is e, before capacity) / S and `d_g` = 1
///   with `legacy_mtf_behavior`, otherwise the share of real tokens in the group plus 1e-6;
/// - `.anyOfTwo`: the same with f counting either chosen expert; `.anyOfTwoDividedByTwo`: half that;
/// - `.switchTop1` (`E · Σ_e F_e · mean_g P_{g,e}`, f over the whole batch): `w = E/G · F_e`.
func loadBalancingWeights(
    routing: Top2Routing, paddings: [Double]?, configuration: Top2GatingConfiguration
) -> (weights: [Double], nonPadding: [Double]) {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    // praxis multiplies p by (1 − paddings); with 0/1 paddings that is `real`.
    let nonPadding = (0..<(g * s)).map { t in paddings.map { 1 - $0[t] } ?? (routing.isReal[t] ? 1 : 0) }
    let counts = auxiliaryLossCounts(routing, configuration: configuration)  // [G·E]
    let base = Double(e) / Double(g)
    switch configuration.auxiliaryLoss {
    case .switchTop1:
        var total = [Double](repeating: 0, count: e)  // F_e
        for index in counts.indices { total[index % e] += counts[index] / Double(g * s) }
        return ((0..<(g * e)).map { base * total[$0 % e] }, nonPadding)
    case .gshard, .anyOfTwo, .anyOfTwoDividedByTwo:
        let half = configuration.auxiliaryLoss == .anyOfTwoDividedByTwo ? 0.5 : 1
        let scale = (0..<g).map { group -> Double in
            guard !configuration.legacyMTFBehavior else { return base * half }
            // Divide f and P by the share of real tokens in the group (praxis density_denom).
            let d = nonPadding[(group * s)..<((group + 1) * s)].reduce(0, +) / Double(s) + 1e-6
            return base * half / (d * d)
        }
        return ((0..<(g * e)).map { scale[$0 / e] * counts[$0] / Double(s) }, nonPadding)
    }
}

/// The auxiliary loss for `routing` with router probabilities `p` `[G, S, E]`:
/// `Σ_{g,e} w_{g,e} · P_{g,e}` with the weights of `loadBalancingWeights`. It is 1 for `.gshard`
/// when f or P is uniform (no padding).
func loadBalancingLoss<Scalar>(
    probabilities p: Variable<Scalar>, routing: Top2Routing, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration
) -> Variable<Scalar> {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    let (weights, nonPadding) = loadBalancingWeights(
        routing: routing, paddings: paddings.map { $0.scalars.map { Double($0) } }, configuration: configuration)
    let realShare = Tensor<Scalar>(shape: [g, s, 1], scalars: nonPadding.map { Scalar($0) })
    let meanProbability = (p * Variable(constant: realShare)).mean(alongAxes: [1])  // P [G, 1, E]
    return (meanProbability * Variable(constant: Tensor(shape: [g, 1, e], scalars: weights.map { Scalar($0) }))).sum()
}

/// The counts behind f: per group and expert `[G·E]`, the real tokens whose top-1 (or, for the
/// any-of-two variants, either chosen expert) is that expert, before capacity.
func auxiliaryLossCounts(_ routing: Top2Routing, configuration: Top2GatingConfiguration) -> [Double] {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    var counts = [Double](repeating: 0, count: g * e)
    for t in 0..<(g * s) where routing.isReal[t] {
        counts[(t / s) * e + routing.firstExpert[t]] += 1
        if configuration.auxiliaryLoss == .anyOfTwo || configuration.auxiliaryLoss == .anyOfTwoDividedByTwo,
            routing.secondChosen[t], routing.secondExpert[t] != routing.firstExpert[t]
        {
            counts[(t / s) * e + routing.secondExpert[t]] += 1
        }
    }
    return counts
}

/// Each token's share of the auxiliary loss `[G·S]`: the loss is linear in the router
/// probabilities p (f is a constant), so it splits exactly into one term per token,
///
///     share(g, s) = real(g, s) · Σ_e w_{g,e} · p_{g,s,e} / S
///
/// with the loss's own weights w (`loadBalancingWeights`). The shares add up to the loss (tested); a
/// token whose router favours the experts its group already overloads carries the largest share.
public func auxiliaryLossShares<Scalar: TensorScalar>(
    probabilities p: Tensor<Scalar>, routing: Top2Routing, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration
) -> [Double] {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    precondition(p.shape == [g, s, e], "auxiliaryLossShares: probabilities \(p.shape) for routing [\(g), \(s), \(e)]")
    let (weights, nonPadding) = loadBalancingWeights(
        routing: routing, paddings: paddings.map { $0.scalars.map { Double($0) } }, configuration: configuration)
    return (0..<(g * s)).map { t in
        let group = t / s
        var dot = 0.0
        for j in 0..<e { dot += weights[group * e + j] * Double(p.scalars[t * e + j]) }
        return nonPadding[t] * dot / Double(s)
    }
}
