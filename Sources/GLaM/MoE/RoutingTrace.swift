// The routing of one MoE layer told token by token, for people who step through GLaM (`glam trace`,
// the "Follow one token" article): for each token its router's favourite experts, the two experts
// top-2 gating chose, the gates before and after renormalisation, the place each choice took in its
// expert's queue against the capacity C, whether it was dropped and which earlier assignments
// filled the expert, the combine weights, and the token's share of the load-balancing loss.
//
// Everything here is read off a `Top2GatingResult` (nothing is recomputed differently): the queue
// positions follow GShard's order, all top-1 choices of a group first in token order, then the top-2
// choices after the kept top-1 ones.

/// Why a choice of a token did not reach an expert.
public enum RouteOutcome: String, Sendable, Equatable {
    /// Dispatched to its expert's slot.
    case kept
    /// The expert's C slots in this group were taken by earlier assignments.
    case overCapacity = "over_capacity"
    /// No second choice was made (the token's top-2 is its top-1, or the policy declined).
    case notChosen = "not_chosen"
    /// The token is padding: routed nowhere.
    case padding
}

/// An assignment that holds a slot: token `token` (index into the layer's `[G·S]` tokens) by its
/// choice `choice` (0 = top-1, 1 = top-2).
public struct SlotHolder: Sendable, Equatable {
    /// The token's index in `[G·S]`.
    public let token: Int
    /// 0 for its top-1 choice, 1 for its top-2.
    public let choice: Int
}

/// One token's route through one MoE layer.
public struct TokenRoute: Sendable, Equatable {
    /// The token's index in the layer's `[G·S]` tokens (row-major over `[B, T]`).
    public let token: Int
    /// Its group g.
    public let group: Int
    /// The router's most probable experts, best first: `(expert, probability)`.
    public let routerTop: [(expert: Int, probability: Double)]
    /// The top-1 and top-2 experts.
    public let experts: [Int]
    /// `p[e₁]` and `p[e₂]` (0 when there is no second choice): the gates before renormalisation.
    public let rawGates: [Double]
    /// The gates renormalised over the two choices, `p[eₖ] / (p[e₁] + p[e₂])`, before any drop.
    public let renormalizedGates: [Double]
    /// The combine weights actually applied: the gates after drops (0 for a dropped choice), as
    /// top-2 gating computes them (`legacy_mtf_behavior` renormalises before dropping).
    public let combineWeights: [Double]
    /// Each choice's place in its expert's queue in this group (-1 when there is no choice): the
    /// slot it asks for, kept when below C.
    public let queuePositions: [Int]
    /// The slot taken in each expert's buffer, -1 when not dispatched.
    public let slots: [Int]
    /// What happened to each choice.
    public let outcomes: [RouteOutcome]
    /// For a choice dropped over capacity, the assignments that hold the expert's C slots (in slot
    /// order); empty otherwise.
    public let filledBy: [[SlotHolder]]
    /// The token's share of the layer's auxiliary loss (the shares add up to it).
    public let auxLossShare: Double

    /// Whether choice k was dropped for lack of capacity.
    public var dropped: [Bool] { outcomes.map { $0 == .overCapacity } }

    /// Tuples are not Equatable: compare field by field.
    public static func == (a: TokenRoute, b: TokenRoute) -> Bool {
        a.token == b.token && a.group == b.group && a.routerTop.map(\.expert) == b.routerTop.map(\.expert)
            && a.routerTop.map(\.probability) == b.routerTop.map(\.probability) && a.experts == b.experts && a.rawGates == b.rawGates
            && a.renormalizedGates == b.renormalizedGates && a.combineWeights == b.combineWeights
            && a.queuePositions == b.queuePositions && a.slots == b.slots && a.outcomes == b.outcomes && a.filledBy == b.filledBy
            && a.auxLossShare == b.auxLossShare
    }
}

/// One MoE layer's routing, token by token.
///
/// ```swift
/// let routing = output.routing(ofLayer: 0)!  // decoder layer 0 is an MoE layer
/// print("capacity C = \(routing.capacity), aux loss \(routing.auxLoss)")
/// for route in routing.tokens {
///     print(route.token, route.experts, route.queuePositions, route.outcomes.map(\.rawValue))
/// }
/// ```
public struct MoELayerTrace: Sendable, Equatable {
    /// The decoder layer's index.
    public let layer: Int
    /// G, S, E and the capacity C of every expert in every group.
    public let groups, groupSize, numExperts, capacity: Int
    /// The layer's auxiliary loss (unweighted).
    public let auxLoss: Double
    /// Every token's route, in token order.
    public let tokens: [TokenRoute]

    /// The trace of `gating` (of decoder layer `layer`), keeping the `routerTopCount` most probable
    /// experts of each token.
    public init<Scalar: TensorScalar>(
        layer: Int, gating: Top2GatingResult<Scalar>, paddings: Tensor<Scalar>?, configuration: Top2GatingConfiguration,
        routerTopCount: Int = 4
    ) {
        let r = gating.routing
        let (g, s, e, c) = (r.groups, r.groupSize, r.numExperts, r.capacity)
        (self.layer, groups, groupSize, numExperts, capacity) = (layer, g, s, e, c)
        auxLoss = Double(gating.auxLoss.value.scalar)
        let p = gating.probabilities.value.scalars
        let shares = auxiliaryLossShares(
            probabilities: gating.probabilities.value, routing: r, paddings: paddings?.reshaped(to: [g, s]), configuration: configuration)
        // Who holds each (group, expert, slot); the queue positions are the routing's own.
        let queue = [r.firstQueuePosition, r.secondQueuePosition]
        var holders = [[SlotHolder]](repeating: [], count: g * e)
        for group in 0..<g {
            for k in 0..<2 {
                for t in (group * s)..<((group + 1) * s) where gating.isDispatched(token: t, choice: k) {
                    holders[group * e + (k == 0 ? r.firstExpert[t] : r.secondExpert[t])].append(SlotHolder(token: t, choice: k))
                }
            }
            for expert in 0..<e {
                holders[group * e + expert].sort { slot(of: $0, r) < slot(of: $1, r) }
            }
        }
        let first = gating.firstGate.value.scalars, second = gating.secondGate.value.scalars
        tokens = (0..<(g * s)).map { t in
            let row = Array(p[(t * e)..<((t + 1) * e)].enumerated())
            let top = row.sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
                .prefix(routerTopCount).map { (expert: $0.offset, probability: Double($0.element)) }
            let experts = [r.firstExpert[t], r.secondExpert[t]]
            let hasSecond = r.secondChosen[t] && r.secondExpert[t] != r.firstExpert[t]
            let raw = [r.isReal[t] ? Double(p[t * e + experts[0]]) : 0, hasSecond ? Double(p[t * e + experts[1]]) : 0]
            let total = raw[0] + raw[1]
            var outcomes = [RouteOutcome](repeating: .padding, count: 2)
            var filledBy = [[SlotHolder]](repeating: [], count: 2)
            for k in 0..<2 where r.isReal[t] {
                if gating.isDispatched(token: t, choice: k) {
                    outcomes[k] = .kept
                } else if (k == 1 && !hasSecond) || queue[k][t] < c {
                    outcomes[k] = .notChosen  // no second choice (or a gate that is exactly 0)
                } else {
                    outcomes[k] = .overCapacity
                    filledBy[k] = holders[(t / s) * e + experts[k]]
                }
            }
            return TokenRoute(
                token: t, group: t / s, routerTop: Array(top), experts: experts, rawGates: raw,
                renormalizedGates: raw.map { total > 0 ? $0 / total : 0 }, combineWeights: [Double(first[t]), Double(second[t])],
                queuePositions: [queue[0][t], hasSecond ? queue[1][t] : -1],
                slots: (0..<2).map { gating.isDispatched(token: t, choice: $0) ? ($0 == 0 ? r.firstSlot[t] : r.secondSlot[t]) : -1 },
                outcomes: outcomes, filledBy: filledBy, auxLossShare: shares[t])
        }
    }
}

/// The slot an assignment holds.
private func slot(of holder: SlotHolder, _ r: Top2Routing) -> Int {
    holder.choice == 0 ? r.firstSlot[holder.token] : r.secondSlot[holder.token]
}
