// Matrix products of tensors, batched over leading axes: the einsums of the model ('btm,mh->bth',
// 'egcm,emh->egch', 'bnqd,bnkd->bnqk', …) all become one call of this.
//
// Float runs on the packed GEMM (Kernels/GEMM.swift); Double (used by gradient checks) runs the
// plain loop below, accumulating in Double.

/// The matrix product of the last two axes of `a` and `b`, batched over the leading axes:
/// `out[..., i, j] = Σ_p op(a)[..., i, p] · op(b)[..., p, j]` where `op` transposes the last two
/// axes when asked.
///
/// Shapes: `op(a)` is `[..., m, k]`, `op(b)` is `[..., k, n]`, result `[..., m, n]`. The leading
/// (batch) axes must be equal, or one operand may be a plain matrix (rank 2) shared by every item
/// of the other (`[B, T, M] · [M, H]`).
@_specialize(where Scalar == Float)
public func matmul<Scalar>(
    _ a: Tensor<Scalar>, _ b: Tensor<Scalar>, transposeA: Bool = false, transposeB: Bool = false
) -> Tensor<Scalar> {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
    let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
    precondition(
        aBatch == bBatch || aBatch.isEmpty || bBatch.isEmpty,
        "matmul: batch axes \(aBatch) and \(bBatch) differ")
    let batchShape = aBatch.isEmpty ? bBatch : aBatch
    let batch = batchShape.reduce(1, *)
    let (aRows, aColumns) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (bRows, bColumns) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = transposeA ? (aColumns, aRows) : (aRows, aColumns)
    let (k2, n) = transposeB ? (bColumns, bRows) : (bRows, bColumns)
    precondition(k == k2, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
    if k == 0 || batch * m * n == 0 { return Tensor(zeros: batchShape + [m, n]) }
    let aStride = aBatch.isEmpty ? 0 : aRows * aColumns
    let bStride = bBatch.isEmpty ? 0 : bRows * bColumns
    // Every element of the output is written below, so it is not zero-filled first.
    let out = a.scalars.withUnsafeBufferPointer { pa in
        b.scalars.withUnsafeBufferPointer { pb in
            [Scalar].filled(count: batch * m * n) { pc in
                let (baseA, baseB, baseC) = (pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
                let opA = MatrixOperand.strides(rows: aRows, columns: aColumns, transposed: transposeA)
                let opB = MatrixOperand.strides(rows: bRows, columns: bColumns, transposed: transposeB)
                if Scalar.self == Float.self {
                    let fa = UnsafeRawPointer(baseA).assumingMemoryBound(to: Float.self)
                    let fb = UnsafeRawPointer(baseB).assumingMemoryBound(to: Float.self)
                    let fc = UnsafeMutableRawPointer(baseC).assumingMemoryBound(to: Float.self)
                    GEMM.multiply(
                        m: m, n: n, k: k, batch: batch,
                        a: MatrixOperand(base: fa, rowStride: opA.row, columnStride: opA.column, batchStride: aStride),
                        b: MatrixOperand(base: fb, rowStride: opB.row, columnStride: opB.column, batchStride: bStride),
                        c: fc, ldc: n, cBatchStride: m * n)
                } else {
                    for item in 0..<batch {
                        plainProduct(
                            m: m, n: n, k: k, a: baseA + item * aStride, aStrides: opA, b: baseB + item * bStride, bStrides: opB,
                            c: baseC + item * m * n, ldc: n)
                    }
                }
            }
        }
    }
    return Tensor(shape: batchShape + [m, n], scalars: out)
}

/// `[x · w for w in weights]` for `x` `[..., M]` and weights `[M, Nᵢ]`: the products of a decoding
/// step that read the same few rows (q, k and v; a dense layer's two input projections), run as
/// one parallel loop whose tasks are 128-column blocks of every weight, instead of one loop (and
/// one hand-off to the workers and back) per product. Each element's sum is the GEMM's, so the
/// results equal `matmul(x, w)` bit for bit. More than `GEMM.unpackedRows` rows, or other scalars
/// than Float: one `matmul` each.
@_specialize(where Scalar == Float)
package func sharedInputProducts<Scalar>(_ x: Tensor<Scalar>, _ weights: [Tensor<Scalar>]) -> [Tensor<Scalar>] {
    let m = x.shape.last ?? 0
    precondition(
        weights.allSatisfy { $0.rank == 2 && $0.shape[0] == m }, "sharedInputProducts: weights \(weights.map(\.shape)) for \(x.shape)")
    let rows = m == 0 ? 0 : x.scalarCount / m
    guard Scalar.self == Float.self, x.rank >= 2, rows >= 1, rows <= GEMM.unpackedRows, m > 0 else {
        return weights.map { matmul(x, $0) }
    }
    let block = GEMM.unpackedColumnBlock
    let tasks = weights.indices.flatMap { i in stride(from: 0, to: weights[i].shape[1], by: block).map { (weight: i, column: $0) } }
    let widths = weights.map { $0.shape[1] }
    let offsets = widths.indices.map { i in rows * widths[..<i].reduce(0, +) }  // of each product in `out`
    let work = rows * m * widths.reduce(0, +)
    let float = x as! Tensor<Float>
    let out = float.scalars.withUnsafeBufferPointer { px in
        let a = MatrixOperand(rowMajor: px.baseAddress!, rows: rows, columns: m)
        return withFloatBases(weights.map { $0 as! Tensor<Float> }[...], []) { sources in
            [Float].filled(count: rows * widths.reduce(0, +)) { buffer in  // every element written below
                let target = SendableMutablePointer(buffer.baseAddress!)
                Parallelism.forEachTask(tasks.count, threads: work < GEMM.smallestShared ? 1 : Parallelism.threadCount) { task in
                    let (i, j0) = tasks[task]
                    let n = widths[i]
                    GEMM.multiply(
                        m: rows, n: min(block, n - j0), k: m, a: a,
                        b: MatrixOperand(base: sources[i].base + j0, rowStride: n, columnStride: 1),
                        c: target.base + offsets[i] + j0, ldc: n, threads: 1)
                }
            }
        }
    }
    return weights.indices.map { i in
        Tensor(shape: Array(x.shape.dropLast()) + [widths[i]], scalars: Array(out[offsets[i]..<(offsets[i] + rows * widths[i])]))
            as! Tensor<Scalar>
    }
}

/// Calls `body` with the base of every tensor's scalars, each valid for the call.
private func withFloatBases<Result>(
    _ tensors: ArraySlice<Tensor<Float>>, _ bases: [SendablePointer<Float>], _ body: ([SendablePointer<Float>]) -> Result
) -> Result {
    guard let first = tensors.first else { return body(bases) }
    return first.scalars.withUnsafeBufferPointer { withFloatBases(tensors.dropFirst(), bases + [SendablePointer($0.baseAddress!)], body) }
}

/// `C = op(A)·op(B)` by the plain triple loop, accumulating in `Scalar` (the Double path of
/// `matmul` and `headMatmul`): each operand read through its (row, column) strides, C written with
/// row stride `ldc`.
func plainProduct<Scalar: TensorScalar>(
    m: Int, n: Int, k: Int, a: UnsafePointer<Scalar>, aStrides: (row: Int, column: Int), b: UnsafePointer<Scalar>,
    bStrides: (row: Int, column: Int), c: UnsafeMutablePointer<Scalar>, ldc: Int
) {
    for i in 0..<m {
        for j in 0..<n {
            var sum: Scalar = 0
            for p in 0..<k { sum += a[i * aStrides.row + p * aStrides.column] * b[p * bStrides.row + j * bStrides.column] }
            c[i * ldc + j] = sum
        }
    }
}
