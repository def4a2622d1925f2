// Top-2 gating: the worked example of the "Top-2 gating" article, exhaustive small states against
// the independent reference transcription, the capacity rule, policies and aux-loss variants.

import Foundation
import Testing

@testable import GLaM

/// Runs production gating on Double logits `[G, S, E]`.
func gate(
    _ logits: [Double], g: Int, s: Int, e: Int, paddings: [Double]? = nil, expertCapacity: Int? = nil,
    capacityFactor: Double? = nil, legacy: Bool = true, policy: SecondExpertPolicy = .all,
    aux: AuxiliaryLossVariant = .gshard, cap: Float = 0
) throws -> Top2GatingResult<Double> {
    let configuration = Top2GatingConfiguration(
        numExperts: e, expertCapacity: expertCapacity, capacityFactor: capacityFactor, secondExpertPolicy: policy,
        legacyMTFBehavior: legacy, gatingLogitCap: cap, auxiliaryLoss: aux, seed: 7)
    return try top2Gating(
        logits: Variable(constant: Tensor(shape: [g, s, e], scalars: logits)),
        paddings: paddings.map { Tensor(shape: [g, s], scalars: $0) }, configuration: configuration)
}

struct GatingTests {
    /// The "Top-2 gating" article's worked example: G=1, S=8, E=4, token 3 is padding.
    static let exampleLogits: [Double] = [
        2.0, 1.0, 0.0, -1.0, 1.5, 1.4, 0.2, 0.1, 3.0, 0.0, 2.5, 0.0, 0.5, 0.4, 0.3, 0.2,
        2.2, -0.5, 1.0, 1.9, 1.0, 1.0, 0.0, 0.0, 2.5, 0.1, 0.1, 2.4, -1.0, 0.0, 3.0, 0.5,
    ]
    static let examplePaddings: [Double] = [0, 0, 0, 1, 0, 0, 0, 0]

    @Test("the worked example, capacity factor 1.0 → C = 4")
    func workedExampleFactorOne() throws {
        let result = try gate(Self.exampleLogits, g: 1, s: 8, e: 4, paddings: Self.examplePaddings, capacityFactor: 1.0)
        #expect(result.routing.capacity == 4)  // auto = 2, rounded up to 4
        #expect(abs(result.auxLoss.value.scalar - 1.2256329) < 1e-6)
        let combine = result.combineTensor()
        // Non-zero combine[s, e, c], from the article's table.
        let expected: [(s: Int, e: Int, c: Int, value: Double)] = [
            (0, 0, 0, 0.731059), (0, 1, 0, 0.268941), (1, 0, 1, 0.524979), (1, 1, 1, 0.475021),
            (2, 0, 2, 0.622459), (2, 2, 1, 0.377541), (4, 0, 3, 0.574443), (4, 3, 0, 0.425557),
            (5, 1, 2, 0.5),  // top-1 e0 full → dropped; the top-2 gate is NOT renormalised
            (6, 3, 1, 0.475021),  // top-1 e0 full → dropped
            (7, 2, 0, 0.924142), (7, 3, 2, 0.075858),
        ]
        for entry in expected {
            #expect(abs(combine[0, entry.s, entry.e, entry.c] - entry.value) < 1e-6, "s\(entry.s) e\(entry.e) c\(entry.c)")
        }
        #expect(combine.scalars.filter { $0 != 0 }.count == expected.count)
        #expect(abs(result.routing.overCapacity[0] - 2.0 / 7) < 1e-12 && result.routing.overCapacity[1] == 0)
        #expect(result.tokensRoutedTo == [0, 2, 5])
    }

    @Test("the worked example, capacity factor 0.5 → C = 1 (no rounding)")
    func workedExampleFactorHalf() throws {
        let result = try gate(Self.exampleLogits, g: 1, s: 8, e: 4, paddings: Self.examplePaddings, capacityFactor: 0.5)
        #expect(result.routing.capacity == 1)
        #expect(abs(result.auxLoss.value.scalar - 1.2256329) < 1e-6)  // aux is computed before capacity
        let combine = result.combineTensor()
        #expect(abs(combine[0, 0, 0, 0] - 0.731059) < 1e-6 && abs(combine[0, 0, 1, 0] - 0.268941) < 1e-6)
        #expect(abs(combine[0, 4, 3, 0] - 0.425557) < 1e-6 && abs(combine[0, 7, 2, 0] - 0.924142) < 1e-6)
        #expect(combine.scalars.filter { $0 != 0 }.count == 4)
        #expect(abs(result.routing.overCapacity[0] - 5.0 / 7) < 1e-12 && abs(result.routing.overCapacity[1] - 5.0 / 7) < 1e-12)
        #expect(result.tokensRoutedTo == [4, 2, 1])
        // The same logits without padding at factor 1.0.
        #expect(abs(try gate(Self.exampleLogits, g: 1, s: 8, e: 4, capacityFactor: 1.0).auxLoss.value.scalar - 1.5527809) < 1e-6)
    }

    @Test("the capacity rule: roundup4(floor(S·cf/E)) only when it exceeds the given capacity")
    func capacityRule() throws {
        func capacity(_ s: Int, _ e: Int, _ c: Int?, _ cf: Double?) throws -> Int {
            try Top2GatingConfiguration(numExperts: e, expertCapacity: c, capacityFactor: cf).capacity(groupSize: s)
        }
        #expect(try capacity(8, 4, nil, 0.5) == 1)
        #expect(try capacity(8, 4, nil, 1.0) == 4)
        #expect(try capacity(1024, 64, nil, 2.0) == 32)
        #expect(try capacity(100, 64, nil, 2.0) == 4)  // auto 3 → 4
        #expect(try capacity(100, 8, 20, 2.0) == 28)  // auto 25 > 20 → 28
        #expect(try capacity(100, 8, 30, 2.0) == 30)  // auto 25 ≤ 30 → given
        #expect(try capacity(8, 4, 3, nil) == 3)
        #expect(try capacity(8, 4, 0, 0.1) == 0)  // auto 0, given 0
        #expect(throws: Top2GatingConfiguration.Invalid.self) { try capacity(8, 4, nil, nil) }
        #expect(throws: Top2GatingConfiguration.Invalid.self) { try capacity(8, 4, 0, 0) }
    }

    @Test(
        "exhaustive small states agree with the reference: every tie pattern for E ≤ 4, C 0…3, padding, legacy",
        arguments: 1...4, [false, true])
    func exhaustiveAgainstReference(e: Int, legacy: Bool) throws {
        // Every logit pattern with values in {0, 1, 2}: all orderings of E experts with all ties.
        var patterns: [[Double]] = [[]]
        for _ in 0..<e { patterns = patterns.flatMap { p in [0.0, 1, 2].map { p + [$0] } } }
        let tokens = patterns.flatMap { $0 }
        let s = patterns.count
        for capacity in 0...3 {
            for padded in [false, true] {
                // Pad every third token; split the tokens into two groups where S is even.
                let paddings: [Double]? = padded ? (0..<s).map { $0 % 3 == 2 ? 1 : 0 } : nil
                let g = s % 2 == 0 ? 2 : 1
                let (c, cf): (Int?, Double?) = capacity == 0 ? (0, 0.01) : (capacity, nil)
                let mine = try gate(tokens, g: g, s: s / g, e: e, paddings: paddings, expertCapacity: c, capacityFactor: cf, legacy: legacy)
                let reference = referenceTop2Gating(
                    logits: tokens, g: g, s: s / g, e: e, paddings: paddings, expertCapacity: c, capacityFactor: cf, legacy: legacy)
                let label = "E=\(e) C=\(capacity) padded=\(padded) legacy=\(legacy)"
                #expect(mine.routing.capacity == reference.capacity, "\(label)")
                let combine = mine.combineTensor().scalars
                #expect(combine.count == reference.combine.count, "\(label)")
                #expect(zip(combine, reference.combine).allSatisfy { abs($0 - $1) < 1e-12 }, "\(label): combine differs")
                #expect(abs(mine.auxLoss.value.scalar - reference.aux) < 1e-12, "\(label): aux")
                #expect(mine.routing.overCapacity == reference.overCapacity, "\(label): over capacity")
                #expect(mine.tokensRoutedTo == reference.routed, "\(label): routed counts")
                // Invariants: no slot used twice, at most C per expert and group, ≤ 2 per token.
                let slots = mine.combineTensor().reshaped(to: [g, s / g, e * max(c ?? 0, mine.routing.capacity)])
                _ = slots
                let dispatch = mine.dispatchTensor()
                for group in 0..<g {
                    for slot in 0..<(e * mine.routing.capacity) {
                        let users = (0..<(s / g)).filter {
                            dispatch.scalars[(group * (s / g) + $0) * e * mine.routing.capacity + slot] != 0
                        }
                        #expect(users.count <= 1, "\(label): slot \(slot) of group \(group) used \(users.count) times")
                    }
                }
            }
        }
    }

    @Test("metrics: router entropy is log E for a uniform router, expert load counts kept assignments")
    func metrics() throws {
        let uniform = try gate([Double](repeating: 0.5, count: 16), g: 1, s: 4, e: 4, capacityFactor: 4)
        #expect(abs(uniform.routerEntropy - Foundation.log(4.0)) < 1e-12)
        // Ties send every top-1 to expert 0 and every top-2 to expert 1; C = 4 keeps all of them.
        #expect(uniform.routing.expertLoad == [4, 4, 0, 0])
        let example = try gate(Self.exampleLogits, g: 1, s: 8, e: 4, paddings: Self.examplePaddings, capacityFactor: 1.0)
        #expect(example.routing.expertLoad.reduce(0, +) == 12)  // 0/2/5 tokens routed to 0/1/2 experts
    }

    @Test("the logit cap squashes logits with cap·tanh(logits/cap) before the softmax")
    func logitCap() throws {
        let logits: [Double] = [40, 0, -3, 10]
        let capped = try gate(logits, g: 1, s: 1, e: 4, capacityFactor: 4, cap: 5)
        let expected = Tensor<Double>(shape: [1, 1, 4], scalars: logits.map { 5 * Foundation.tanh($0 / 5) }).softmax()
        #expect(zip(capped.probabilities.value.scalars, expected.scalars).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test("random policy: keeps the second choice with probability min(1, g₂/threshold), reproducibly")
    func randomPolicy() throws {
        // g₂ ≈ 0.269 for every token (logits [1, 0, −9, −9]).
        let s = 4000
        let logits: [Double] = (0..<s).flatMap { _ -> [Double] in [1.0, 0, -9, -9] }
        let always = try gate(logits, g: 1, s: s, e: 4, capacityFactor: 8, policy: .random(threshold: 0.2))
        #expect(always.routing.secondChosen.allSatisfy { $0 })
        let half = try gate(logits, g: 1, s: s, e: 4, capacityFactor: 8, policy: .random(threshold: 0.538))
        let share = Double(half.routing.secondChosen.filter { $0 }.count) / Double(s)
        #expect(abs(share - 0.5) < 0.03, "share kept \(share)")
        let again = try gate(logits, g: 1, s: s, e: 4, capacityFactor: 8, policy: .random(threshold: 0.538))
        #expect(again.routing == half.routing)
        // A token whose second choice is not kept has second gate 0 but keeps its first gate.
        let t = try #require(half.routing.secondChosen.firstIndex(of: false))
        #expect(half.secondGate.value.scalars[t] == 0 && half.firstGate.value.scalars[t] > 0.7)
        // Every token draws its coin, the last one too: with a threshold no g₂ reaches, no second
        // choice is kept at all.
        let never = try gate(logits, g: 1, s: s, e: 4, capacityFactor: 8, policy: .random(threshold: 1e9))
        #expect(
            !never.routing.secondChosen.contains(true),
            "kept: \(never.routing.secondChosen.indices.filter { never.routing.secondChosen[$0] })")
        // With one expert there is no second one: its g₂ is 0, and no coin keeps it.
        let one = try gate([Double](repeating: 0.5, count: 64), g: 1, s: 64, e: 1, capacityFactor: 8, policy: .random(threshold: 1e-6))
        #expect(!one.routing.secondChosen.contains(true) && one.secondGate.value.scalars.allSatisfy { $0 == 0 })
    }

    @Test("sampling policy: never the first expert, frequencies follow the softmax without it")
    func samplingPolicy() throws {
        let s = 6000
        let logits: [Double] = (0..<s).flatMap { _ -> [Double] in [3.0, Foundation.log(1), Foundation.log(2), Foundation.log(3)] }
        let result = try gate(logits, g: 1, s: s, e: 4, capacityFactor: 8, policy: .sampling)
        #expect(result.routing.secondExpert.allSatisfy { $0 != 0 })
        for (expert, share) in [(1, 1.0 / 6), (2, 2.0 / 6), (3, 3.0 / 6)] {
            let observed = Double(result.routing.secondExpert.filter { $0 == expert }.count) / Double(s)
            #expect(abs(observed - share) < 0.025, "expert \(expert): \(observed) vs \(share)")
        }
        // Each token draws its own noise: two tokens' choices are independent, so consecutive
        // tokens pick the same second expert with probability Σ q² = (1 + 4 + 9) / 36.
        let second = result.routing.secondExpert
        let same = Double(zip(second, second.dropFirst()).filter { $0 == $1 }.count) / Double(s - 1)
        #expect(abs(same - 14.0 / 36) < 0.03, "consecutive tokens agree \(same) of the time")
    }

    @Test(
        "aux-loss variants are per group: G groups give the mean of each group gated alone; switchTop1 is per batch",
        arguments: AuxiliaryLossVariant.allCases, [true, false])
    func auxLossGroups(variant: AuxiliaryLossVariant, legacy: Bool) throws {
        var generator = SeededGenerator(seed: 5)
        let (g, s, e) = (3, 8, 4)
        let logits = (0..<(g * s * e)).map { _ in Double(generator.nextNormal()) * 1.5 }
        let paddings = (0..<(g * s)).map { $0 % 7 == 3 ? 1.0 : 0 }
        let together = try gate(logits, g: g, s: s, e: e, paddings: paddings, capacityFactor: 1, legacy: legacy, aux: variant)
        let alone = try (0..<g).map { group in
            try gate(
                Array(logits[(group * s * e)..<((group + 1) * s * e)]), g: 1, s: s, e: e,
                paddings: Array(paddings[(group * s)..<((group + 1) * s)]),
                capacityFactor: 1, legacy: legacy, aux: variant)
        }
        let aux = together.auxLoss.value.scalar
        if variant == .switchTop1 {
            // f and P over the whole batch: regrouping the same tokens changes nothing.
            let one = try gate(logits, g: 1, s: g * s, e: e, paddings: paddings, capacityFactor: 1, legacy: legacy, aux: variant)
            #expect(abs(aux - one.auxLoss.value.scalar) < 1e-12)
            #expect(abs(aux - alone.map { $0.auxLoss.value.scalar }.reduce(0, +) / Double(g)) > 1e-6)  // not the mean of groups
        } else {
            #expect(abs(aux - alone.map { $0.auxLoss.value.scalar }.reduce(0, +) / Double(g)) < 1e-12)
        }
        // The per-token shares add up to the loss of every variant.
        let shares = auxiliaryLossShares(
            probabilities: together.probabilities.value, routing: together.routing, paddings: Tensor(shape: [g, s], scalars: paddings),
            configuration: Top2GatingConfiguration(numExperts: e, capacityFactor: 1, legacyMTFBehavior: legacy, auxiliaryLoss: variant))
        #expect(abs(shares.reduce(0, +) - aux) < 1e-12)
    }

    @Test("aux-loss variants on a hand-checkable case")
    func auxVariants() throws {
        // Two groups of two tokens, E = 2, uniform router probabilities (logits equal): P = ½ each.
        // Top-1 (ties → expert 0) is expert 0 for all four tokens; the second is expert 1.
        let logits = [Double](repeating: 0, count: 8)
        func aux(_ variant: AuxiliaryLossVariant) throws -> Double {
            try gate(logits, g: 2, s: 2, e: 2, capacityFactor: 2, aux: variant).auxLoss.value.scalar
        }
        // gshard: E²·mean(f·P) = 4·mean([1·½, 0·½] per group) = 4·¼ = 1.
        #expect(abs(try aux(.gshard) - 1) < 1e-12)
        #expect(abs(try aux(.switchTop1) - 1) < 1e-12)  // E·Σ f·P = 2·(1·½ + 0) = 1
        // Any-of-two: f = [1, 1] → E²·mean(f·P) = 4·½ = 2; divided by two: 1.
        #expect(abs(try aux(.anyOfTwo) - 2) < 1e-12)
        #expect(abs(try aux(.anyOfTwoDividedByTwo) - 1) < 1e-12)
        // Per-group vs whole-batch: group 0 all on expert 0 with p = [0.9, 0.1], group 1 all on
        // expert 1 with p = [0.1, 0.9].
        let l = Foundation.log(9.0)
        let skewed = [l, 0, l, 0, 0, l, 0, l]
        let gshard = try gate(skewed, g: 2, s: 2, e: 2, capacityFactor: 2).auxLoss.value.scalar
        let switchLoss = try gate(skewed, g: 2, s: 2, e: 2, capacityFactor: 2, aux: .switchTop1).auxLoss.value.scalar
        #expect(abs(gshard - 4 * (0.9 + 0.9) / 4) < 1e-9)  // 4·mean(1·0.9, 0, 0, 1·0.9) = 1.8
        #expect(abs(switchLoss - 1) < 1e-9)  // f = [½, ½], P = [½, ½] over the batch → 2·½ = 1
    }

    @Test("router logits whose E is not num_experts are refused, naming both, for one more and one fewer expert")
    func expertCountMustMatch() throws {
        let configuration = Top2GatingConfiguration(numExperts: 4, capacityFactor: 2)
        #expect(throws: Never.self) {
            _ = try top2Gating(logits: Variable(constant: Tensor<Float>(zeros: [1, 6, 4])), paddings: nil, configuration: configuration)
        }
        for e in [3, 5, 1, 8] {
            do {
                _ = try top2Gating(
                    logits: Variable(constant: Tensor<Float>(zeros: [1, 6, e])), paddings: nil, configuration: configuration)
                Issue.record("logits with \(e) experts were routed")
            } catch {
                #expect(error.description == "logits have \(e) experts but num_experts is 4", "\(error)")
            }
        }
    }
}
