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
