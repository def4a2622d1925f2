// The decoding cache's layout (each head's kᵀ and v in memory order, storage that doubles): its
// products against the cache equal, bit for bit, the full pass's per-head products on all the keys
// and values appended so far, through growth, for one row and several, Float and Double.

import Testing

@testable import GLaM

struct KeyValueCacheTests {
    /// `[B, T, N, D]` of `t` positions of seeded normal values.
    static func positions<Scalar: TensorScalar>(_ b: Int, _ t: Int, _ n: Int, _ d: Int, seed: UInt64) -> Tensor<Scalar> {
        Tensor<Scalar>(randomDoubleTensor([b, t, n, d], seed: seed))
    }

    /// Positions `chunks` at a time: after every append, scores and weighted values against the
    /// cache have the bits of `headMatmul` on the concatenated keys and values.
    func check<Scalar: TensorScalar>(_: Scalar.Type, batch b: Int, heads n: Int, depth d: Int, chunks: [Int]) {
        var cache = KeyValueCache<Scalar>(batch: b, heads: n, depth: d)
        var keys: Tensor<Scalar>?, values: Tensor<Scalar>?
        for (index, t) in chunks.enumerated() {
            let k: Tensor<Scalar> = Self.positions(b, t, n, d, seed: UInt64(3 * index + 1))
            let v: Tensor<Scalar> = Self.positions(b, t, n, d, seed: UInt64(3 * index + 2))
            let q: Tensor<Scalar> = Self.positions(b, t, n, d, seed: UInt64(3 * index + 3))
            cache.append(keys: k, values: v)
            keys = keys.map { Tensor.concatenated([$0, k], alongAxis: 1) } ?? k  // [B, L, N, D]
            values = values.map { Tensor.concatenated([$0, v], alongAxis: 1) } ?? v
            let l = keys!.shape[1]
            #expect(cache.length == l && cache.capacity >= l)
            let scores = cache.scores(q)  // [B, N, T, L]
            let expectedScores = headMatmul(q, .tokenMajor, keys!, .tokenMajor, transposeB: true, output: .headMajor)
            #expect(scores.shape == [b, n, t, l])
            #expect(scores.scalars == expectedScores.scalars, "scores after \(l) positions")
            // Probabilities of any values: the scores' softmax-free stand-in, scaled to stay small.
            let p = scores.map { $0 / Scalar(Double(l * d)) }
            let merged = cache.weightedValues(p)  // [B, T, N·D]
            let expectedMerged = headMatmul(p, .headMajor, values!, .tokenMajor, output: .tokenMajor).reshaped(to: [b, t, n * d])
            #expect(merged.shape == [b, t, n * d])
            #expect(merged.scalars == expectedMerged.scalars, "weighted values after \(l) positions")
        }
    }

    @Test(
        "products against the cache equal the full pass's per-head products on every key and value appended so far, through the storage's growth",
        arguments: [(1, 4, 64), (3, 2, 16), (8, 4, 64)])
    func matchesFullProducts(shape: (b: Int, n: Int, d: Int)) {
        // 1-position steps across the first growth (16), a prompt-sized chunk, and steps after it.
        let chunks = [5] + Array(repeating: 1, count: 14) + [40, 1, 1, 300, 1]
        check(Float.self, batch: shape.b, heads: shape.n, depth: shape.d, chunks: chunks)
        check(Double.self, batch: shape.b, heads: shape.n, depth: shape.d, chunks: [3, 1, 20, 1])
    }

    @Test(
        "attention in one pass per head equals the scores, the causal softmax and the weighted values in turn, bit for bit, with and without the extra zero logit",
        arguments: [(1, 4, 64), (3, 2, 16)], [false, true])
    func onePassEqualsThreeSteps(shape: (b: Int, n: Int, d: Int), extraZeroLogit: Bool) throws {
        let (b, n, d) = shape
        var cache = KeyValueCache<Float>(batch: b, heads: n, depth: d)
        let relativeBias = Tensor<Float>(randomDoubleTensor([n, 32], seed: 9, in: -3..<3))
        var position = 0
        for (index, t) in [7, 1, 1, 12, 1, 40, 1].enumerated() {
            let k: Tensor<Float> = Self.positions(b, t, n, d, seed: UInt64(5 * index + 1))
            let v: Tensor<Float> = Self.positions(b, t, n, d, seed: UInt64(5 * index + 2))
            let q: Tensor<Float> = Self.positions(b, t, n, d, seed: UInt64(5 * index + 3))
            cache.append(keys: k, values: v)
            let l = position + t
            let buckets = (0..<l).map { min($0, 31) }  // a distance's bucket: any table of L entries
            let probabilities = Tensor.causalSoftmax(
                cache.scores(q), relativeBias: relativeBias, firstQuery: position, bucketOfDistance: buckets, extraZeroLogit: extraZeroLogit
            )
            let steps = cache.weightedValues(probabilities)
            let onePass = try #require(
                cache.attend(q, relativeBias: relativeBias, firstQuery: position, bucketOfDistance: buckets, extraZeroLogit: extraZeroLogit)
            )
            #expect(
                onePass.shape == steps.shape && onePass.scalars.map(\.bitPattern) == steps.scalars.map(\.bitPattern), "after \(l) positions"
            )
            position = l
        }
        var doubles = KeyValueCache<Double>(batch: 1, heads: 1, depth: 4)
        doubles.append(keys: Tensor(zeros: [1, 2, 1, 4]), values: Tensor(zeros: [1, 2, 1, 4]))
        #expect(
            doubles.attend(
                Tensor(zeros: [1, 2, 1, 4]), relativeBias: Tensor(zeros: [1, 4]), firstQuery: 0, bucketOfDistance: [0, 1],
                extraZeroLogit: true)
                == nil)
    }

    @Test("appending keys whose batch, heads or depth differ from the cache's stops with a message")
    func refusesOtherShapes() async {
        await #expect(processExitsWith: .failure) {
            var cache = KeyValueCache<Float>(batch: 2, heads: 4, depth: 8)
            let k = Tensor<Float>(zeros: [2, 1, 3, 8])
            cache.append(keys: k, values: k)
        }
    }
}
