// GLaM's causal self-attention (glam-spec.md section 1.2; praxis `DotProductAttention` as glam.py
// configures it): separate Wq, Wk, Wv [M, N·D] and Wo [N·D, M], no biases, **no 1/√D scaling**
// (it is in Wq's initialisation), a per-layer relative-position bias, float32 logits, and a
// softmax with an extra zero logit.
//
//   q, k, v = x·Wq, x·Wk, x·Wv                     [B, N, T, D]
//   logits  = q·kᵀ + bias[n, bucket(t − s)]        [B, N, T, T]
//   masked: not visible when segments differ, the key's segment is 0 (padding), or t < s
//   p       = exp(l) / (exp(0) + Σ exp(l))         (the extra zero logit; plain softmax if off)
//   out     = (p·v merged over heads)·Wo           [B, T, M]

/// The logit given to pairs that may not attend: praxis `get_large_negative_number` (−0.7 × the
/// largest float32), substituted for the logit as `apply_mask_to_logits` does.
let maskedLogit: Float = -0.7 * Float.greatestFiniteMagnitude

/// Which (query, key) pairs may attend, for B rows of T tokens: `[B, T, T]` flattened.
///
/// A pair is visible when both tokens are in the same segment, that segment is not 0 (padding),
/// and the key is not after the query. Without segment ids every real token is segment 1 and
/// every padded one segment 0.
public func attentionVisibility(segmentIDs: [Int], batch b: Int, length t: Int) -> [Bool] {
    precondition(segmentIDs.count == b * t, "attentionVisibility: \(segmentIDs.count) segment ids for [\(b), \(t)]")
    var visible = [Bool](repeating: false, count: b * t * t)
    for row in 0..<b {
        for query in 0..<t {
            for key in 0...query {
                let (sq, sk) = (segmentIDs[row * t + query], segmentIDs[row * t + key])
                visible[(row * t + query) * t + key] = sq == sk && sk != 0
            }
        }
    }
    return visible
}

extension Variable {
    /// Softmax over the last axis `[B, N, T, K]` where `visible[b, t, k]` (shared by the N heads)
    /// says which logits count; masked logits become `maskedLogit`. With `extraZeroLogit`, a
    /// constant 0 joins every row's normalisation: `p_j = exp(l_j − m) / (exp(−m) + Σ_k exp(l_k − m))`,
    /// `m = max(0, max_k l_k)`, so a row with nothing visible gets all zeros.
    ///
    /// Backward (the extra logit is a constant): `dl_j = p_j·(g_j − Σ_k g_k p_k)` for visible j, 0
    /// for masked j.
    func maskedSoftmax(visible: [Bool], extraZeroLogit: Bool) -> Variable {
        precondition(value.rank == 4, "maskedSoftmax: expects [B, N, T, K], got \(shape)")
        let (b, n, t, k) = (shape[0], shape[1], shape[2], shape[3])
        precondition(visible.count == b * t * k, "maskedSoftmax: visibility has \(visible.count) entries for [\(b), \(t), \(k)]")
        let x = value.scalars
        let masked = Scalar(maskedLogit)
        var p = [Scalar](repeating: 0, count: x.count)
        p.withUnsafeMutableBufferPointer { out in
            x.withUnsafeBufferPointer { logits in
                for row in 0..<(b * n * t) {
                    let batch = row / (n * t), query = row % t
                    let mask = (batch * t + query) * k
                    let base = row * k
                    var peak: Scalar = extraZeroLogit ? 0 : -Scalar.infinity
                    for j in 0..<k {
                        let l = visible[mask + j] ? logits[base + j] : masked
                        out[base + j] = l
                        peak = Swift.max(peak, l)
                    }
                    var total: Scalar = extraZeroLogit ? Scalar.exp(-peak) : 0
                    for j in 0..<k {
                        out[base + j] = Scalar.exp(out[base + j] - peak)
                        total += out[base + j]
                    }
                    for j in 0..<k { out[base + j] /= total }
                }
            }
        }
        let probabilities = Tensor(shape: shape, scalars: p)
        return Variable.record(probabilities, inputs: [self]) { g in
            var d = [Scalar](repeating: 0, count: p.count)
            for row in 0..<(b * n * t) {
                let batch = row / (n * t), query = row % t
                let mask = (batch * t + query) * k
                let base = row * k
                var dot: Scalar = 0
                for j in 0..<k { dot += g.scalars[base + j] * p[base + j] }
                for j in 0..<k where visible[mask + j] { d[base + j] = p[base + j] * (g.scalars[base + j] - dot) }
            }
            return [Tensor(shape: probabilities.shape, scalars: d)]
        }
    }
}

/// The weights of one attention layer (contracts.md names `layers.{i}.attention.*`).
struct AttentionWeights<Scalar: TensorScalar> {
    var wq, wk, wv, wo, relativeBias: Variable<Scalar>
}

/// Self-attention of `x` `[B, T, M]` (already normalised) given pair visibility `[B, T, T]` and the
/// bucket of every (query, key) pair `[T·T]`.
func selfAttention<Scalar>(
    _ x: Variable<Scalar>, weights w: AttentionWeights<Scalar>, heads n: Int, headDim d: Int,
    visible: [Bool], buckets: [Int], extraZeroLogit: Bool
) -> Variable<Scalar> {
    let (b, t, m) = (x.shape[0], x.shape[1], x.shape[2])
    func heads(_ projection: Variable<Scalar>) -> Variable<Scalar> {
        matmul(x, projection).reshaped(to: [b, t, n, d]).transposed(permutation: [0, 2, 1, 3])  // [B, N, T, D]
    }
    let (q, k, v) = (heads(w.wq), heads(w.wk), heads(w.wv))
    let bias = w.relativeBias.gatheringColumns(buckets, shape: [t, t])  // [N, T, T]
    let logits = matmul(q, k, transposeB: true) + bias  // [B, N, T, T]
    let probabilities = logits.maskedSoftmax(visible: visible, extraZeroLogit: extraZeroLogit)  // [B, N, T, T]
    let merged = matmul(probabilities, v).transposed(permutation: [0, 2, 1, 3]).reshaped(to: [b, t, n * d])  // [B, T, N·D]
    let out = matmul(merged, w.wo)  // [B, T, M]
    precondition(out.shape == [b, t, m])
    return out
}
