// Adafactor over 400 steps on a stacked expert weight whose experts are used at very different
// rates, against optax's trajectory (Fixtures/optimizer/trajectory/make_sparse_experts.py). The
// one-step fixtures cannot show what only builds up over many steps: statistics of an idle expert
// decaying, and the large normalised update of an expert used again after a long idle run, which
// update clipping over the whole [E, R, C] tensor takes out of the other experts' steps.

import Foundation
import Testing

@testable import GLaM

struct AdafactorTrajectoryTests {
    struct Trajectory {
        let initial: Tensor<Float>
        let mask: Tensor<Float>
        let gradients: Tensor<Float>
        let file: SafeTensorsFile
        let steps: Int, every: Int
        let learningRate: Float
        var shape: [Int] { initial.shape }

        init() throws {
            let url = fixturesDirectory.appendingPathComponent("optimizer/trajectory/sparse_experts.safetensors")
            let file = try SafeTensorsFile(contentsOf: url)
            self.file = file
            initial = try Self.tensor("initial", in: file)
            mask = try Self.tensor("mask", in: file)
            gradients = try Self.tensor("gradients", in: file)
            let text = try #require(file.metadata["config"])
            let config = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            steps = try #require(config["steps"] as? Int)
            every = try #require(config["every"] as? Int)
            learningRate = Float(try #require(config["learning_rate"] as? Double))
            // The generator's optax settings are the ones the tests give glam's Adafactor.
            let c = AdafactorTrajectoryTests.configuration
            #expect(config["decay_pow"] as? Double == c.decayExponent)
            #expect((config["clipping_threshold"] as? Double).map(Float.init) == c.clippingThreshold)
            #expect((config["epsilon1"] as? Double).map(Float.init) == c.epsilon1)
            #expect((config["epsilon2"] as? Double).map(Float.init) == c.epsilon2)
            #expect(config["min_dim_size_to_factor"] as? Int == c.minDimSizeToFactor)
        }

        /// The full gradient of `step`: the stored expert gradients where the mask is 1, else zeros.
        func gradient(step: Int, next: inout Int) -> Tensor<Float> {
            let (experts, block) = (shape[0], shape[1] * shape[2])
            var scalars = [Float](repeating: 0, count: experts * block)
            for expert in 0..<experts where mask[step, expert] == 1 {
                for i in 0..<block { scalars[expert * block + i] = gradients.scalars[next * block + i] }
                next += 1
            }
            return Tensor(shape: shape, scalars: scalars)
        }

        static func tensor(_ name: String, in file: SafeTensorsFile) throws -> Tensor<Float> {
            try #require(file.tensors[name], "\(name) missing").floatTensor()
        }

        func expected(_ name: String) throws -> Tensor<Float> { try Self.tensor(name, in: file) }
    }

    static var configuration: AdafactorConfiguration {
        var c = AdafactorConfiguration()
        c.minDimSizeToFactor = 8  // factor the small [4, 8, 16] weight like a real one
        return c
    }

    /// Largest |a − b| over the largest |b|; infinite when a holds a NaN or an infinity.
    static func relativeError(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Float {
        guard a.scalars.allSatisfy(\.isFinite), a.shape == b.shape else { return .infinity }
        let scale = b.scalars.map(abs).max() ?? 1
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! / scale
    }

    @Test("400 steps with experts used every step, 1 in 10, twice and never: glam's Adafactor follows optax's")
    func followsOptax() throws {
        let trajectory = try Trajectory()
        #expect(trajectory.shape == [4, 8, 16])
        let usage = (0..<4).map { e in (0..<trajectory.steps).filter { trajectory.mask[$0, e] == 1 }.count }
        #expect(usage[0] == 400 && usage[1] > 20 && usage[1] < 70 && usage[2] == 2 && usage[3] == 0)
        let optimizer = Adafactor(configuration: Self.configuration)
        var weight = trajectory.initial, slot: AdafactorSlot? = nil
        var next = 0
        for step in 0..<trajectory.steps {
            let gradient = trajectory.gradient(step: step, next: &next)
            optimizer.update(weight: &weight, gradient: gradient, slot: &slot, step: step, learningRate: trajectory.learningRate)
            if (step + 1) % trajectory.every == 0 {
                let expected = try trajectory.expected("expected.param.step\(step + 1)")
                #expect(Self.relativeError(weight, expected) < 1e-5, "weight after step \(step + 1)")
            }
        }
        #expect(next == trajectory.gradients.shape[0])
        guard case .factored(let vr, let vc)? = slot else {
            Issue.record("expected factored statistics")
            return
        }
        #expect(Self.relativeError(vr, try trajectory.expected("expected.vr")) < 1e-5)
        #expect(Self.relativeError(vc, try trajectory.expected("expected.vc")) < 1e-5)
        // The never-used expert's weights are untouched, bit for bit; its statistics hold only ε1.
        let block = 8 * 16
        #expect(Array(weight.scalars[(3 * block)...]) == Array(trajectory.initial.scalars[(3 * block)...]))
        #expect((0..<8).allSatisfy { vr[3, $0] > 0 && vr[3, $0] < 1e-29 })
    }

    @Test("the expert used again after 346 idle steps moves ~10× more than the busy expert, whose step clipping shrinks")
    func returningExpert() throws {
        let trajectory = try Trajectory()
        let optimizer = Adafactor(configuration: Self.configuration)
        var weight = trajectory.initial, slot: AdafactorSlot? = nil
        var next = 0
        var moves: [Int: [Float]] = [:]  // step → per-expert RMS of that step's change
        for step in 0..<352 {
            let before = weight
            optimizer.update(
                weight: &weight, gradient: trajectory.gradient(step: step, next: &next), slot: &slot, step: step,
                learningRate: trajectory.learningRate)
            if step == 350 || step == 351 {
                moves[step] = (0..<4).map { e in
                    let block = (e * 128)..<((e + 1) * 128)
                    let squares = block.map { (weight.scalars[$0] - before.scalars[$0]) * (weight.scalars[$0] - before.scalars[$0]) }
                    return (squares.reduce(0, +) / 128).squareRoot()
                }
            }
        }
        let returning = try #require(moves[350]), usual = try #require(moves[351])
        #expect(trajectory.mask[350, 1] == 0 && trajectory.mask[351, 1] == 0)
        // Expert 2's g/√v after 346 idle steps: v has decayed to about (1 − ρ₃₅₀)·g², so u ≈ (t+1)^0.4 ≈ 10 per element.
        #expect(returning[2] > 5 * returning[0])
        // Clipping acts on the whole tensor: the busy expert's step shrinks that step.
        #expect(returning[0] < 0.5 * usual[0])
        #expect(returning[3] == 0 && usual[2] == 0)
    }

    @Test("split over experts onto two shards and columns onto two, the trajectory agrees with the whole weight's")
    func shardedMatchesWhole() throws {
        let trajectory = try Trajectory()
        let c = Self.configuration
        let optimizer = Adafactor(configuration: c)
        var weight = trajectory.initial, slot: AdafactorSlot? = nil
        // shards[b][k]: experts 2b, 2b+1; columns 8k..<8k+8.
        func piece(_ t: Tensor<Float>, _ b: Int, _ k: Int) -> Tensor<Float> {
            var scalars: [Float] = []
            for e in (2 * b)..<(2 * b + 2) { for r in 0..<8 { for col in (8 * k)..<(8 * k + 8) { scalars.append(t[e, r, col]) } } }
            return Tensor(shape: [2, 8, 8], scalars: scalars)
        }
        var shards = (0..<2).map { b in
            (0..<2).map { k in AdafactorShard(weight: piece(trajectory.initial, b, k), gradient: piece(trajectory.initial, b, k), slot: nil)
            }
        }
        var next = 0
        for step in 0..<trajectory.steps {
            let gradient = trajectory.gradient(step: step, next: &next)
            optimizer.update(weight: &weight, gradient: gradient, slot: &slot, step: step, learningRate: trajectory.learningRate)
            shards = (0..<2).map { b in
                (0..<2).map { k in AdafactorShard(weight: shards[b][k].weight, gradient: piece(gradient, b, k), slot: shards[b][k].slot) }
            }
            Adafactor.updateShards(
                &shards, split: .columns, shape: trajectory.shape, configuration: c, step: step, learningRate: trajectory.learningRate)
        }
        for b in 0..<2 {
            for k in 0..<2 {
                // Sums across shards are in another order: agreement to rounding, not bits.
                #expect(Self.relativeError(shards[b][k].weight, piece(weight, b, k)) < 1e-5, "shard \(b), \(k)")
            }
        }
    }
}
