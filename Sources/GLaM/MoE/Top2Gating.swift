// The differentiable half of GShard top-2 gating: router probabilities, the two gate values of
// every token, and the load-balancing auxiliary loss, built from differentiable operations on
// top of the routing decisions (Top2Routing.swift). Gradients therefore reach the logits through
// the softmax, the gates and the aux loss, never through argmax.
//
// praxis `top2_gating_on_logits` ("Top-2 gating" article), with p = softmax(logits) over E:
//   g₁ = p[i₁]·real,  g₂ = p[i₂]·[i₂ ≠ i₁]·chosen₂
//   legacy_mtf_behavior:  g₁, g₂ ← g₁/(g₁ + g₂ + 1e-9), g₂/(g₁ + g₂ + 1e-9), then × kept
//   otherwise:            g₁, g₂ ← g₁·kept₁, g₂·kept₂, then ÷ their sum where it is > 0
//   aux = E² · mean_{g,e}(f_{g,e} · P_{g,e}),  f = top-1 share before capacity, P = mean p

/// The result of top-2 gating: routing decisions, differentiable gates and auxiliary loss.
public struct Top2GatingResult<Scalar: TensorScalar> {
    /// The discrete decisions (experts, slots, drops).
    public let routing: Top2Routing
    /// The router probabilities p = softmax(logits) `[G, S, E]` (praxis `raw_gates`).
    public let probabilities: Variable<Scalar>
    /// Combine weight of each token's first choice `[G, S, 1]` (0 when dropped or padding).
    public let firstGate: Variable<Scalar>
    /// Combine weight of each token's second choice `[G, S, 1]` (0 when dropped or not chosen).
    public let secondGate: Variable<Scalar>
    /// The load-balancing loss (rank 0), unweighted (GLaM multiplies it by 0.01 per layer).
    public let auxLoss: Variable<Scalar>

    /// Whether choice `k` (0 or 1) of token `t` is dispatched: kept by capacity with a non-zero
    /// gate (praxis: `dispatch = combine != 0`).
    @_specialize(where Scalar == Float)
    public func isDispatched(token t: Int, choice k: Int) -> Bool {
        precondition(k == 0 || k == 1, "isDispatched: choice must be 0 (first) or 1 (second), got \(k)")
        let slot = k == 0 ? routing.firstSlot[t] : routing.secondSlot[t]
        let gate = (k == 0 ? firstGate : secondGate).value.scalars[t]
        return slot >= 0 && gate != 0
    }

    /// Tokens routed to 0, 1 and 2 experts, padding not counted (praxis `dispatch_0/1/2`).
    public var tokensRoutedTo: [Int] {
        var counts = [0, 0, 0]
        for t in routing.isReal.indices where routing.isReal[t] {
            counts[(isDispatched(token: t, choice: 0) ? 1 : 0) + (isDispatched(token: t, choice: 1) ? 1 : 0)] += 1
        }
        return counts
    }

    /// Mean entropy −Σ_e p log p of the router distribution over real tokens (nats).
    public var routerEntropy: Scalar {
        let e = routing.numExperts
        var total: Scalar = 0
        var count = 0
        for t in routing.isReal.indices where routing.isReal[t] {
            for j in 0..<e {
                let p = probabilities.value.scalars[t * e + j]
                if p > 0 { total -= p * Scalar.log(p) }
            }
            count += 1
        }
        return count == 0 ? 0 : total / Scalar(count)
    }

    /// The combine tensor `[G, S, E, C]` (praxis `combine_tensor`): the gate value at (expert, slot)
    /// of each dispatched choice, 0 elsewhere.
    @_specialize(where Scalar == Float)
    public func combineTensor() -> Tensor<Scalar> {
        let r = routing
        let (g, s, e, c) = (r.groups, r.groupSize, r.numExperts, r.capacity)
        let first = firstGate.value, second = secondGate.value
        var out = [Scalar](repeating: 0, count: g * s * e * c)
        for t in 0..<(g * s) {
            for k in 0..<2 where isDispatched(token: t, choice: k) {
                let (expert, slot) = k == 0 ? (r.firstExpert[t], r.firstSlot[t]) : (r.secondExpert[t], r.secondSlot[t])
                out[(t * e + expert) * c + slot] = (k == 0 ? first : second).scalars[t]
            }
        }
        return Tensor(shape: [g, s, e, c], scalars: out)
    }

    /// The dispatch tensor `[G, S, E, C]` (praxis `dispatch_tensor`): 1 where the combine tensor is
    /// non-zero.
    @_specialize(where Scalar == Float)
    public func dispatchTensor() -> Tensor<Scalar> { combineTensor().map { $0 != 0 ? 1 : 0 } }
}

/// GShard top-2 gating of `logits` `[G, S, E]` (already float32), with optional `paddings`
/// `[G, S]` (1 = padding): praxis `gshard_utils.top2_gating_on_logits`.
///
/// - Throws: `Top2GatingConfiguration.Invalid` when the capacity cannot be determined.
@_specialize(where Scalar == Float)
public func top2Gating<Scalar>(
    logits: Variable<Scalar>, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration
) throws(Top2GatingConfiguration.Invalid) -> Top2GatingResult<Scalar> {
    precondition(logits.value.rank == 3, "top2Gating: logits must be [G, S, E], got \(logits.shape)")
    let (g, s, e) = (logits.shape[0], logits.shape[1], logits.shape[2])
    guard e == configuration.numExperts else {
        throw .init(description: "logits have \(e) experts but num_experts is \(configuration.numExperts)")
    }
    if let paddings { precondition(paddings.shape == [g, s], "top2Gating: paddings must be [G, S] = [\(g), \(s)], got \(paddings.shape)") }
    let capacity = try configuration.capacity(groupSize: s)
    try configuration.checkBuffers(
        capacity: capacity, elements: [g, s, e, capacity], what: "the [G, S, E, C] combine and dispatch tensors")

    var capped = logits  // [G, S, E]
    if configuration.gatingLogitCap > 0 {
        let cap = Scalar(configuration.gatingLogitCap)
        capped = (logits * (1 / cap)).tanh() * cap
    }
    let p = capped.softmax()  // [G, S, E] raw_gates
    let routing = Top2Routing(
        probabilities: p.value, logits: capped.value, paddings: paddings, capacity: capacity, configuration: configuration)

    let tokens = g * s
    func column(_ values: (Int) -> Bool) -> Variable<Scalar> {
        Variable(constant: Tensor(shape: [g, s, 1], scalars: (0..<tokens).map { values($0) ? 1 : 0 }))
    }
    let realFirst = column { routing.isReal[$0] }
    let realSecond = column { routing.secondChosen[$0] && !(routing.isReal[$0] && routing.secondExpert[$0] == routing.firstExpert[$0]) }
    let keptFirst = column { routing.firstSlot[$0] >= 0 }
    let keptSecond = column { routing.secondSlot[$0] >= 0 }

    let rawFirst = p.gatheringAlongLastAxis(routing.firstExpert) * realFirst  // [G, S, 1]
    let rawSecond = p.gatheringAlongLastAxis(routing.secondExpert) * realSecond  // [G, S, 1]
    let firstGate: Variable<Scalar>
    let secondGate: Variable<Scalar>
    if configuration.legacyMTFBehavior {
        let denominator = rawFirst + rawSecond + Scalar(1e-9)
        firstGate = rawFirst / denominator * keptFirst
        secondGate = rawSecond / denominator * keptSecond
    } else {
        let first = rawFirst * keptFirst, second = rawSecond * keptSecond
        let sum = first + second
        // where(sum > 0, sum, 1): add 1 (a constant) exactly where the sum is 0.
        let denominator = sum + Variable(constant: sum.value.map { $0 > 0 ? 0 : 1 })
        firstGate = first / denominator
        secondGate = second / denominator
    }
    let auxLoss = loadBalancingLoss(probabilities: p, routing: routing, paddings: paddings, configuration: configuration)
    return Top2GatingResult(routing: routing, probabilities: p, firstGate: firstGate, secondGate: secondGate, auxLoss: auxLoss)
}
