// Every limit that `ModelConfiguration.problem` states, checked at its boundary: the value on the
// limit is accepted, the first value past it is refused with a message naming the field.

import Testing

@testable import GLaM

struct ConfigurationLimitsTests {
    static let base = ModelConfiguration(
        vocabSize: 64, modelDim: 16, numLayers: 2, numHeads: 2, headDim: 8, ffDim: 32, numExperts: 4, capacityFactor: 2)

    /// (JSON name, the field, the smallest value allowed).
    static var sizes: [(String, WritableKeyPath<ModelConfiguration, Int>, Int)] {
        [
            ("vocab_size", \.vocabSize, 1), ("model_dim", \.modelDim, 1), ("num_layers", \.numLayers, 1),
            ("num_heads", \.numHeads, 1), ("head_dim", \.headDim, 1), ("ff_dim", \.ffDim, 1), ("moe_hidden_dim", \.moeHiddenDim, 1),
            ("num_experts", \.numExperts, 0), ("num_groups", \.numGroups, 1), ("relative_buckets", \.relativeBuckets, 2),
            ("relative_max_distance", \.relativeMaxDistance, 17),  // must exceed relative_buckets / 2 = 16
        ]
    }

    @Test("each size is accepted at its lower and upper limits and refused one past either, by name")
    func sizeLimits() throws {
        #expect(Self.base.problem == nil)
        for (name, field, lower) in Self.sizes {
            let upper = try #require(ModelConfiguration.limits[name], "\(name) has no stated upper limit")
            var c = Self.base
            // At the upper limit of relative_buckets, relative_max_distance must still exceed half of it.
            if name == "relative_buckets" { c.relativeMaxDistance = ModelConfiguration.limits["relative_max_distance"]! }
            for (value, accepted) in [(lower, true), (lower - 1, false), (upper, true), (upper + 1, false)] {
                var probe = c
                probe[keyPath: field] = value
                let problem = probe.problem
                if accepted {
                    #expect(problem == nil || !problem!.contains(name), "\(name) = \(value): \(problem ?? "")")
                } else {
                    #expect(problem?.contains(name) == true, "\(name) = \(value) was accepted")
                }
            }
        }
    }

    @Test("capacity: expert capacity in [0, limit], capacity factor in [0, 1e6]; an MoE model needs one of them positive")
    func capacityLimits() {
        var c = Self.base
        c.capacityFactor = 1e6
        #expect(c.problem == nil)
        c.capacityFactor = 1e6.nextUp
        #expect(c.problem?.contains("capacity_factor") == true)
        c.capacityFactor = -0.5
        #expect(c.problem?.contains("capacity_factor") == true)
        c.capacityFactor = .nan
        #expect(c.problem?.contains("capacity_factor") == true)
        c.capacityFactor = 0
        #expect(c.problem?.contains("an MoE model needs") == true)
        c.expertCapacity = 1
        #expect(c.problem == nil)
        c.expertCapacity = ModelConfiguration.limits["expert_capacity"]!
        #expect(c.problem == nil)
        c.expertCapacity = ModelConfiguration.limits["expert_capacity"]! + 1
        #expect(c.problem?.contains("expert_capacity") == true)
        c.expertCapacity = -1
        #expect(c.problem?.contains("expert_capacity") == true)
        var dense = Self.base
        (dense.numExperts, dense.capacityFactor) = (0, 0)
        #expect(dense.problem == nil)
        // Absent is not positive: with neither a capacity factor nor an expert capacity (nil or 0
        // each), an MoE model has no rule for C.
        for (factor, capacity) in [(nil, nil), (nil, 0), (0, nil), (0.0, 0)] as [(Double?, Int?)] {
            var moe = Self.base
            (moe.capacityFactor, moe.expertCapacity) = (factor, capacity)
            #expect(moe.problem?.contains("an MoE model needs") == true, "\(String(describing: factor)), \(String(describing: capacity))")
        }
        var onlyCapacity = Self.base
        (onlyCapacity.capacityFactor, onlyCapacity.expertCapacity) = (nil, 3)
        #expect(onlyCapacity.problem == nil)
    }

    @Test("epsilon and loss weights: 0 and finite values accepted; negative, infinite and NaN refused by name")
    func weightLimits() {
        let fields: [(String, WritableKeyPath<ModelConfiguration, Float>)] = [
            ("rmsnorm_epsilon", \.rmsNormEpsilon), ("z_loss_weight", \.zLossWeight), ("aux_loss_weight", \.auxLossWeight),
        ]
        for (name, field) in fields {
            for (value, accepted) in [
                (Float(0), true), (1e30, true), (-Float.leastNonzeroMagnitude, false), (.infinity, false), (.nan, false),
            ] {
                var c = Self.base
                c[keyPath: field] = value
                #expect((c.problem == nil) == accepted, "\(name) = \(value): \(c.problem ?? "accepted")")
                if !accepted { #expect(c.problem?.contains(name) == true) }
            }
        }
    }

    @Test("training options: batch in 1...4096 and sequence length in 2...65536, each refused one past its limits by name")
    func trainingOptionLimits() {
        for (value, accepted) in [(1, true), (0, false), (4096, true), (4097, false)] {
            var options = TrainingOptions()
            options.batchSize = value
            #expect((options.problem == nil) == accepted && (accepted || options.problem!.contains("batch size")), "batch \(value)")
        }
        for (value, accepted) in [(2, true), (1, false), (65536, true), (65537, false)] {
            var options = TrainingOptions()
            options.sequenceLength = value
            #expect((options.problem == nil) == accepted && (accepted || options.problem!.contains("sequence length")), "length \(value)")
        }
    }
}
