// Tensor operations on hand-checkable values.

import Foundation
import Testing

@testable import GLaM

func close(_ a: [Float], _ b: [Float], tolerance: Float = 1e-6) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * (1 + abs($1)) }
}

struct TensorTests {
    @Test("appending along an axis equals concatenating, in place or not: leading axes of 1 (a cache of one sequence) and others")
    func appendEqualsConcatenation() {
        // (shape of self, axis, size of the appended part along it)
        for (shape, axis, extra) in [
            ([1, 5, 2, 3], 1, 1), ([1, 5, 2, 3], 1, 4), ([3, 5, 2], 1, 2), ([4, 3], 0, 2), ([2, 3], 1, 5), ([1, 1, 0, 2], 2, 3),
        ] {
            var other = shape
            other[axis] = extra
            let a = Tensor(shape: shape, scalars: testValues(shape.reduce(1, *), seed: 3))
            let b = Tensor(shape: other, scalars: testValues(other.reduce(1, *), seed: 4))
            var grown = a
            grown.append(b, alongAxis: axis)
            #expect(grown == Tensor.concatenated([a, b], alongAxis: axis), "\(shape) + \(other)")
            #expect(a.shape == shape, "the original is untouched")
            // Many appends in a row (a decoder's steps) equal one concatenation of all the parts.
            var steps = a, parts = [a]
            for step in 0..<5 {
                let part = Tensor(shape: other, scalars: testValues(other.reduce(1, *), seed: UInt64(10 + step)))
                steps.append(part, alongAxis: axis)
                parts.append(part)
            }
            #expect(steps == Tensor.concatenated(parts, alongAxis: axis))
        }
    }

    @Test func shapesAndIndexing() {
        var t = Tensor<Float>(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])
        #expect(t[1, 2] == 5 && t.rank == 2 && t.scalarCount == 6)
        t[0, 1] = 10
        #expect(t.scalars == [0, 10, 2, 3, 4, 5])
        #expect(t.reshaped(to: [3, -1]).shape == [3, 2])
        #expect(Tensor<Float>(4).shape == [] && Tensor<Float>(4).scalar == 4)
        #expect(Tensor<Float>.strides(of: [2, 3, 4]) == [12, 4, 1])
    }

    @Test func broadcasting() {
        let x = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect((x + Tensor([10, 20, 30])).scalars == [11, 22, 33, 14, 25, 36])
        #expect((x * Tensor(shape: [2, 1], scalars: [1, -1])).scalars == [1, 2, 3, -4, -5, -6])
        #expect((Tensor(shape: [3, 1], scalars: [1, 2, 3]) - Tensor([1, 10])).shape == [3, 2])
        #expect((Tensor(shape: [3, 1], scalars: [1, 2, 3]) - Tensor([1, 10])).scalars == [0, -9, 1, -8, 2, -7])
        #expect((x / Tensor(2)).scalars == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect(Tensor<Float>.broadcastShape([4, 1, 3], [5, 1]) == [4, 5, 3])
        #expect(x.broadcasted(to: [2, 2, 3]).scalars == x.scalars + x.scalars)
        #expect(x.broadcasted(to: [2, 2, 3]).unbroadcasted(to: [2, 3]).scalars == x.scalars.map { 2 * $0 })
    }

    @Test func reductions() {
        let x = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(x.sum(alongAxis: 0) == Tensor(shape: [1, 3], scalars: [5, 7, 9]))
        #expect(x.sum(alongAxis: -1) == Tensor(shape: [2, 1], scalars: [6, 15]))
        #expect(x.sum().scalar == 21 && x.mean().scalar == 3.5)
        #expect(x.mean(alongAxes: [0, 1]).scalars == [3.5])
        #expect(x.max(alongAxis: 1).scalars == [3, 6])
        // Ties go to the lowest index, like jnp.argmax.
        #expect(Tensor<Float>(shape: [2, 4], scalars: [1, 3, 3, 0, 2, 2, 2, 2]).argmaxAlongLastAxis() == [1, 0])
    }

    @Test("softmax, log-softmax and logsumexp on known values")
    func softmaxValues() {
        let logits = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 1000, 1000, 1000])
        let p = logits.softmax()
        // e^(x - 3) / Σ: [0.09003057, 0.24472847, 0.66524096]
        let expected: [Float] = [0.09003057, 0.24472847, 0.66524096, 0.33333333, 0.33333333, 0.33333333]
        #expect(close(p.scalars, expected))
        #expect(close(logits.logSoftmax().scalars, [-2.40760596, -1.40760596, -0.40760596, -1.09861229, -1.09861229, -1.09861229]))
        #expect(close(logits.logSumExp().scalars, [3.40760596, 1001.09861229]))
    }

    @Test("softmax and log-softmax of a scalar (rank 0) treat it as one row of one value: 1 and 0, as for shape [1]")
    func softmaxOfAScalar() {
        for x: Float in [-3, 0, 2.5] {
            let scalar = Tensor<Float>(x), row = Tensor<Float>([x])
            #expect(scalar.softmax().shape == [] && scalar.softmax().scalars == [1] && row.softmax().scalars == [1])
            #expect(scalar.logSoftmax().shape == [] && scalar.logSoftmax().scalars == [0] && row.logSoftmax().scalars == [0])
            #expect(scalar.gelu().scalars == row.gelu().scalars && scalar.tanh().scalars == row.tanh().scalars)
        }
    }

    @Test("GELU (tanh approximation) and ReLU on known values")
    func activations() {
        let x = Tensor<Float>([-3, -1, 0, 0.5, 1, 3])
        // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), computed with numpy in float64.
        #expect(close(x.gelu().scalars, [-0.00363739, -0.15880801, 0, 0.34571401, 0.84119199, 2.99636261], tolerance: 1e-6))
        #expect(x.relu().scalars == [0, 0, 0, 0.5, 1, 3])
    }

    @Test("RMSNorm: x · rsqrt(mean(x²) + ε) · scale, no mean subtraction")
    func rmsNorm() {
        let x = Tensor<Float>(shape: [2, 2], scalars: [3, 4, 1, 1])
        let (y, r) = rmsNormalized(x, scale: Tensor([1, 2]), epsilon: 1e-6)
        // Row 0: mean square 12.5 → rms 3.5355339; row 1: 1.
        #expect(close(r.scalars, [1 / Float(12.5 + 1e-6).squareRoot(), 1 / Float(1 + 1e-6).squareRoot()]))
        #expect(close(y.scalars, [0.84852814, 2.2627417, 0.9999995, 1.999999]))
        // A large ε shows where it goes: inside the root, 1/√(12.5 + 0.5) = 1/√13 (not 1/(√12.5 + 0.5) = 0.2478).
        let (_, wide) = rmsNormalized(Tensor<Float>(shape: [1, 2], scalars: [3, 4]), scale: Tensor([1, 1]), epsilon: 0.5)
        #expect(abs(wide.scalars[0] - 0.27735010) < 1e-7)
    }

    @Test func transposeAndGather() {
        let x = Tensor<Float>(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])
        #expect(x.transposed() == Tensor(shape: [3, 2], scalars: [0, 3, 1, 4, 2, 5]))
        let y = Tensor<Float>(shape: [2, 3, 4], scalars: (0..<24).map(Float.init))
        let p = y.transposed(permutation: [2, 0, 1])  // p[k, i, j] = y[i, j, k]
        #expect(p.shape == [4, 2, 3] && p[3, 1, 2] == y[1, 2, 3] && p[1, 0, 2] == y[0, 2, 1])
        #expect(x.gatheringRows([1, 1, 0]).scalars == [3, 4, 5, 3, 4, 5, 0, 1, 2])
        #expect(x.gatheringRows([1, 0]).scatterAddingRows([1, 1], rowCount: 3).scalars == [0, 0, 0, 3, 5, 7, 0, 0, 0])
    }

    @Test("seeded generators repeat exactly and counter-based values depend only on their key")
    func randomness() {
        var g1 = SeededGenerator(seed: 42), g2 = SeededGenerator(seed: 42)
        #expect((0..<5).map { _ in g1.next() } == (0..<5).map { _ in g2.next() })
        #expect(CounterRandom.uniform(seed: 1, stream: 2, index: 3) == CounterRandom.uniform(seed: 1, stream: 2, index: 3))
        #expect(CounterRandom.uniform(seed: 1, stream: 2, index: 3) != CounterRandom.uniform(seed: 1, stream: 2, index: 4))
        var g = SeededGenerator(seed: 7)
        let samples = (0..<20_000).map { _ in Double(g.nextNormal()) }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(samples.count)
        #expect(abs(mean) < 0.03 && abs(variance - 1) < 0.05)
    }
}

extension TensorTests {
    @Test("a product with inner dimension 1 is the outer product; an empty inner dimension gives zeros")
    func innerDimensionOneAndZero() throws {
        let a = Tensor<Float>(shape: [3, 1], scalars: [1, -2, 0.5])
        let b = Tensor<Float>(shape: [1, 4], scalars: [3, 0.25, -1, 8])
        let product = matmul(a, b)
        #expect(product.shape == [3, 4])
        #expect(product.scalars == [3, 0.25, -1, 8, -6, -0.5, 2, -16, 1.5, 0.125, -0.5, 4])
        let empty = matmul(Tensor<Float>(shape: [2, 0], scalars: []), Tensor<Float>(shape: [0, 3], scalars: []))
        #expect(empty.shape == [2, 3] && empty.scalars == [Float](repeating: 0, count: 6))
    }

    @Test("transposing an empty tensor permutes its shape and holds nothing")
    func transposeEmpty() {
        for shape in [[0, 3], [2, 0, 4], [0]] {
            let tensor = Tensor<Float>(shape: shape, scalars: [])
            let permutation = Array((0..<shape.count).reversed())
            let transposed = tensor.transposed(permutation: permutation)
            #expect(transposed.shape == permutation.map { shape[$0] } && transposed.scalars.isEmpty)
        }
    }
}
