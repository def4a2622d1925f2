// The key/value cache of one decoder layer, laid out for a decoding step's per-head products.
//
//   keys    kᵀ  [B, N, D, capacity]   head (b, n)'s kᵀ is [D, L]: row d holds every position's
//                                     d-th key entry, so q·kᵀ reads it row by row in memory order
//   values  v   [B, N, capacity, D]   head (b, n)'s v is [L, D], contiguous, so p·v reads it
//                                     row by row in memory order
//
// The first L = `length` of the `capacity` positions are filled; a step's new positions are
// written after them, and the storage doubles when full (a copy of L positions, so appending N
// positions one at a time copies fewer than 2N). Held in the projections' layout `[L, B, N, D]`,
// each head's keys and values would be 64 floats every B·N·D floats, a page or two apart: a decoding
// step's 16 × 16 register transposes of them (q·kᵀ through the transposed-B kernel) and its strided
// reads were a quarter of a B = 8 step on the EPYC (`perf record`).
//
// The products are GEMMs whose every element is the chain the full pass's `headMatmul` gives it
// (Kernels/GEMM.swift: the same sum, whatever the layout), so cached decoding keeps the full
// pass's bits (Tests/GLaMTests/ModelTests.swift).

/// Keys and values of the positions decoded so far, for one layer.
struct KeyValueCache<Scalar: TensorScalar> {
    /// B, N and D.
    let batch: Int, heads: Int, depth: Int
    /// L, the positions cached.
    private(set) var length = 0
    /// Positions the storage holds before it grows.
    private(set) var capacity = 0
    /// kᵀ `[B, N, D, capacity]`.
    private var keys: [Scalar] = []
    /// v `[B, N, capacity, D]`.
    private var values: [Scalar] = []

    /// An empty cache for `batch` rows of `heads` heads of `depth`.
    init(batch: Int, heads: Int, depth: Int) {
        (self.batch, self.heads, self.depth) = (batch, heads, depth)
    }

    /// Appends T new positions: `k` and `v` are `[B, T, N, D]` (the projections' layout).
    mutating func append(keys k: Tensor<Scalar>, values v: Tensor<Scalar>) {
        precondition(k.shape.count == 4 && k.shape == v.shape, "KeyValueCache: keys \(k.shape), values \(v.shape)")
        precondition(
            k.shape[0] == batch && k.shape[2] == heads && k.shape[3] == depth,
            "KeyValueCache: [B, T, N, D] with B = \(batch), N = \(heads), D = \(depth) expected, got \(k.shape)")
        let t = k.shape[1]
        if length + t > capacity { grow(to: (max(2 * capacity, length + t) + 15) / 16 * 16) }
        let (n, d, cap, l) = (heads, depth, capacity, length)
        k.scalars.withUnsafeBufferPointer { pk in
            v.scalars.withUnsafeBufferPointer { pv in
                keys.withUnsafeMutableBufferPointer { kt in
                    values.withUnsafeMutableBufferPointer { vs in
                        // Each cache row written in memory order: kᵀ's rows d take T consecutive
                        // positions, v's rows are whole [D] vectors.
                        for b in 0..<batch {
                            for h in 0..<n {
                                let pair = b * n + h
                                for e in 0..<d {
                                    let row = kt.baseAddress! + (pair * d + e) * cap + l
                                    for s in 0..<t { row[s] = pk[((b * t + s) * n + h) * d + e] }
                                }
                                for s in 0..<t {
                                    let source = ((b * t + s) * n + h) * d  // [B, T, N, D]
                                    (vs.baseAddress! + (pair * cap + l + s) * d).update(from: pv.baseAddress! + source, count: d)
                                }
                            }
                        }
                    }
                }
            }
        }
        length += t
    }

    /// Moves the filled positions to storage of `newCapacity` positions.
    private mutating func grow(to newCapacity: Int) {
        let pairs = batch * heads
        var newKeys = [Scalar](repeating: 0, count: pairs * depth * newCapacity)
        var newValues = [Scalar](repeating: 0, count: pairs * newCapacity * depth)
        for row in 0..<(pairs * depth) where length > 0 {
            newKeys[(row * newCapacity)..<(row * newCapacity + length)] = keys[(row * capacity)..<(row * capacity + length)]
        }
        for pair in 0..<pairs where length > 0 {
            let (from, to) = (pair * capacity * depth, pair * newCapacity * depth)
            newValues[to..<(to + length * depth)] = values[from..<(from + length * depth)]
        }
        (keys, values, capacity) = (newKeys, newValues, newCapacity)
    }

    /// The attention logits before the bias, `scores[b, n, t, l] = q[b, t, n, :] · k[b, l, n, :]`:
    /// `q` `[B, T, N, D]` → `[B, N, T, L]`.
    func scores(_ q: Tensor<Scalar>) -> Tensor<Scalar> {
        let t = q.shape[1]
        precondition(q.shape == [batch, t, heads, depth], "KeyValueCache.scores: q \(q.shape)")
        let (n, d, l, cap) = (heads, depth, length, capacity)
        // Computed for `scoreColumns` columns, then cut back to L.
        let padded = scoreColumns(queries: t)
        let scores = q.scalars.withUnsafeBufferPointer { pq in
            keys.withUnsafeBufferPointer { pk in
                perHead(m: t, n: padded, k: d, count: batch * n * t * padded) { pair in
                    // A = q of head (b, h) [T, D]; B = its kᵀ [D, L]; C = its scores [T, L].
                    return (
                        pq.baseAddress! + rowsOffset(pair, queries: t), (n * d, 1), pk.baseAddress! + keysOffset(pair), (cap, 1),
                        pair * t * padded,
                        padded
                    )
                }
            }
        }
        guard padded != l else { return Tensor(shape: [batch, n, t, l], scalars: scores) }
        return Tensor(
            shape: [batch, n, t, l], scalars: (0..<(batch * n * t)).flatMap { row in scores[(row * padded)..<(row * padded + l)] })
    }

    /// The heads' outputs, merged: `out[b, t, n, :] = Σ_l p[b, n, t, l] · v[b, l, n, :]`:
    /// `p` `[B, N, T, L]` → `[B, T, N·D]`.
    func weightedValues(_ p: Tensor<Scalar>) -> Tensor<Scalar> {
        let t = p.shape[2]
        precondition(p.shape == [batch, heads, t, length], "KeyValueCache.weightedValues: p \(p.shape)")
        let (n, d, l) = (heads, depth, length)
        return p.scalars.withUnsafeBufferPointer { pp in
            values.withUnsafeBufferPointer { pv in
                Tensor(
                    shape: [batch, t, n * d],
                    scalars: perHead(m: t, n: d, k: l, count: batch * t * n * d) { pair in
                        // A = p of head (b, h) [T, L]; B = its v [L, D]; C = its rows of the output [T, D].
                        return (
                            pp.baseAddress! + pair * t * l, (l, 1), pv.baseAddress! + valuesOffset(pair), (d, 1),
                            rowsOffset(pair, queries: t), n * d
                        )
                    })
            }
        }
    }

    /// Decoding's attention for every head at once, one task per head, while that head's keys
    /// and values are in cache: its scores against the cache, the causal softmax of each query row
    /// (`Tensor.causalSoftmaxRow`, with the relative bias and the extra zero logit), and p·v. The
    /// same operations as `scores`, `Tensor.causalSoftmax` and `weightedValues` in turn, so the same
    /// bits (Tests/GLaMTests/KeyValueCacheTests.swift), with one hand-off to the workers instead of
    /// three. `q` `[B, T, N, D]` at positions `firstQuery...` → `[B, T, N·D]`; nil for other
    /// scalars than Float (the caller then takes the three steps).
    func attend(
        _ q: Tensor<Scalar>, relativeBias: Tensor<Scalar>, firstQuery: Int, bucketOfDistance: [Int], extraZeroLogit: Bool
    ) -> Tensor<Scalar>? {
        guard let q = q as? Tensor<Float>, let relativeBias = relativeBias as? Tensor<Float> else { return nil }
        let t = q.shape[1]
        precondition(q.shape == [batch, t, heads, depth], "KeyValueCache.attend: q \(q.shape)")
        precondition(
            firstQuery + t == length && bucketOfDistance.count == length && relativeBias.shape[0] == heads,
            "KeyValueCache.attend: \(t) queries from \(firstQuery) for \(length) keys")
        let (n, d, l, cap, pairs) = (heads, depth, length, capacity, batch * heads)
        let padded = scoreColumns(queries: t)
        let table = Tensor<Float>.backwardsBias(relativeBias, keys: l, bucketOfDistance: bucketOfDistance)  // [N, L]
        let out = q.scalars.withUnsafeBufferPointer { pq in
            keys.withUnsafeBufferPointer { pk in
                values.withUnsafeBufferPointer { pv in
                    table.withUnsafeBufferPointer { pb in
                        let (qs, ks, vs, bias) = (
                            SendablePointer(pq.baseAddress!),
                            SendablePointer(UnsafeRawPointer(pk.baseAddress!).assumingMemoryBound(to: Float.self)),
                            SendablePointer(UnsafeRawPointer(pv.baseAddress!).assumingMemoryBound(to: Float.self)),
                            SendablePointer(pb.baseAddress!)
                        )
                        return [Float].filled(count: batch * t * n * d) { buffer in  // every element written below
                            let target = SendableMutablePointer(buffer.baseAddress!)
                            let threads = pairs * t * l * d < GEMM.smallestShared ? 1 : Parallelism.threadCount
                            Parallelism.forEachTask(pairs, threads: threads) { pair in
                                let h = pair % n
                                ScratchBuffers.withBuffer(count: t * padded + t * l) { scratch in
                                    let (scores, probabilities) = (scratch, scratch + t * padded)  // [T, padded], [T, L]
                                    GEMM.multiply(
                                        m: t, n: padded, k: d,
                                        a: MatrixOperand(base: qs.base + rowsOffset(pair, queries: t), rowStride: n * d, columnStride: 1),
                                        b: MatrixOperand(base: ks.base + keysOffset(pair), rowStride: cap, columnStride: 1), c: scores,
                                        ldc: padded,
                                        threads: 1)
                                    for r in 0..<t {
                                        Tensor<Float>.causalSoftmaxRow(
                                            scores + r * padded, into: probabilities + r * l, backwardsBias: bias.base + h * l,
                                            query: firstQuery + r,
                                            keys: l, extraZeroLogit: extraZeroLogit)
                                    }
                                    GEMM.multiply(
                                        m: t, n: d, k: l, a: MatrixOperand(base: probabilities, rowStride: l, columnStride: 1),
                                        b: MatrixOperand(base: vs.base + valuesOffset(pair), rowStride: d, columnStride: 1),
                                        c: target.base + rowsOffset(pair, queries: t), ldc: n * d, threads: 1)
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [batch, t, n * d], scalars: out) as? Tensor<Scalar>
    }

    /// Columns of a step's scores: L, rounded up to whole vectors of 16 for a decoding step's few
    /// queries (the capacity is a multiple of 16 and its unfilled positions are zero), so that the
    /// one-row kernel keeps one chain per vector; each score is its own chain over D either way.
    private func scoreColumns(queries t: Int) -> Int {
        t <= GEMM.unpackedRows ? (length + 15) / 16 * 16 : length
    }

    /// Where head pair `pair` = b·N + h starts in a `[B, T, N, D]` tensor (its queries, its rows of
    /// the merged output), in the keys kᵀ and in the values.
    private func rowsOffset(_ pair: Int, queries t: Int) -> Int {
        let (b, h) = pair.quotientAndRemainder(dividingBy: heads)
        return (b * t * heads + h) * depth
    }
    private func keysOffset(_ pair: Int) -> Int { pair * depth * capacity }
    private func valuesOffset(_ pair: Int) -> Int { pair * capacity * depth }

    /// Per head pair of `0..<B·N`, `C = A · B` of `[m, k]` by `[k, n]` into an output of `count`
    /// elements, with the operands `operands(pair)` names (A, its strides, B, its strides, C's
    /// offset, C's row stride). Float runs each pair on the GEMM, on one thread, the pairs shared
    /// by the workers when the step has enough work; other scalars on a plain loop.
    private func perHead(
        m: Int, n: Int, k: Int, count: Int,
        _ operands: (Int) -> (UnsafePointer<Scalar>, (row: Int, column: Int), UnsafePointer<Scalar>, (row: Int, column: Int), Int, Int)
    ) -> [Scalar] {
        let pairs = batch * heads
        return [Scalar].filled(count: count) { out in  // every element written below
            let c = out.baseAddress!
            guard k > 0 else {
                c.update(repeating: 0, count: count)
                return
            }
            guard Scalar.self == Float.self else {
                for pair in 0..<pairs {
                    let (a, aStrides, b, bStrides, offset, ldc) = operands(pair)
                    plainProduct(m: m, n: n, k: k, a: a, aStrides: aStrides, b: b, bStrides: bStrides, c: c + offset, ldc: ldc)
                }
                return
            }
            let views = (0..<pairs).map { pair in
                let (a, aStrides, b, bStrides, offset, ldc) = operands(pair)
                return (
                    MatrixOperand(
                        base: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), rowStride: aStrides.row,
                        columnStride: aStrides.column),
                    MatrixOperand(
                        base: UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), rowStride: bStrides.row,
                        columnStride: bStrides.column),
                    offset, ldc
                )
            }
            let target = SendableMutablePointer(UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self))
            // Too little work to pay for waking workers (a short cache): every head on this thread.
            let threads = pairs * m * n * k < 65_536 ? 1 : Parallelism.threadCount
            Parallelism.forEachTask(pairs, threads: threads) { pair in
                let (a, b, offset, ldc) = views[pair]
                GEMM.multiply(m: m, n: n, k: k, a: a, b: b, c: target.base + offset, ldc: ldc, threads: 1)
            }
        }
    }
}
