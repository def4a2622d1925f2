// The load-balancing auxiliary loss of GShard (glam-spec.md section 4.5) and the variants MoE
// users compare it with. Only P (mean router probability) carries gradient; f comes from argmax.

/// The auxiliary loss for `routing` with router probabilities `p` `[G, S, E]`.
///
/// `.gshard` (GLaM, praxis): `aux = E² · mean_{g,e}(f_{g,e} · P_{g,e}) / d_g²` where
/// `f_{g,e}` = (tokens of group g whose top-1 is e, before capacity) / S,
/// `P_{g,e}` = Σ_s p_{g,s,e}·real_{g,s} / S, and `d_g` = 1 with `legacy_mtf_behavior`, otherwise the
/// share of real tokens in the group plus 1e-6. It is 1 when f or P is uniform (no padding).
/// See `AuxiliaryLossVariant` for the others.
func loadBalancingLoss<Scalar>(
    probabilities p: Variable<Scalar>, routing: Top2Routing, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration
) -> Variable<Scalar> {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    let real = Tensor<Scalar>(shape: [g, s, 1], scalars: routing.isReal.map { $0 ? 1 : 0 })
    // praxis multiplies p by (1 − paddings); with 0/1 paddings that is `real`.
    let nonPadding = paddings.map { Tensor<Scalar>(shape: [g, s, 1], scalars: $0.scalars.map { 1 - $0 }) } ?? real
    let meanProbability = (p * Variable(constant: nonPadding)).mean(alongAxes: [1])  // [G, 1, E]

    // f: counts of top-1 (or of either choice) per group and expert, before capacity.
    var counts = [Scalar](repeating: 0, count: g * e)
    for t in 0..<(g * s) where routing.isReal[t] {
        counts[(t / s) * e + routing.firstExpert[t]] += 1
        if configuration.auxiliaryLoss == .anyOfTwo || configuration.auxiliaryLoss == .anyOfTwoDividedByTwo,
            routing.secondChosen[t], routing.secondExpert[t] != routing.firstExpert[t]
        {
            counts[(t / s) * e + routing.secondExpert[t]] += 1
        }
    }
    let eSquared = Scalar(e * e)
    switch configuration.auxiliaryLoss {
    case .switchTop1:
        // Over the whole batch: E · Σ_e (Σ_g count / (G·S)) · (Σ_g P / G).
        var total = [Scalar](repeating: 0, count: e)
        for index in counts.indices { total[index % e] += counts[index] / Scalar(g * s) }
        let f = Variable<Scalar>(constant: Tensor(shape: [1, 1, e], scalars: total))
        return (meanProbability.mean(alongAxes: [0]) * f).sum() * Scalar(e)
    case .gshard, .anyOfTwo, .anyOfTwoDividedByTwo:
        var density = Tensor<Scalar>(shape: [g, 1, e], scalars: counts.map { $0 / Scalar(s) })  // f [G, 1, E]
        var proxy = meanProbability  // P [G, 1, E]
        if !configuration.legacyMTFBehavior {
            // Divide f and P by the share of real tokens in the group (praxis density_denom).
            let denominator = nonPadding.mean(alongAxes: [1]) + Scalar(1e-6)  // [G, 1, 1]
            density = density / denominator
            proxy = proxy / Variable(constant: denominator)
        }
        let loss = (proxy * Variable(constant: density)).mean() * eSquared
        return configuration.auxiliaryLoss == .anyOfTwoDividedByTwo ? loss * Scalar(0.5) : loss
    }
}
