// Differentiable reductions, softmax, normalisation, layout changes and matrix products on
// `Variable`, each with its backward pass written out.

extension Variable {
    /// The sum over `axes` (kept with size 1); the gradient is broadcast back.
    @_specialize(where Scalar == Float)
    public func sum(alongAxes axes: [Int]) -> Variable {
        let shape = self.shape
        return Variable.record(value.sum(alongAxes: axes), inputs: [self]) { g in [g.broadcasted(to: shape)] }
    }

    /// The sum of all elements (rank 0).
    @_specialize(where Scalar == Float)
    public func sum() -> Variable {
        let shape = self.shape
        return Variable.record(value.sum(), inputs: [self]) { g in [Tensor(repeating: g.scalar, shape: shape)] }
    }

    /// The mean over `axes` (kept with size 1).
    @_specialize(where Scalar == Float)
    public func mean(alongAxes axes: [Int]) -> Variable {
        let count = Set(axes.map(value.normalizedAxis)).reduce(1) { $0 * shape[$1] }
        return sum(alongAxes: axes) * (1 / Scalar(count))
    }

    /// The mean of all elements (rank 0).
    @_specialize(where Scalar == Float)
    public func mean() -> Variable { sum() * (1 / Scalar(Swift.max(value.scalarCount, 1))) }

    /// Softmax along the last axis; backward `dx = y ⊙ (g − Σⱼ gⱼyⱼ)`.
    @_specialize(where Scalar == Float)
    public func softmax() -> Variable {
        let y = value.softmax()
        return Variable.record(y, inputs: [self]) { g in
            let dot = (g * y).sum(alongAxis: -1)
            return [y * (g - dot)]
        }
    }

    /// Log-softmax along the last axis; backward `dx = g − softmax(x) · Σⱼ gⱼ`.
    @_specialize(where Scalar == Float)
    public func logSoftmax() -> Variable {
        let y = value.logSoftmax()
        return Variable.record(y, inputs: [self]) { g in
            [g - y.exp() * g.sum(alongAxis: -1)]
        }
    }

    /// `log Σⱼ exp(xⱼ)` along the last axis (kept with size 1); backward `dx = g · softmax(x)`.
    @_specialize(where Scalar == Float)
    public func logSumExp() -> Variable {
        let x = value
        return Variable.record(x.logSumExp(), inputs: [self]) { g in [x.softmax() * g] }
    }

    /// The same values with a new shape.
    @_specialize(where Scalar == Float)
    public func reshaped(to newShape: [Int]) -> Variable {
        let shape = self.shape
        return Variable.record(value.reshaped(to: newShape), inputs: [self]) { g in [g.reshaped(to: shape)] }
    }

    /// Axes permuted (`result axis i = input axis permutation[i]`); backward applies the inverse.
    @_specialize(where Scalar == Float)
    public func transposed(permutation: [Int]) -> Variable {
        var inverse = [Int](repeating: 0, count: permutation.count)
        for (i, p) in permutation.enumerated() { inverse[p] = i }
        return Variable.record(value.transposed(permutation: permutation), inputs: [self]) { g in
            [g.transposed(permutation: inverse)]
        }
    }

    /// The last two axes swapped.
    @_specialize(where Scalar == Float)
    public func transposed() -> Variable {
        var permutation = Array(0..<value.rank)
        permutation.swapAt(value.rank - 1, value.rank - 2)
        return transposed(permutation: permutation)
    }

    /// Rows of this `[V, M]` table picked by `indices` (embedding lookup); backward scatter-adds.
    @_specialize(where Scalar == Float)
    public func gatheringRows(_ indices: [Int]) -> Variable {
        let rowCount = shape[0]
        return Variable.record(value.gatheringRows(indices), inputs: [self]) { g in
            [g.scatterAddingRows(indices, rowCount: rowCount)]
        }
    }
}

/// RMSNorm along the last axis: `y = x · r · scale` with `r = rsqrt(mean(x²) + ε)` (praxis
/// `RmsNorm`, `direct_scale=True`).
///
/// Backward, with `gs = g ⊙ scale` and rows of length M:
/// `dx = r·gs − x·r³·(Σⱼ gsⱼ xⱼ)/M`, `dscale = Σ_rows g ⊙ x ⊙ r`.
@_specialize(where Scalar == Float)
public func rmsNormalized<Scalar>(
    _ x: Variable<Scalar>, scale: Variable<Scalar>, epsilon: Scalar
) -> Variable<Scalar> {
    let (y, r) = rmsNormalized(x.value, scale: scale.value, epsilon: epsilon)
    let xv = x.value, sv = scale.value
    let (needX, needScale) = (x.isRecorded, scale.isRecorded)  // never capture Variables: they hold the tape
    return Variable.record(y, inputs: [x, scale]) { g in
        rmsNormBackward(g, x: xv, scale: sv, reciprocalRMS: r, needX: needX, needScale: needScale)
    }
}

/// RMSNorm's backward in one pass over each row (dx) and one over each column (dscale): the same
/// operations in the same order as `referenceRMSNormBackward`, so the same bits (tested).
@_specialize(where Scalar == Float)
func rmsNormBackward<Scalar>(
    _ g: Tensor<Scalar>, x: Tensor<Scalar>, scale: Tensor<Scalar>, reciprocalRMS r: Tensor<Scalar>, needX: Bool, needScale: Bool
) -> [Tensor<Scalar>?] {
    let m = x.shape.last ?? 1
    let rows = m == 0 ? 0 : x.scalarCount / m
    guard rows > 0 else { return referenceRMSNormBackward(g, x: x, scale: scale, reciprocalRMS: r, needX: needX, needScale: needScale) }
    return g.scalars.withUnsafeBufferPointer { pg in
        x.scalars.withUnsafeBufferPointer { px in
            scale.scalars.withUnsafeBufferPointer { ps in
                r.scalars.withUnsafeBufferPointer { pr in
                    let (gs, xs, ss, rs) = (UncheckedSendable(pg), UncheckedSendable(px), UncheckedSendable(ps), UncheckedSendable(pr))
                    // dscale_j = Σ_rows g·(x·r), rows in order, one task per chunk of columns: sixteen
                    // or more columns, about `elementsPerTask` products.
                    let columnsPerTask = max(16, (Parallelism.elementsPerTask / rows + 15) / 16 * 16)
                    let dScale: Tensor<Scalar>? =
                        needScale
                        ? Tensor<Scalar>(shape: scale.shape, generating: m, grain: columnsPerTask) { columns, out in
                            for j in columns { out[j] = 0 }
                            for row in 0..<rows {
                                let (gRow, xRow, reciprocal) = (
                                    gs.value.baseAddress! + row * m, xs.value.baseAddress! + row * m, rs.value[row]
                                )
                                for j in columns { out[j] += gRow[j] * (xRow[j] * reciprocal) }
                            }
                        } : nil
                    guard needX else { return [nil, dScale] }
                    // dx = (g·s)·r − x·(r³·Σ_j (g·s)_j x_j)·(1/M), row by row.
                    let inverseM = 1 / Scalar(m)
                    let dx = Tensor<Scalar>(shape: x.shape, rows: rows, rowLength: m) { row, out in
                        let (gRow, xRow, target) = (gs.value.baseAddress! + row * m, xs.value.baseAddress! + row * m, out + row * m)
                        let (scaleRow, reciprocal) = (ss.value.baseAddress!, rs.value[row])
                        var dot: Scalar = 0
                        for j in 0..<m { dot += (gRow[j] * scaleRow[j]) * xRow[j] }
                        let factor = reciprocal * reciprocal * reciprocal * dot
                        for j in 0..<m { target[j] = (gRow[j] * scaleRow[j]) * reciprocal - (xRow[j] * factor) * inverseM }
                    }
                    return [dx, dScale]
                }
            }
        }
    }
}

/// RMSNorm's backward from tensor operations, the definition `rmsNormBackward` is tested against:
/// with `gs = g ⊙ scale`, `dx = r·gs − x·r³·(Σⱼ gsⱼ xⱼ)/M` and `dscale = Σ_rows g ⊙ x ⊙ r`.
func referenceRMSNormBackward<Scalar>(
    _ g: Tensor<Scalar>, x xv: Tensor<Scalar>, scale sv: Tensor<Scalar>, reciprocalRMS r: Tensor<Scalar>, needX: Bool, needScale: Bool
) -> [Tensor<Scalar>?] {
    let columns = xv.shape.last ?? 1
    let m = Scalar(columns)
    let normalized = xv * r  // [..., M]
    // Summed over all rows in order (as [rows, M] along axis 0).
    let dScale =
        needScale
        ? (g * normalized).reshaped(to: [xv.scalarCount / Swift.max(columns, 1), columns]).sum(alongAxis: 0).reshaped(to: sv.shape) : nil
    guard needX else { return [nil, dScale] }
    let gs = g * sv
    let dot = (gs * xv).sum(alongAxis: -1)  // [..., 1]
    let r3 = r * r * r
    let dx = gs * r - xv * (r3 * dot) * (1 / m)
    return [dx, dScale]
}

/// The batched matrix product of `matmul(_:_:transposeA:transposeB:)`, differentiable.
///
/// With `C = op(A)·op(B)` and upstream `G`: `d op(A) = G·op(B)ᵀ`, `d op(B) = op(A)ᵀ·G`, each
/// transposed back when the operand was read transposed, and summed over the batch when the
/// operand was a plain matrix shared by every batch item.
@_specialize(where Scalar == Float)
public func matmul<Scalar>(
    _ a: Variable<Scalar>, _ b: Variable<Scalar>, transposeA: Bool = false, transposeB: Bool = false
) -> Variable<Scalar> {
    let av = a.value, bv = b.value
    let c = matmul(av, bv, transposeA: transposeA, transposeB: transposeB)
    let (needA, needB) = (a.isRecorded, b.isRecorded)  // never capture Variables: they hold the tape
    return Variable.record(c, inputs: [a, b]) { g in
        var da: Tensor<Scalar>? = nil
        var db: Tensor<Scalar>? = nil
        if needA {
            let full =
                transposeA
                ? matmul(bv, g, transposeA: transposeB, transposeB: true)
                : matmul(g, bv, transposeB: !transposeB)
            da = reduceBatch(full, to: av.shape)
        }
        if needB {
            if bv.rank == 2 && av.rank > 2 && !transposeA {
                // Shared weight: one product over all batch rows, [B·m, k]ᵀ·[B·m, n].
                let k = av.shape[av.rank - 1], n = g.shape[g.rank - 1]
                let af = av.reshaped(to: [-1, k]), gf = g.reshaped(to: [-1, n])
                db = transposeB ? matmul(gf, af, transposeA: true) : matmul(af, gf, transposeA: true)
            } else {
                let full =
                    transposeB
                    ? matmul(g, av, transposeA: true, transposeB: transposeA)
                    : matmul(av, g, transposeA: !transposeA)
                db = reduceBatch(full, to: bv.shape)
            }
        }
        return [da, db]
    }
}

/// Sums a batched gradient over its batch axes when the operand was a shared rank-2 matrix.
private func reduceBatch<Scalar>(_ gradient: Tensor<Scalar>, to shape: [Int]) -> Tensor<Scalar> {
    if gradient.shape == shape { return gradient }
    let batchAxes = Array(0..<(gradient.rank - 2))
    return gradient.sum(alongAxes: batchAxes).reshaped(to: shape)
}

extension Variable {
    /// Picks one element of each row of the last axis: `out[..., 0] = x[..., indices[row]]`
    /// (`[..., E] → [..., 1]`); backward puts the gradient back at the picked positions.
    @_specialize(where Scalar == Float)
    package func gatheringAlongLastAxis(_ indices: [Int]) -> Variable {
        let n = shape.last ?? 1
        let rows = n == 0 ? 0 : value.scalarCount / n
        precondition(indices.count == rows, "gatheringAlongLastAxis: \(indices.count) indices for \(rows) rows")
        let x = value
        let picked = (0..<rows).map { row -> Scalar in
            precondition(indices[row] >= 0 && indices[row] < n, "gatheringAlongLastAxis: index \(indices[row]) out of 0..<\(n)")
            return x.scalars[row * n + indices[row]]
        }
        let inputShape = shape
        return Variable.record(Tensor(shape: Array(shape.dropLast()) + [1], scalars: picked), inputs: [self]) { g in
            var out = [Scalar](repeating: 0, count: rows * n)
            for row in 0..<rows { out[row * n + indices[row]] += g.scalars[row] }
            return [Tensor(shape: inputShape, scalars: out)]
        }
    }

    /// Rows of this `[R, M]` matrix picked by `sources`, where -1 gives a row of zeros:
    /// `out[i] = sources[i] ≥ 0 ? x[sources[i]] : 0` (`[sources.count, M]`). The index-based MoE
    /// dispatch and combine; backward scatter-adds (in increasing i).
    @_specialize(where Scalar == Float)
    package func gatheringRowsOrZero(_ sources: [Int]) -> Variable {
        precondition(value.rank == 2, "gatheringRowsOrZero: expects [R, M], got \(shape)")
        let (r, m) = (shape[0], shape[1])
        precondition(sources.allSatisfy { $0 < r }, "gatheringRowsOrZero: a row index is out of 0..<\(r)")
        let out = value.scalars.withUnsafeBufferPointer { x in
            [Scalar](unsafeUninitializedCapacity: sources.count * m) { y, initialized in
                for (i, source) in sources.enumerated() {
                    let row = y.baseAddress! + i * m
                    if source >= 0 {
                        row.initialize(from: x.baseAddress! + source * m, count: m)
                    } else {
                        row.initialize(repeating: 0, count: m)
                    }
                }
                initialized = sources.count * m
            }
        }
        return Variable.record(Tensor(shape: [sources.count, m], scalars: out), inputs: [self]) { g in
            var dx = [Scalar](repeating: 0, count: r * m)
            g.scalars.withUnsafeBufferPointer { gy in
                dx.withUnsafeMutableBufferPointer { d in
                    for (i, source) in sources.enumerated() where source >= 0 {
                        let target = d.baseAddress! + source * m, row = gy.baseAddress! + i * m
                        for j in 0..<m { target[j] += row[j] }
                    }
                }
            }
            return [Tensor(shape: [r, m], scalars: dx)]
        }
    }
}
