// The attention softmax of a decoding call, where the only mask is causality: query t (at position
// `firstQuery + t`) sees keys 0 ... firstQuery + t of the cache. The general path builds a
// `[B, T, L]` visibility array, a `[T, L]` bucket array and a gathered `[N, T, L]` bias, then reads
// all three element by element; here each head's bias is looked up by distance from one `[L]`
// table, written backwards so that a row reads it forwards, and only the visible part of a row is
// touched. The operations on each visible logit are the general path's, in the same order, and a
// masked logit's exponential is 0 there: the probabilities have the same bits (tested).

extension Tensor {
    /// `softmax(scores + bias[n, bucket(q − k)])` over the keys `k ≤ q` of each query, `q =
    /// firstQuery + t`, for `scores` `[B, N, T, L]` and the relative bias `[N, buckets]`, with the
    /// extra zero logit when `extraZeroLogit`: `p_k = exp(l_k − m) / (exp(−m) + Σ_{k' ≤ q} exp(l_k' − m))`,
    /// `m = max(0, max l)`; 0 for the keys after q. Equal, bit for bit, to
    /// `maskedSoftmax(adding:visible:extraZeroLogit:)` with the causal visibility and the gathered
    /// bias.
    ///
    /// `bucketOfDistance[δ]` is the bucket of distance δ = q − k for δ in `0..<L`
    /// (`ForwardContext.distanceBuckets`, computed once per call and shared by the layers).
    static func causalSoftmax(
        _ scores: Tensor, relativeBias: Tensor, firstQuery: Int, bucketOfDistance: [Int], extraZeroLogit: Bool
    ) -> Tensor {
        precondition(scores.rank == 4 && relativeBias.rank == 2, "causalSoftmax: scores \(scores.shape), bias \(relativeBias.shape)")
        let (b, n, t, l) = (scores.shape[0], scores.shape[1], scores.shape[2], scores.shape[3])
        precondition(firstQuery + t == l && relativeBias.shape[0] == n, "causalSoftmax: \(t) queries from \(firstQuery) for \(l) keys")
        precondition(bucketOfDistance.count == l, "causalSoftmax: \(bucketOfDistance.count) distance buckets for \(l) keys")
        let backwards = backwardsBias(relativeBias, keys: l, bucketOfDistance: bucketOfDistance)
        return scores.scalars.withUnsafeBufferPointer { px in
            backwards.withUnsafeBufferPointer { pb in
                let (logits, table) = (UncheckedSendable(px), UncheckedSendable(pb))
                return Tensor(shape: scores.shape, rows: b * n * t, rowLength: l) { row, out in
                    let (head, query) = ((row / t) % n, firstQuery + row % t)
                    causalSoftmaxRow(
                        logits.value.baseAddress! + row * l, into: out + row * l, backwardsBias: table.value.baseAddress! + head * l,
                        query: query, keys: l, extraZeroLogit: extraZeroLogit)
                }
            }
        }
    }

    /// Each head's bias by distance, written backwards: `[N, L]` with element (h, i) =
    /// `bias[h, bucket(L − 1 − i)]`, so that key k of the query at q reads index L − 1 − q + k.
    static func backwardsBias(_ relativeBias: Tensor, keys l: Int, bucketOfDistance: [Int]) -> [Scalar] {
        let (n, buckets) = (relativeBias.shape[0], relativeBias.shape[1])
        return (0..<(n * l)).map { index in
            relativeBias.scalars[(index / l) * buckets + bucketOfDistance[l - 1 - index % l]]
        }
    }

    /// One query row of `causalSoftmax`: the `keys` logits at `x` with the bias of head h
    /// (`headBias`, that head's row of `backwardsBias`) for the query at position `query`,
    /// softmax over keys 0 ... query (with the extra zero logit when asked) into `p`, zeros after.
    static func causalSoftmaxRow(
        _ x: UnsafePointer<Scalar>, into p: UnsafeMutablePointer<Scalar>, backwardsBias headBias: UnsafePointer<Scalar>, query: Int,
        keys l: Int, extraZeroLogit: Bool
    ) {
        let count = query + 1  // the visible keys 0 ... query
        let bias = headBias + (l - 1 - query)
        for j in 0..<count { p[j] = x[j] + bias[j] }
        let peak = rowMaximum(p, count: count, initial: extraZeroLogit ? 0 : -Scalar.infinity)
        exponentials(p, minus: peak, into: p, count: count)
        let zeroLogit: Scalar = extraZeroLogit ? exponential(ofNonPositive: -peak) : 0
        // rowSum adds element j into lane j mod 16 in order: the general path's zeros
        // after `count` change no lane, so summing the visible part gives its bits.
        let total = zeroLogit + rowSum(p, count: count)
        for j in 0..<count { p[j] /= total }
        for j in count..<l { p[j] = 0 }
    }
}
