// The pointwise, row-wise and reduction kernels at sizes large enough to be split across workers:
// they equal plain loops written here, and the bits never depend on the thread count.

import Dispatch
import Foundation
import Synchronization
import Testing

@testable import GLaM

struct ParallelKernelTests {
    /// A tensor of deterministic values in [-1, 1).
    func values(_ shape: [Int], seed: UInt64) -> Tensor<Float> {
        Tensor(shape: shape, scalars: testValues(shape.reduce(1, *), seed: seed))
    }

    @Test(
        "arithmetic operators equal zip with the same operation, bit for bit, for every broadcasting layout",
        arguments: [
            ([3, 50_000], [3, 50_000]), ([3, 50_000], [50_000]), ([3, 50_000], [3, 1]), ([3, 1], [1, 50_000]),
            ([2, 300, 100], [300, 1]), ([60_000], []), ([], [60_000]), ([4, 1, 5000], [1, 7, 1]),
        ] as [([Int], [Int])])
    func arithmeticMatchesZip(shapes: ([Int], [Int])) {
        let a = values(shapes.0, seed: 1), b = values(shapes.1, seed: 2)
        let cases: [(Tensor<Float>, Tensor<Float>)] = [
            (a + b, Tensor.zip(a, b) { $0 + $1 }), (a - b, Tensor.zip(a, b) { $0 - $1 }),
            (a * b, Tensor.zip(a, b) { $0 * $1 }), (a / b, Tensor.zip(a, b) { $0 / $1 }),
        ]
        for (fast, plain) in cases {
            #expect(fast.shape == plain.shape && fast.scalars.map(\.bitPattern) == plain.scalars.map(\.bitPattern))
        }
        #expect((-a).scalars.map(\.bitPattern) == a.scalars.map { (-$0).bitPattern })
        #expect((-Tensor<Float>([0.0, -0.0])).scalars.map(\.sign) == [.minus, .plus], "negation flips the sign of zero")
        #expect((a * 3).scalars == a.scalars.map { $0 * 3 } && (a + 3).scalars == a.scalars.map { $0 + 3 })
    }

    @Test(
        "sums along axes equal the plain loop, in increasing order along the axis",
        // The second: rows longer than one task's elements, so a task holds a single row.
        arguments: [[7, 300, 50], [3, 9, 20_000]])
    func reductionsMatchLoops(shape: [Int]) {
        let x = values(shape, seed: 3)
        let (n0, n1, n2) = (shape[0], shape[1], shape[2])
        for axis in 0..<3 {
            let sum = x.sum(alongAxis: axis)
            var expected = [Float](repeating: 0, count: x.scalarCount / x.shape[axis])
            for i in 0..<n0 {
                for j in 0..<n1 {
                    for k in 0..<n2 {
                        let out = axis == 0 ? j * n2 + k : axis == 1 ? i * n2 + k : i * n1 + j
                        expected[out] += x.scalars[(i * n1 + j) * n2 + k]
                    }
                }
            }
            #expect(sum.scalars == expected, "shape \(shape) axis \(axis)")
        }
    }

    @Test(
        "sums written out (vectorised across elements, or eight rows side by side along the last axis) give the bits of the closure-folded reduction",
        arguments: [[1024, 256], [13, 5], [7, 1], [3, 8, 65_536], [1024, 8], [2, 1100, 3]])
    func writtenOutSumsMatchFoldedReduction(shape: [Int]) {
        var scalars = testValues(shape.reduce(1, *), seed: 9)
        // Signed zeros, an infinity and a NaN in the first rows: 0 + (−0) is +0, and NaN spreads.
        for (index, value) in [-0.0, -0.0, .infinity, .nan].enumerated() where index < scalars.count {
            scalars[index * 3 % scalars.count] = Float(value)
        }
        let x = Tensor(shape: shape, scalars: scalars)
        for axis in 0..<shape.count {
            let written = x.sum(alongAxis: axis), folded = x.reduced(alongAxis: axis, initial: 0) { $0 + $1 }
            #expect(written.shape == folded.shape)
            #expect(written.scalars.map(\.bitPattern) == folded.scalars.map(\.bitPattern), "\(shape) axis \(axis)")
        }
    }

    @Test("permutations and row-wise kernels equal plain loops on large tensors")
    func layoutAndRowsMatchLoops() {
        let x = values([3, 200, 90], seed: 4)
        let permuted = x.transposed(permutation: [2, 0, 1])
        #expect(permuted.shape == [90, 3, 200])
        var ok = true
        for i in 0..<3 {
            for j in 0..<200 {
                for k in 0..<90 where permuted.scalars[(k * 3 + i) * 200 + j] != x.scalars[(i * 200 + j) * 90 + k] { ok = false }
            }
        }
        #expect(ok)
        let lse = x.logSumExp()
        for row in [0, 299, 599] {
            let slice = x.scalars[(row * 90)..<((row + 1) * 90)]
            let peak = slice.max()!
            #expect(abs(lse.scalars[row] - (peak + Float.log(slice.map { Float.exp($0 - peak) }.reduce(0, +)))) <= 1e-6)
        }
    }

    @Test("a training step of the small model (tensors split across workers) gives the same bits on 1, 2 and 3 threads")
    func smallModelStepIsThreadIndependent() throws {
        let configuration = try #require(ModelConfiguration.named("small"))
        var generator = SeededGenerator(seed: 5)
        let (b, t) = (2, 128)
        let tokens = (0..<(b * t)).map { _ in Int(generator.next() % UInt64(configuration.vocabSize)) }
        let batch = TokenBatch(batchSize: b, length: t, tokens: tokens, targets: tokens.reversed())
        func step() throws -> (loss: UInt32, parameters: ModelParameters) {
            var parameters = try ModelParameters(configuration: configuration, seed: 1)
            let tape = Tape<Float>()
            let variables = parameters.variables(on: tape)
            let out: DecoderOutput<Float> = try variables(batch)
            let loss = try #require(out.loss)
            var optimizer = Adafactor()
            for (path, gradient) in variables.gradients(from: tape.gradients(of: loss)).weights {
                optimizer.update(path, weight: &parameters[path], gradient: gradient, step: 0, learningRate: 0.01)
            }
            return (loss.value.scalar.bitPattern, parameters)
        }
        let one = try withThreadCount(1) { try step() }
        for threads in [2, 3] {
            let many = try withThreadCount(threads) { try step() }
            #expect(many.loss == one.loss && many.parameters == one.parameters, "threads \(threads)")
        }
    }

    @Test("the worker pool runs tasks at the same time: two tasks of one job meet, in every one of many jobs")
    func workerPoolRunsConcurrently() {
        for job in 0..<200 {
            let arrived = Mutex(0)
            let met = Mutex([false, false])
            Parallelism.forEachTask(2, threads: 2) { task in
                arrived.withLock { $0 += 1 }
                // Each task waits (up to 5 s) for the other to start: only a second thread can run it.
                let deadline = Date().addingTimeInterval(5)
                while arrived.withLock({ $0 }) < 2 && Date() < deadline {}
                met.withLock { $0[task] = arrived.withLock { $0 } == 2 }
            }
            #expect(met.withLock { $0 } == [true, true], "job \(job): the two tasks never ran at once")
        }
    }

    @Test("the worker pool runs every task exactly once: many short loops, nested loops, loops from several threads")
    func workerPoolRunsEveryTaskOnce() {
        /// Runs a loop of `count` tasks on `threads` threads and returns how often each task ran.
        @Sendable func runs(_ count: Int, threads: Int, nested: Bool = false) -> [Int] {
            let counters = Mutex([Int](repeating: 0, count: count))
            Parallelism.forEachTask(count, threads: threads) { task in
                if nested {
                    let inner = Mutex(0)
                    Parallelism.forEachTask(3, threads: threads) { _ in inner.withLock { $0 += 1 } }
                    #expect(inner.withLock { $0 } == 3)
                }
                counters.withLock { $0[task] += 1 }
            }
            return counters.withLock { $0 }
        }
        for round in 0..<500 {
            let count = 1 + round % 17
            #expect(runs(count, threads: 1 + round % 4) == [Int](repeating: 1, count: count), "round \(round)")
        }
        #expect(runs(40, threads: 3, nested: true) == [Int](repeating: 1, count: 40))
        let results = Mutex([[Int]]())
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let result = runs(200, threads: 2)
            results.withLock { $0.append(result) }
        }
        #expect(results.withLock { $0 }.allSatisfy { $0 == [Int](repeating: 1, count: 200) })
    }

    @Test(
        "RMSNorm's one-pass backward gives the same bits as its definition from tensor operations",
        arguments: [[3, 5], [2, 300, 256], [700, 64]])
    func rmsNormBackwardMatchesReference(shape: [Int]) {
        let m = shape.last!
        let x = values(shape, seed: 61), g = values(shape, seed: 62)
        let scale = Tensor(shape: [m], scalars: testValues(m, seed: 63).map { 1 + $0 / 2 })
        let (_, r) = rmsNormalized(x, scale: scale, epsilon: 1e-6)
        for (needX, needScale) in [(true, true), (true, false), (false, true)] {
            let fast = rmsNormBackward(g, x: x, scale: scale, reciprocalRMS: r, needX: needX, needScale: needScale)
            let reference = referenceRMSNormBackward(g, x: x, scale: scale, reciprocalRMS: r, needX: needX, needScale: needScale)
            #expect(fast.map { $0?.shape } == reference.map { $0?.shape })
            #expect(
                fast.map { $0?.scalars.map(\.bitPattern) } == reference.map { $0?.scalars.map(\.bitPattern) },
                "\(shape) \(needX) \(needScale)")
        }
    }

    @Test("GELU and its tanh in one pass give the same bits as three passes (u, tanh, ½x(1 + t))", arguments: [1, 17, 40_003])
    func geluOnePassMatchesThreePasses(count: Int) {
        let x = Tensor(shape: [count], scalars: testValues(count, seed: 71).map { 4 * $0 })
        let (c, a, half) = (Float(0.7978845608028654), Float(0.044715), Float(0.5))
        let t = x.map { x in c * (x + a * x * x * x) }.fastTanh()
        let y = Tensor.zip(x, t) { x, t in half * x * (1 + t) }
        let fused = x.geluAndTanh()
        #expect(fused.tanh.scalars.map(\.bitPattern) == t.scalars.map(\.bitPattern))
        #expect(fused.gelu.scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern))
        #expect(x.gelu().scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern))
    }

    @Test("the attention softmax with the bias added in the same pass equals adding it first, values and gradients bit for bit")
    func fusedBiasSoftmaxMatchesTwoSteps() throws {
        let (b, n, t) = (3, 4, 50)
        let segments = (0..<(b * t)).map { $0 % t < 40 ? 1 + ($0 % t) / 25 : 0 }
        let visible = attentionVisibility(segmentIDs: segments, batch: b, length: t)
        let scores = values([b, n, t, t], seed: 81), bias = values([n, t, t], seed: 82), upstream = values([b, n, t, t], seed: 83)
        for extra in [true, false] {
            func run(_ fused: Bool) -> [[UInt32]] {
                let tape = Tape<Float>()
                let (s, a) = (tape.variable(scores), tape.variable(bias))
                let p =
                    fused
                    ? s.maskedSoftmax(adding: a, visible: visible, extraZeroLogit: extra)
                    : (s + a).maskedSoftmax(visible: visible, extraZeroLogit: extra)
                let g = tape.gradients(of: p, seed: upstream)
                return [p.value, g[s]!, g[a]!].map { $0.scalars.map(\.bitPattern) }
            }
            #expect(run(true) == run(false), "extra zero logit \(extra)")
        }
    }

    @Test("forEachRange cuts 0..<count into consecutive ranges of grain items (the last shorter), the same at any thread count")
    func rangesOfAGrain() throws {
        final class Ranges: @unchecked Sendable {
            var list: [Range<Int>] = []
            let lock = NSLock()
        }
        for (count, grain) in [(10, 5), (11, 5), (5, 5), (4, 5), (1, 1), (7, 1), (100, 33), (0, 4), (9, 0)] {
            let expected = stride(from: 0, to: count, by: max(grain, 1)).map { $0..<min(count, $0 + max(grain, 1)) }
            for threads in [1, 2, 8] {
                let ranges = Ranges()
                try withThreadCount(threads) {
                    Parallelism.forEachRange(count, grain: grain) { range in ranges.lock.withLock { ranges.list.append(range) } }
                }
                #expect(
                    ranges.list.sorted { $0.lowerBound < $1.lowerBound } == expected, "count \(count), grain \(grain), \(threads) threads")
            }
        }
    }
}
