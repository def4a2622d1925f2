// The load-balancing auxiliary loss of GShard (see the "Top-2 gating" article) and the variants
// MoE users compare it with. Only P (mean router probability) carries gradient; f comes from argmax.

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

    let counts: [Scalar] = auxiliaryLossCounts(routing, configuration: configuration)  // [G, E]
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

/// The counts behind f: per group and expert `[G·E]`, the real tokens whose top-1 (or, for the
/// any-of-two variants, either chosen expert) is that expert, before capacity.
func auxiliaryLossCounts<Scalar: TensorScalar>(_ routing: Top2Routing, configuration: Top2GatingConfiguration) -> [Scalar] {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    var counts = [Scalar](repeating: 0, count: g * e)
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
///     .gshard:  share(g, s) = E / (G·S·d_g²) · real(g, s) · Σ_e f_{g,e} · p_{g,s,e}
///
/// (d_g = 1 with `legacy_mtf_behavior`), halved for `.anyOfTwoDividedByTwo`, and with f summed over
/// groups (E · F_e / (G·S)) for `.switchTop1`. The shares add up to the loss (tested); a token whose
/// router favours the experts its group already overloads carries the largest share.
public func auxiliaryLossShares<Scalar: TensorScalar>(
    probabilities p: Tensor<Scalar>, routing: Top2Routing, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration
) -> [Double] {
    let (g, s, e) = (routing.groups, routing.groupSize, routing.numExperts)
    precondition(p.shape == [g, s, e], "auxiliaryLossShares: probabilities \(p.shape) for routing [\(g), \(s), \(e)]")
    let counts: [Double] = auxiliaryLossCounts(routing, configuration: configuration)
    let nonPadding = (0..<(g * s)).map { t in paddings.map { 1 - Double($0.scalars[t]) } ?? (routing.isReal[t] ? 1 : 0) }
    var f = counts.map { $0 / Double(s) }  // [G, E]
    var scale = (0..<g).map { _ in Double(e) / Double(g * s) }  // per group
    switch configuration.auxiliaryLoss {
    case .switchTop1:
        var total = [Double](repeating: 0, count: e)
        for index in counts.indices { total[index % e] += counts[index] / Double(g * s) }
        f = (0..<(g * e)).map { total[$0 % e] }
    case .gshard, .anyOfTwo, .anyOfTwoDividedByTwo:
        if !configuration.legacyMTFBehavior {
            for group in 0..<g {
                let denominator = nonPadding[(group * s)..<((group + 1) * s)].reduce(0, +) / Double(s) + 1e-6
                scale[group] /= denominator * denominator
            }
        }
        if configuration.auxiliaryLoss == .anyOfTwoDividedByTwo { scale = scale.map { $0 / 2 } }
    }
    return (0..<(g * s)).map { t in
        let group = t / s
        var dot = 0.0
        for j in 0..<e { dot += f[group * e + j] * Double(p.scalars[t * e + j]) }
        return scale[group] * nonPadding[t] * dot
    }
}
