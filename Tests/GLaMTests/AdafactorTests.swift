// Adafactor and the learning-rate schedule on hand-checkable values (the golden comparison with
// optax is in Fixtures/optimizer, run by VerifyTests).

import Testing

@testable import GLaM

struct AdafactorTests {
    @Test("decay ρ_t = 1 − (t+1)^−0.8 (glam-spec.md 8.4)")
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

    @Test("the first step moves every element by lr·max(RMS(W), 1e-3)·sign(g) (unfactored: u = g/|g|)")
    func firstStep() {
        var optimizer = Adafactor()
        var weight = Tensor<Float>([0.5, -0.5, 0.5, -0.5])  // RMS 0.5
        let gradient = Tensor<Float>([2, -3, 0.001, 4])
        optimizer.update("w", weight: &weight, gradient: gradient, step: 0, learningRate: 0.1)
        // u = g/√(g² + 1e-30) = ±1, RMS(u) = 1: no clipping; step = 0.1·0.5 = 0.05.
        #expect(weight.scalars.map { ($0 * 1e5).rounded() / 1e5 } == [0.45, -0.45, 0.45, -0.55])
    }

    @Test("factored statistics are per leading index (per expert) and match the unfactored case when rank-one")
    func factoredPerExpert() {
        var configuration = AdafactorConfiguration()
        configuration.minDimSizeToFactor = 2
        var optimizer = Adafactor(configuration: configuration)
        var weight = Tensor<Float>(repeating: 1, shape: [2, 2, 3])
        // Expert 0's g² is rank one (outer product of row and column scales): the factored estimate is exact.
        let g: [Float] = [1, 2, 3, 2, 4, 6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
        optimizer.update("w", weight: &weight, gradient: Tensor(shape: [2, 2, 3], scalars: g), step: 0, learningRate: 0.01)
        guard case .factored(let vr, let vc)? = optimizer.slots["w"] else {
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
        var optimizer = Adafactor(configuration: configuration)
        var weight = Tensor<Float>(zeros: [4])
        // Step 1 after a tiny step 0: v is dominated by the old small g², so u is huge and clipped.
        optimizer.update("w", weight: &weight, gradient: Tensor([1e-3, 1e-3, 1e-3, 1e-3]), step: 0, learningRate: 0)
        optimizer.update("w", weight: &weight, gradient: Tensor([1, 1, 1, 1]), step: 1, learningRate: 1)
        let rms = (weight.scalars.map { $0 * $0 }.reduce(0, +) / 4).squareRoot()
        #expect(abs(rms - 1) < 1e-6)
    }
}
