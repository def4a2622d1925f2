// The discrete half of GShard top-2 gating: which two experts each token picks, which capacity
// slot each choice gets, which choices are dropped, and the counts praxis reports. Nothing here
// is differentiable (argmax and positions carry no gradient); Top2Gating.swift builds the gate
// values on top of these decisions.
//
// Follows praxis `gshard_utils.top2_gating_on_logits` step for step ("Top-2 gating" article):
//   i₁ = argmax p, i₂ = argmax p·(1 − onehot(i₁))       (ties → lowest index; pads: no choice)
//   top-1 slots: first come first served in token order, all top-1 before any top-2;
//   top-2 slots of expert e start after the *kept* top-1 tokens of e;
//   a choice whose slot is ≥ C is dropped.

import Foundation

/// The routing decisions of top-2 gating for G groups of S tokens over E experts.
///
/// Arrays indexed by token are flat over `[G, S]` (token `t = g·S + s`).
public struct Top2Routing: Sendable, Equatable {
    /// G, the number of groups.
    public let groups: Int
    /// S, tokens per group.
    public let groupSize: Int
    /// E, the number of experts.
    public let numExperts: Int
    /// C, slots per expert per group.
    public let capacity: Int
    /// Whether each token is real (not padding).
    public internal(set) var isReal: [Bool]
    /// Each token's top-1 expert (argmax of the router probabilities).
    public internal(set) var firstExpert: [Int]
    /// Each token's second expert (greedy, sampled, or as the policy says).
    public internal(set) var secondExpert: [Int]
    /// Whether the second choice is made at all (false for pads and, under `.random`, when the coin
    /// says no): praxis `mask_2` before capacity.
    public internal(set) var secondChosen: [Bool]
    /// The first choice's place in its expert's queue, in GShard's order (praxis
    /// `position_in_expert_1`: the real tokens of the group before it with the same top-1), whether
    /// or not it fits the capacity; -1 for padding.
    public internal(set) var firstQueuePosition: [Int]
    /// The second choice's place in its expert's queue, after every kept first choice of that
    /// expert (praxis `position_in_expert_2`); -1 when not chosen.
    public internal(set) var secondQueuePosition: [Int]
    /// The slot of the first choice in its expert (its queue position when that is below the
    /// capacity C), or -1 when dropped (or padding).
    public internal(set) var firstSlot: [Int]
    /// The slot of the second choice in its expert, or -1 when dropped (or not chosen).
    public internal(set) var secondSlot: [Int]
    /// The share of top-1 and of top-2 assignments dropped for lack of capacity, exactly as praxis
    /// reports them (`_create_over_capacity_ratio_summary`: with C = 0 it counts every entry).
    public internal(set) var overCapacity: [Double]

    /// Decides the routing from router probabilities `p` `[G, S, E]` (and, for `.sampling`, the
    /// gating logits `[G, S, E]`), with optional paddings `[G, S]` (1 = padding).
    @_specialize(where Scalar == Float)
    package init<Scalar: TensorScalar>(
        probabilities p: Tensor<Scalar>, logits: Tensor<Scalar>, paddings: Tensor<Scalar>?,
        capacity: Int, configuration: Top2GatingConfiguration
    ) {
        precondition(p.rank == 3 && p.shape[2] == configuration.numExperts, "Top2Routing: probabilities must be [G, S, E], got \(p.shape)")
        let (g, s, e) = (p.shape[0], p.shape[1], p.shape[2])
        groups = g
        groupSize = s
        numExperts = e
        self.capacity = capacity
        let tokens = g * s
        isReal = (0..<tokens).map { paddings == nil || paddings!.scalars[$0] < 1 }
        // praxis: mask_1 *= (1 − paddings); mask_2 *= (importance > 0). A fractional padding keeps
        // a fractional mask_1 in praxis; fixtures use 0/1 paddings only.
        firstExpert = [Int](repeating: 0, count: tokens)
        secondExpert = [Int](repeating: 0, count: tokens)
        secondChosen = [Bool](repeating: false, count: tokens)
        for t in 0..<tokens {
            let row = t * e
            var best = 0
            for j in 1..<max(e, 1) where p.scalars[row + j] > p.scalars[row + best] { best = j }
            firstExpert[t] = best
            // argmax of p·(1 − mask₁): the top-1 entry counts as 0 (for real tokens), not −∞.
            var second = 0
            var secondValue = isReal[t] && best == 0 ? 0 : p.scalars[row]
            for j in 1..<max(e, 1) {
                let value = isReal[t] && j == best ? 0 : p.scalars[row + j]
                if value > secondValue {
                    second = j
                    secondValue = value
                }
            }
            secondExpert[t] = second
            secondChosen[t] = isReal[t]
        }
        switch configuration.secondExpertPolicy {
        case .all:
            break
        case .sampling:
            // Gumbel-max over the logits with the (real) top-1 expert excluded.
            for t in 0..<tokens {
                var best = 0
                var bestValue = -Double.infinity
                for j in 0..<e {
                    let u = Double(CounterRandom.uniform(seed: configuration.seed, stream: 1, index: UInt64(t * e + j)))
                    let gumbel = -Foundation.log(-Foundation.log(u))
                    let logit =
                        isReal[t] && j == firstExpert[t] ? -0.7 * Double(Float.greatestFiniteMagnitude) : Double(logits.scalars[t * e + j])
                    if logit + gumbel > bestValue {
                        best = j
                        bestValue = logit + gumbel
                    }
                }
                secondExpert[t] = best
            }
        case .random(let threshold):
            // Keep the second choice with probability min(1, g₂/threshold), g₂ as renormalised so far.
            for t in 0..<tokens where isReal[t] {
                let p1 = p.scalars[t * e + firstExpert[t]]
                let p2 = secondExpert[t] == firstExpert[t] ? 0 : p.scalars[t * e + secondExpert[t]]
                let g2 = configuration.legacyMTFBehavior ? p2 / (p1 + p2 + Scalar(1e-9)) : p2
                let u = Scalar(CounterRandom.uniform(seed: configuration.seed, stream: 2, index: UInt64(t)))
                secondChosen[t] = u < g2 / Scalar(max(threshold, 1e-9))
            }
        }

        firstQueuePosition = [Int](repeating: -1, count: tokens)
        secondQueuePosition = [Int](repeating: -1, count: tokens)
        firstSlot = [Int](repeating: -1, count: tokens)
        secondSlot = [Int](repeating: -1, count: tokens)
        var overCount = [0, 0], assigned = [0, 0]
        for group in 0..<g {
            var arrivals = [Int](repeating: 0, count: e)  // exclusive cumsum of mask₁ per expert
            for t in (group * s)..<((group + 1) * s) where isReal[t] {
                let position = arrivals[firstExpert[t]]
                arrivals[firstExpert[t]] += 1
                firstQueuePosition[t] = position
                assigned[0] += 1
                if position >= capacity { overCount[0] += 1 } else { firstSlot[t] = position }
            }
            let keptFirst = arrivals.map { min($0, capacity) }  // mask_1_count after capacity
            var secondArrivals = [Int](repeating: 0, count: e)
            for t in (group * s)..<((group + 1) * s) where secondChosen[t] {
                let expert = secondExpert[t]
                let position = secondArrivals[expert] + keptFirst[expert]
                secondArrivals[expert] += 1
                secondQueuePosition[t] = position
                assigned[1] += 1
                if position >= capacity { overCount[1] += 1 } else { secondSlot[t] = position }
            }
        }
        if capacity == 0 {
            // praxis counts entries of mask·position ≥ C over all of [G, S, E]: with C = 0, all.
            overCount = [tokens * e, tokens * e]
        }
        overCapacity = (0..<2).map { Double(overCount[$0]) / Double(max(1, assigned[$0])) }
    }

    /// The number of kept assignments (top-1 plus top-2) per expert, summed over groups.
    public var expertLoad: [Int] {
        var load = [Int](repeating: 0, count: numExperts)
        for t in firstSlot.indices {
            if firstSlot[t] >= 0 { load[firstExpert[t]] += 1 }
            if secondSlot[t] >= 0 { load[secondExpert[t]] += 1 }
        }
        return load
    }
}
