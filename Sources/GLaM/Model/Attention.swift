// GLaM's causal self-attention (praxis `DotProductAttention` as glam.py configures it; see the
// "The model" article): separate Wq, Wk, Wv [M, N·D] and Wo [N·D, M], no biases, **no 1/√D scaling**
// (it is in Wq's initialisation), a per-layer relative-position bias, float32 logits, and a
// softmax with an extra zero logit.
//
//   q, k, v = x·Wq, x·Wk, x·Wv                     [B, T, N, D]   (head n: columns n·D..<(n+1)·D)
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
        maskedSoftmax(adding: nil, visible: visible, extraZeroLogit: extraZeroLogit)
    }

    /// `(self + bias).maskedSoftmax(visible:extraZeroLogit:)` in one pass over the scores, for
    /// scores `[B, N, T, K]` and a bias `[N, T, K]` shared by the batch (the relative-position
    /// bias): the same operations, so the same bits, without the summed logits in memory. The
    /// bias's gradient is the logits' summed over the batch, as `+` gives it.
    func maskedSoftmax(adding bias: Variable?, visible: [Bool], extraZeroLogit: Bool) -> Variable {
        precondition(value.rank == 4, "maskedSoftmax: expects [B, N, T, K], got \(shape)")
        let (b, n, t, k) = (shape[0], shape[1], shape[2], shape[3])
        precondition(visible.count == b * t * k, "maskedSoftmax: visibility has \(visible.count) entries for [\(b), \(t), \(k)]")
        precondition(bias.map { $0.shape == [n, t, k] } ?? true, "maskedSoftmax: bias \(bias?.shape ?? []) for scores \(shape)")
        let masked = Scalar(maskedLogit)
        let biasValue = bias?.value ?? Tensor<Scalar>(zeros: [0])
        let probabilities = value.scalars.withUnsafeBufferPointer { px in
            visible.withUnsafeBufferPointer { pv in
                biasValue.scalars.withUnsafeBufferPointer { pb in
                    let (logits, mask, biasScalars) = (UncheckedSendable(px), UncheckedSendable(pv), UncheckedSendable(pb))
                    let hasBias = bias != nil
                    return Tensor<Scalar>(shape: shape, rows: b * n * t, rowLength: k) { row, out in
                        let batch = row / (n * t), query = row % t
                        let visibleRow = mask.value.baseAddress! + (batch * t + query) * k
                        let x = logits.value.baseAddress! + row * k, p = out + row * k
                        let biasRow = hasBias ? biasScalars.value.baseAddress! + (row % (n * t)) * k : nil
                        if let biasRow {
                            for j in 0..<k { p[j] = visibleRow[j] ? x[j] + biasRow[j] : masked }
                        } else {
                            for j in 0..<k { p[j] = visibleRow[j] ? x[j] : masked }
                        }
                        let peak = Tensor<Scalar>.rowMaximum(p, count: k, initial: extraZeroLogit ? 0 : -Scalar.infinity)
                        Tensor<Scalar>.exponentials(p, minus: peak, into: p, count: k)
                        let zeroLogit: Scalar = extraZeroLogit ? Tensor<Scalar>.exponential(ofNonPositive: -peak) : 0
                        let total = zeroLogit + Tensor<Scalar>.rowSum(p, count: k)
                        for j in 0..<k { p[j] /= total }
                    }
                }
            }
        }
        let biasShape = bias?.shape
        return Variable.record(probabilities, inputs: [self] + (bias.map { [$0] } ?? [])) { g in
            let d = probabilities.scalars.withUnsafeBufferPointer { pp in
                g.scalars.withUnsafeBufferPointer { pg in
                    visible.withUnsafeBufferPointer { pv in
                        let (ps, gs, mask) = (UncheckedSendable(pp), UncheckedSendable(pg), UncheckedSendable(pv))
                        return Tensor<Scalar>(shape: probabilities.shape, rows: b * n * t, rowLength: k) { row, out in
                            let batch = row / (n * t), query = row % t
                            let visibleRow = mask.value.baseAddress! + (batch * t + query) * k
                            let p = ps.value.baseAddress! + row * k, gr = gs.value.baseAddress! + row * k
                            let d = out + row * k
                            let dot = Tensor<Scalar>.rowDot(gr, p, count: k)
                            for j in 0..<k { d[j] = visibleRow[j] ? p[j] * (gr[j] - dot) : 0 }
                        }
                    }
                }
            }
            return [d] + (biasShape.map { [d.unbroadcasted(to: $0)] } ?? [])
        }
    }
}

/// GLaM's causal self-attention (praxis `DotProductAttention` as glam.py configures it): separate
/// Wq, Wk, Wv `[M, N·D]` and Wo `[N·D, M]`, no biases, no 1/√D scaling (it is in Wq's
/// initialisation), a per-layer relative-position bias `[N, buckets]` and a softmax with an extra
/// zero logit.
public struct SelfAttention<Weight> {
    /// Wq `[M, N·D]` (file name `attention.wq`).
    public var wq: Weight
    /// Wk `[M, N·D]`.
    public var wk: Weight
    /// Wv `[M, N·D]`.
    public var wv: Weight
    /// Wo `[N·D, M]`; head n owns rows `n·D ..< (n+1)·D`.
    public var wo: Weight
    /// The bias added to head n's logit of a (query, key) pair: `relativeBias[n, bucket(q − k)]` `[N, buckets]`.
    public var relativeBias: Weight

    /// Attention weights.
    public init(wq: Weight, wk: Weight, wv: Weight, wo: Weight, relativeBias: Weight) {
        (self.wq, self.wk, self.wv, self.wo, self.relativeBias) = (wq, wk, wv, wo, relativeBias)
    }
}

extension SelfAttention: Sendable where Weight: Sendable {}
extension SelfAttention: Equatable where Weight: Equatable {}

extension SelfAttention {
    /// Self-attention of `x` `[B, T, M]` (already normalised) → `[B, T, M]`:
    ///
    ///     q, k, v = x·Wq, x·Wk, x·Wv                   [B, T, N, D]   (decoding: k, v join the cache)
    ///     logits  = q·kᵀ + bias[n, bucket(t − s)]      [B, N, T, L]   per head n
    ///     p       = masked softmax with the extra zero logit
    ///     out     = (p·v, heads merged)·Wo             [B, T, M]
    ///
    /// q, k and v stay in the projections' layout: the per-head products read them through strides
    /// (`headMatmul`), so no head is transposed.
    /// Pair visibility `[B, T, L]` and buckets `[T·L]` come from `context`. With `cache` (decoding),
    /// the new keys and values are appended to it (Model/KeyValueCache.swift: each head's kᵀ and v in
    /// memory order) and the queries attend to all of them; cached keys and values are constants
    /// (decoding is inference only).
    func callAsFunction<Scalar>(
        _ x: Variable<Scalar>, layer i: Int, context: ForwardContext<Scalar>, cache: inout KeyValueCache<Scalar>?
    ) -> Variable<Scalar> where Weight == Variable<Scalar> {
        let c = context.configuration
        let (b, t, m, n, d) = (x.shape[0], x.shape[1], x.shape[2], c.numHeads, c.headDim)
        func heads(_ projection: Variable<Scalar>) -> Variable<Scalar> {
            matmul(x, projection).reshaped(to: [b, t, n, d])  // [B, T, N, D]
        }
        let q: Variable<Scalar>, k: Variable<Scalar>, v: Variable<Scalar>  // [B, T, N, D]
        if [x, wq, wk, wv].allSatisfy({ !$0.isRecorded }) {
            // Nothing recorded (inference): the three products as one parallel loop.
            let products = sharedInputProducts(x.value, [wq.value, wk.value, wv.value]).map {
                Variable(constant: $0.reshaped(to: [b, t, n, d]))
            }
            (q, k, v) = (products[0], products[1], products[2])  // [B, T, N, D]
        } else {
            (q, k, v) = (heads(wq), heads(wk), heads(wv))  // [B, T, N, D]
        }
        let merged: Variable<Scalar>  // [B, T, N·D]
        if context.isDecoding {
            // The new keys and values join the cache; the queries attend to all of it.
            if cache == nil { cache = KeyValueCache(batch: b, heads: n, depth: d) }
            cache!.append(keys: k.value, values: v.value)
            if let start = context.causalStart,
                let attended = cache!.attend(
                    q.value, relativeBias: relativeBias.value, firstQuery: start, bucketOfDistance: context.distanceBuckets,
                    extraZeroLogit: c.attentionExtraLogit)
            {
                merged = Variable(constant: attended)  // nobody listening: each head in one pass
            } else {
                let scores = Variable(constant: cache!.scores(q.value))  // [B, N, T, L]
                let probabilities = attentionProbabilities(scores, layer: i, context: context)
                merged = Variable(constant: cache!.weightedValues(probabilities.value))
            }
        } else {
            let scores = headMatmul(q, .tokenMajor, k, .tokenMajor, transposeB: true, output: .headMajor)  // [B, N, T, L]
            let probabilities = attentionProbabilities(scores, layer: i, context: context)
            merged = headMatmul(probabilities, .headMajor, v, .tokenMajor, output: .tokenMajor).reshaped(to: [b, t, n * d])
        }
        let out = matmul(merged, wo)  // [B, T, M]
        precondition(out.shape == [b, t, m])
        return out
    }

    /// softmax(scores + bias) `[B, N, T, L]` with the mask and the extra zero logit, in one pass:
    /// decoding's causal softmax when the mask is causality alone (no observer), else the general
    /// masked softmax with the bias gathered by bucket (and the logits traced).
    private func attentionProbabilities<Scalar>(
        _ scores: Variable<Scalar>, layer i: Int, context: ForwardContext<Scalar>
    ) -> Variable<Scalar> where Weight == Variable<Scalar> {
        let c = context.configuration
        let probabilities: Variable<Scalar>  // [B, N, T, L]
        if let start = context.causalStart {
            // Decoding (constants, nobody listening): the mask is causality alone.
            probabilities = Variable(
                constant: Tensor.causalSoftmax(
                    scores.value, relativeBias: relativeBias.value, firstQuery: start, bucketOfDistance: context.distanceBuckets,
                    extraZeroLogit: c.attentionExtraLogit))
        } else {
            let (t, l) = (scores.shape[2], scores.shape[3])
            let bias = relativeBias.gatheringColumns(context.buckets, shape: [t, l])  // [N, T, L]
            probabilities = scores.maskedSoftmax(adding: bias, visible: context.visible, extraZeroLogit: c.attentionExtraLogit)
            context.trace("layers.\(i).attention.logits", scores.value + bias.value)  // computed only when traced
        }
        context.trace("layers.\(i).attention.probabilities", probabilities)
        return probabilities
    }
}
