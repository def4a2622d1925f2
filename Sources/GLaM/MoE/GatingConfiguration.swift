// Configuration of GShard top-2 gating, field for field the arguments of praxis
// `gshard_utils.top2_gating_on_logits` (see the "Top-2 gating" article), plus the capacity rule.

/// How each token's second expert is chosen (praxis `second_expert_policy`).
public enum SecondExpertPolicy: Sendable, Equatable {
    /// Always dispatch to the second-best expert (praxis and lingvo default; what GLaM uses).
    case all
    /// Keep the second expert with probability `min(1, g₂ / threshold)`, where g₂ is the
    /// renormalised second gate (praxis `'random'` with `second_expert_threshold`). GShard's
    /// Algorithm 1 corresponds to threshold 0.5; Mesh-TensorFlow defaults to 0.2.
    case random(threshold: Double)
    /// Draw the second expert from the softmax without the first, by Gumbel-max over the logits
    /// (praxis `'sampling'`).
    case sampling
}

/// How the load-balancing auxiliary loss counts assignments. GLaM uses `.gshard`.
public enum AuxiliaryLossVariant: String, Sendable, CaseIterable {
    /// praxis/lingvo: `E² · mean_{g,e}(f_{g,e} · P_{g,e})` with f the share of the group's tokens
    /// whose *top-1* expert is e (before capacity) and P the mean router probability; per group,
    /// then averaged over groups. Equals 1 when f or P is uniform.
    case gshard
    /// Switch Transformer: `E · Σ_e f_e · P_e` with f and P taken over all tokens of the batch at
    /// once (not per group). Equal to `.gshard` when there is one group.
    case switchTop1
    /// Like `.gshard` but f counts a token for *each* of its (up to) two experts, so Σ_e f = 2 and
    /// the balanced value is 2.
    case anyOfTwo
    /// `.anyOfTwo` divided by k = 2, so the balanced value is 1 again.
    case anyOfTwoDividedByTwo
}

/// The settings of GShard top-2 gating (praxis `top2_gating_on_logits`).
public struct Top2GatingConfiguration: Sendable, Equatable {
    /// E, the number of experts (praxis `experts_dim`, `num_experts`).
    public var numExperts: Int
    /// The given capacity per expert per group (praxis `expert_capacity_dim`, `c_dim`); nil: none.
    public var expertCapacity: Int?
    /// Capacity in units of a perfectly balanced top-1 load (praxis
    /// `unadjusted_expert_capacity_factor`, `capacity_factor`); nil or 0: not used.
    public var capacityFactor: Double?
    /// How the second expert is chosen.
    public var secondExpertPolicy: SecondExpertPolicy
    /// Renormalise the two gates before capacity and never again (praxis `legacy_mtf_behavior`,
    /// GLaM's default `true`); `false` renormalises the surviving gates after dropping.
    public var legacyMTFBehavior: Bool
    /// Soft cap `cap · tanh(logits / cap)` on the gating logits (praxis `gating_logit_cap`); 0: off.
    public var gatingLogitCap: Float
    /// The auxiliary-loss variant (GLaM: `.gshard`).
    public var auxiliaryLoss: AuxiliaryLossVariant
    /// Seed of the counter-based random numbers used by the `.random` and `.sampling` policies.
    public var seed: UInt64

    /// A configuration; the defaults are GLaM's (`capacityFactor` 2, policy `.all`, legacy true).
    public init(
        numExperts: Int, expertCapacity: Int? = nil, capacityFactor: Double? = 2.0,
        secondExpertPolicy: SecondExpertPolicy = .all, legacyMTFBehavior: Bool = true,
        gatingLogitCap: Float = 0, auxiliaryLoss: AuxiliaryLossVariant = .gshard, seed: UInt64 = 0
    ) {
        self.numExperts = numExperts
        self.expertCapacity = expertCapacity
        self.capacityFactor = capacityFactor
        self.secondExpertPolicy = secondExpertPolicy
        self.legacyMTFBehavior = legacyMTFBehavior
        self.gatingLogitCap = gatingLogitCap
        self.auxiliaryLoss = auxiliaryLoss
        self.seed = seed
    }

    /// Fails when buffers of `elements` (a shape) of 4-byte floats would take more than a quarter of
    /// this machine's memory: a capacity far beyond the group size, from a file, is refused before
    /// anything that size is allocated.
    func checkBuffers(capacity: Int, elements shape: [Int], what: String) throws(Invalid) {
        var count = 4
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: max(dimension, 0))
            guard !overflow else { count = Int.max; break }
            count = product
        }
        guard Double(count) <= Double(CheckedSize.physicalMemory) / 4 else {
            throw Invalid(
                description:
                    "expert_capacity C = \(capacity) makes \(what) \(shape) about \(CheckedSize.describe(count)), more than a quarter of this machine's memory"
            )
        }
    }

    /// Why a configuration cannot be used.
    public struct Invalid: Error, CustomStringConvertible {
        /// What is wrong.
        public let description: String
    }

    /// C, the capacity per expert per group for groups of `groupSize` tokens, by praxis' rule:
    ///
    ///     C = expertCapacity ?? 1
    ///     auto = floor(S · capacityFactor / E)          (only when capacityFactor is set and ≠ 0)
    ///     if C < auto { C = roundUpToMultipleOf4(auto) }
    ///
    /// So with S = 8, E = 4, factor 0.5: auto = 1, not > 1, so C = 1 (no rounding); with factor 1,
    /// auto = 2 → C = 4. Without a factor, `expertCapacity` is used as given.
    public func capacity(groupSize: Int) throws(Invalid) -> Int {
        guard numExperts >= 1 else { throw Invalid(description: "num_experts must be at least 1, got \(numExperts)") }
        let factor = capacityFactor ?? 0
        guard factor > 0 || (expertCapacity ?? 0) > 0 else {
            throw Invalid(description: "gating needs expert_capacity > 0 or capacity_factor > 0 (praxis asserts the same)")
        }
        guard factor >= 0, factor <= 1e6 else { throw Invalid(description: "capacity_factor must be a number in [0, 1e6], got \(factor)") }
        guard groupSize >= 0, groupSize <= 1 << 40 else { throw Invalid(description: "group size \(groupSize) is out of range") }
        if let given = expertCapacity, given < 0 { throw Invalid(description: "expert_capacity must be ≥ 0, got \(given)") }
        guard factor > 0 else { return expertCapacity! }
        var capacity = expertCapacity ?? 1
        // Python: int(group_size_dim * capacity_factor / experts_dim), in double precision (< 2^60 here).
        let automatic = Int((Double(groupSize) * factor / Double(numExperts)).rounded(.towardZero))
        if capacity < automatic {
            capacity = (automatic + 3) / 4 * 4
        }
        return capacity
    }
}
