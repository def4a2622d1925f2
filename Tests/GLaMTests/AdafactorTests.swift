// Adafactor and the learning-rate schedule on hand-checkable values (the golden comparison with
// optax is in Fixtures/optimizer, run by VerifyTests).

import Testing

@testable import GLaM

struct AdafactorTests {
    @Test("decay ρ_t = 1 − (t+1)^−0.8 (the Training article's table)")
    func decaySchedule() {
        let optimizer = Adafactor()
        for (t, expected) in [(0, 0.0), (1, 0.425651), (9, 0.841511), (99, 0.974881), (315, 0.989994), (999, 0.996019), (9999, 0.999369)] {
            #expect(abs(Double(optimizer.decay(step: t)) - expected) < 1e-6, "t = \(t)")
        }
    }

    @Test("learning rate 1/√max(t, 10⁴): 0.01, then 0.005 at 40k, 0.002 at 250k, 0.001 at 1M")
    func learningRate() {
        let schedule = LearningRateSchedule()
        for (t, expected) in [(0, 0.01), (10_000, 0.01), (40_000, 0.005), (250_000, 0.002), (1_000_000, 0.001)] {
            #expect(abs(Double(schedule.learningRate(step: t)) - expected) < 1e-9, "t = \(t)")
        }
        #expect(LearningRateSchedule(peak: 0.01, constantSteps: 100).learningRate(step: 400) == 0.005)
    }

    @Test("a gradient of another shape than its weight stops the update, even with as many elements")
    func gradientShapeMustMatch() async {
        // [2, 3] and [3, 2]: the same six elements, so only the shape check can tell (a factored
        // update would average the wrong rows and columns).
        await #expect(processExitsWith: .failure) {
            var weight = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
            var slot: AdafactorSlot? = nil
            Adafactor().update(
                weight: &weight, gradient: Tensor(shape: [3, 2], scalars: [1, 1, 1, 1, 1, 1]), slot: &slot, step: 0, learningRate: 0.1)
        }
        await #expect(processExitsWith: .success) {
            var weight = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
            var slot: AdafactorSlot? = nil
            Adafactor().update(
                weight: &weight, gradient: Tensor(shape: [2, 3], scalars: [1, 1, 1, 1, 1, 1]), slot: &slot, step: 0, learningRate: 0.1)
        }
    }

    @Test("the first step moves every element by lr·max(RMS(W), 1e-3)·sign(g) (unfactored: u = g/|g|)")
    func firstStep() {
        let optimizer = Adafactor()
        var weight = Tensor<Float>([0.5, -0.5, 0.5, -0.5])  // RMS 0.5
        let gradient = Tensor<Float>([2, -3, 0.001, 4])
        var slot: AdafactorSlot? = nil
        optimizer.update(weight: &weight, gradient: gradient, slot: &slot, step: 0, learningRate: 0.1)
        // u = g/√(g² + 1e-30) = ±1, RMS(u) = 1: no clipping; step = 0.1·0.5 = 0.05.
        #expect(weight.scalars.map { ($0 * 1e5).rounded() / 1e5 } == [0.45, -0.45, 0.45, -0.55])
    }

    @Test("factored statistics are per leading index (per expert) and match the unfactored case when rank-one")
    func factoredPerExpert() {
        var configuration = AdafactorConfiguration()
        configuration.minDimSizeToFactor = 2
        let optimizer = Adafactor(configuration: configuration)
        var weight = Tensor<Float>(repeating: 1, shape: [2, 2, 3])
        var slot: AdafactorSlot? = nil
        // Expert 0's g² is rank one (outer product of row and column scales): the factored estimate is exact.
        let g: [Float] = [1, 2, 3, 2, 4, 6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
        optimizer.update(weight: &weight, gradient: Tensor(shape: [2, 2, 3], scalars: g), slot: &slot, step: 0, learningRate: 0.01)
        guard case .factored(let vr, let vc)? = slot else {
            Issue.record("expected factored statistics")
            return
        }
        #expect(vr.shape == [2, 2] && vc.shape == [2, 3])
        #expect(abs(vr[0, 0] - (1 + 4 + 9) / 3) < 1e-6 && abs(vc[1, 2] - 0.25) < 1e-6)
        // Rank-one g²: u = g/|g| = 1 everywhere, so every weight moves by the same step.
        let steps = weight.scalars.map { 1 - $0 }
        #expect(steps.allSatisfy { abs($0 - steps[0]) < 1e-6 })
    }

    @Test("update clipping caps RMS(u) at the threshold")
    func clipping() {
        var configuration = AdafactorConfiguration()
        configuration.multiplyByParameterScale = false
        let optimizer = Adafactor(configuration: configuration)
        var weight = Tensor<Float>(zeros: [4])
        var slot: AdafactorSlot? = nil
        // Step 1 after a tiny step 0: v is dominated by the old small g², so u is huge and clipped.
        optimizer.update(weight: &weight, gradient: Tensor([1e-3, 1e-3, 1e-3, 1e-3]), slot: &slot, step: 0, learningRate: 0)
        optimizer.update(weight: &weight, gradient: Tensor([1, 1, 1, 1]), slot: &slot, step: 1, learningRate: 1)
        let rms = (weight.scalars.map { $0 * $0 }.reduce(0, +) / 4).squareRoot()
        #expect(abs(rms - 1) < 1e-6)
    }

    /// A weight for the reference comparison: its shape, settings, and the gradient's standard
    /// deviation at each consecutive step (from step 0).
    struct ReferenceCase: Sendable, CustomTestStringConvertible {
        var name: String
        var shape: [Int]
        var multiplyByParameterScale = true
        var weightDeviation: Float = 0.05
        var gradientDeviations: [Float] = [1, 0.5, 2]
        /// Whether update clipping must trigger at the last step (gradients growing 100× a step).
        var clips = false
        /// Adafactor's update clipping threshold d (GLaM: 1).
        var clippingThreshold: Float = 1
        /// The step of the first update: after 0, a weight met without statistics (say, one added to a
        /// run) starts from zero statistics at that step's decay.
        var firstStep = 0
        var testDescription: String { name }
    }

    static let referenceCases = [
        ReferenceCase(name: "factored 130×140", shape: [130, 140]),
        ReferenceCase(name: "factored 130×140 without parameter scale", shape: [130, 140], multiplyByParameterScale: false),
        ReferenceCase(name: "factored experts [3, 128, 130]", shape: [3, 128, 130]),
        // Both sides multiples of 16: pass 1's sums sixteen rows at a time.
        ReferenceCase(name: "factored experts [3, 144, 128]", shape: [3, 144, 128]),
        ReferenceCase(name: "factored 256×512, clipped", shape: [256, 512], gradientDeviations: [0.01, 1, 100], clips: true),
        ReferenceCase(
            name: "factored experts [3, 128, 130], clipped", shape: [3, 128, 130], gradientDeviations: [0.01, 1, 100], clips: true),
        ReferenceCase(name: "unfactored 127×140 (one dimension below 128)", shape: [127, 140], multiplyByParameterScale: false),
        ReferenceCase(
            name: "unfactored 5×7 without parameter scale, clipped", shape: [5, 7], multiplyByParameterScale: false,
            gradientDeviations: [0.001, 0.1, 10], clips: true),
        ReferenceCase(name: "vector of 10 with tiny weights (ε2 floor)", shape: [10], weightDeviation: 1e-5),
        ReferenceCase(
            name: "factored 130×140, clipped at d = 0.25", shape: [130, 140], gradientDeviations: [0.01, 1, 100], clips: true,
            clippingThreshold: 0.25),
        ReferenceCase(
            name: "unfactored 5×7, d = 3 (no clipping)", shape: [5, 7], gradientDeviations: [0.001, 0.1, 10], clippingThreshold: 3),
        // The smallest weights: RMS over one element is that element's magnitude.
        ReferenceCase(name: "one element [1]", shape: [1], weightDeviation: 0.5),
        ReferenceCase(
            name: "one element [1, 1], clipped", shape: [1, 1], weightDeviation: 0.5, gradientDeviations: [0.01, 1, 100], clips: true),
        ReferenceCase(name: "a row [1, 3]", shape: [1, 3]),
        ReferenceCase(name: "unfactored 5×7 met first at step 3", shape: [5, 7], firstStep: 3),
        ReferenceCase(name: "factored 130×140 met first at step 5", shape: [130, 140], firstStep: 5),
    ]

    @Test("the reference update agrees bitwise with the fast update and with the sharded update on one shard", arguments: referenceCases)
    func referenceAgreesWithFastPath(_ example: ReferenceCase) throws {
        var configuration = AdafactorConfiguration()
        configuration.multiplyByParameterScale = example.multiplyByParameterScale
        configuration.clippingThreshold = example.clippingThreshold
        let optimizer = Adafactor(configuration: configuration)
        let schedule = LearningRateSchedule(peak: 0.01, constantSteps: 1)  // 0.01, 0.01, 0.01/√2
        var generator = SeededGenerator(seed: 11)
        let initial = Tensor<Float>.randomNormal(shape: example.shape, standardDeviation: example.weightDeviation, generator: &generator)
        var fastWeight = initial, referenceWeight = initial
        var referenceSlot: AdafactorSlot?
        var fastSlot: AdafactorSlot?
        var sharded = [[AdafactorShard(weight: initial, gradient: initial, slot: nil)]]
        for (index, deviation) in example.gradientDeviations.enumerated() {
            let step = example.firstStep + index
            let gradient = Tensor<Float>.randomNormal(shape: example.shape, standardDeviation: deviation, generator: &generator)
            let learningRate = schedule.learningRate(step: step)
            optimizer.update(weight: &fastWeight, gradient: gradient, slot: &fastSlot, step: step, learningRate: learningRate)
            sharded = [[AdafactorShard(weight: sharded[0][0].weight, gradient: gradient, slot: sharded[0][0].slot)]]
            Adafactor.updateShards(
                &sharded, split: .none, shape: example.shape, configuration: configuration, step: step, learningRate: learningRate)
            #expect(sharded[0][0].weight.scalars.map(\.bitPattern) == fastWeight.scalars.map(\.bitPattern), "sharded, step \(step)")
            #expect(sharded[0][0].slot == fastSlot, "sharded, step \(step)")
            let reference = referenceAdafactorUpdate(
                weight: referenceWeight, gradient: gradient, slot: referenceSlot, step: step, learningRate: learningRate,
                configuration: configuration)
            referenceWeight = reference.weight
            referenceSlot = reference.slot
            #expect(referenceWeight == fastWeight, "step \(step)")
            #expect(reference.slot == fastSlot, "step \(step)")
            // Bit patterns too: == would accept −0 for 0 and reject NaN.
            #expect(referenceWeight.scalars.map(\.bitPattern) == fastWeight.scalars.map(\.bitPattern), "step \(step)")
            #expect(Self.bitPatterns(reference.slot) == Self.bitPatterns(try #require(fastSlot)), "step \(step)")
            if example.clips && index == example.gradientDeviations.count - 1 {
                #expect(Self.unclippedRMS(gradient: gradient, slot: reference.slot) > 1.2 * Double(configuration.clippingThreshold))
            }
        }
        let slot = try #require(referenceSlot)
        if case .factored = slot {
            #expect(configuration.isFactored(example.shape))
        } else {
            #expect(!configuration.isFactored(example.shape))
        }
        #expect(referenceWeight.scalars.allSatisfy(\.isFinite) && referenceWeight != initial)
    }

    @Test(
        "a step is skipped exactly when the loss or some gradient element is not finite: one ±∞ or NaN anywhere (vector body, tail, any chunk) is found; the largest finite values, −0 and subnormals are not"
    )
    func finiteness() {
        let edges: [Float] = [
            .greatestFiniteMagnitude, -.greatestFiniteMagnitude, -0, .leastNonzeroMagnitude, .leastNormalMagnitude / 4, 3,
        ]
        for count in [0, 1, 31, 32, 33, 100] {
            var values = (0..<count).map { edges[$0 % edges.count] }
            #expect(Adafactor.allFinite(values, count: count), "\(count) finite values")
            for position in Set([0, count / 2, count - 1]) where count > 0 {
                for bad: Float in [.infinity, -.infinity, .nan] {
                    let kept = values[position]
                    values[position] = bad
                    #expect(!Adafactor.allFinite(values, count: count), "\(bad) at \(position) of \(count)")
                    values[position] = kept
                }
            }
        }
        // Tensors of more than one chunk (2¹⁸ elements): a NaN in the second chunk of the second tensor.
        let small = Tensor<Float>(shape: [3], scalars: [1, 2, 3])
        var large = Tensor<Float>(zeros: [(1 << 18) + 100])
        #expect(Adafactor.isFiniteStep(loss: 1, gradients: [small, large]))
        #expect(!Adafactor.isFiniteStep(loss: .nan, gradients: [small, large]))
        large[(1 << 18) + 50] = .nan
        #expect(!Adafactor.isFiniteStep(loss: 1, gradients: [small, large]))
    }

    @Test("Σx² fed in pieces that start anywhere gives the bits of one sumOfSquares call")
    func squareSumInPieces() {
        let x = testValues(1_003, seed: 41).map { $0 * 1e3 }
        let whole = x.withUnsafeBufferPointer { Adafactor.sumOfSquares($0.baseAddress!, count: $0.count) }
        for cuts in [
            [0, 1_003], [0, 3, 11, 140, 141, 1_000, 1_003], [0, 7, 8, 9, 17, 500, 1_003],
            Array(stride(from: 0, to: 1_003, by: 13)) + [1_003],
        ] {
            var sum = SquareSum()
            x.withUnsafeBufferPointer { buffer in
                for (start, end) in zip(cuts, cuts.dropFirst()) { sum.add(buffer.baseAddress! + start, count: end - start, at: start) }
            }
            #expect(sum.total.bitPattern == whole.bitPattern, "cuts \(cuts)")
        }
        // And it is Σx²: a plain Double chain over the same numbers agrees to rounding.
        let chain = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(chain - whole) <= 1e-12 * whole)
    }

    @Test(
        "Σx² is eight lanes, lane k the in-order sum of the squares at indices ≡ k (mod 8), then ((0+1)+(2+3))+((4+5)+(6+7)), whatever the pieces"
    )
    func squareSumLanes() {
        // Magnitudes from 2^-30 to 2^30, so that Double sums round and the order of additions shows.
        var generator = SeededGenerator(seed: 43)
        let x = (0..<517).map { _ in
            (generator.nextUniform() + 0.5) * Float(sign: .plus, exponent: Int(generator.next() % 61) - 30, significand: 1)
        }
        var lanes = [Double](repeating: 0, count: 8)
        for (i, value) in x.enumerated() { lanes[i % 8] += Double(value) * Double(value) }
        let expected = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        let chain = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(chain.bitPattern != expected.bitPattern, "the data must be one whose sum depends on the order")
        let whole = x.withUnsafeBufferPointer { Adafactor.sumOfSquares($0.baseAddress!, count: $0.count) }
        #expect(whole.bitPattern == expected.bitPattern)
        for cuts in [[0, 517], [0, 1, 2, 3, 517], [0, 5, 13, 21, 100, 517], Array(stride(from: 0, to: 517, by: 11)) + [517]] {
            var sum = SquareSum()
            x.withUnsafeBufferPointer { buffer in
                for (start, end) in zip(cuts, cuts.dropFirst()) { sum.add(buffer.baseAddress! + start, count: end - start, at: start) }
            }
            #expect(sum.total.bitPattern == expected.bitPattern, "cuts \(cuts)")
        }
    }

    /// The bit patterns of a slot's statistics.
    static func bitPatterns(_ slot: AdafactorSlot) -> [[UInt32]] {
        switch slot {
        case .factored(let vr, let vc): [vr.scalars.map(\.bitPattern), vc.scalars.map(\.bitPattern)]
        case .full(let v): [v.scalars.map(\.bitPattern)]
        }
    }

    /// RMS(u) of the unclipped update u = g/√v (or g/√(vr ⊗ vc / mean(vr))) that `slot` gives, in Double.
    static func unclippedRMS(gradient: Tensor<Float>, slot: AdafactorSlot) -> Double {
        let g = gradient.scalars.map(Double.init)
        var total = 0.0
        switch slot {
        case .full(let v):
            for i in g.indices { total += g[i] * g[i] / Double(v.scalars[i]) }
        case .factored(let vr, let vc):
            let (rows, columns) = (gradient.shape[gradient.rank - 2], gradient.shape[gradient.rank - 1])
            for b in 0..<g.count / (rows * columns) {
                let r = vr.scalars[(b * rows)..<((b + 1) * rows)].map(Double.init)
                let mean = r.reduce(0, +) / Double(rows)
                for i in 0..<rows {
                    for j in 0..<columns {
                        let x = g[(b * rows + i) * columns + j]
                        total += x * x * mean / (r[i] * Double(vc.scalars[b * columns + j]))
                    }
                }
            }
        }
        return (total / Double(g.count)).squareRoot()
    }

    @Test("the model-wide update equals one update per weight, moves weights held nowhere else in place, and leaves shared ones intact")
    func modelUpdateInPlace() throws {
        let parameters = try ModelParameters(configuration: tinyConfiguration(), seed: 3)
        var generator = SeededGenerator(seed: 8)
        let gradients = parameters.map { _, w in Tensor<Float>.randomNormal(shape: w.shape, standardDeviation: 1, generator: &generator) }
        // One weight at a time, the plain way.
        var expected = parameters
        var single = Adafactor()
        for (path, gradient) in gradients.weights {
            var weight = expected[path]
            single.update(path, weight: &weight, gradient: gradient, step: 0, learningRate: 0.01)
            expected[path] = weight
        }
        // Shared: `parameters` still holds every weight, so the update must copy, not write through.
        var shared = parameters
        var optimizer = Adafactor()
        optimizer.update(&shared, gradients: gradients, step: 0, learningRate: 0.01)
        #expect(shared == expected && optimizer.slots == single.slots)
        #expect(try parameters == ModelParameters(configuration: tinyConfiguration(), seed: 3))
        // Held nowhere else: the embedding's storage is updated where it is.
        var owned = try ModelParameters(configuration: tinyConfiguration(), seed: 3)
        let before = owned.embedding.scalars.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        var second = Adafactor()
        second.update(&owned, gradients: gradients, step: 0, learningRate: 0.01)
        let after = owned.embedding.scalars.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        #expect(owned == expected)
        #expect(before == after)
    }
}
