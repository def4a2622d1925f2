// Attention's per-head products read straight from the projections' layout. A projection x·Wq is
// `[B, T, N·D]`, which is `[B, T, N, D]`: "token-major", head h of row t at offset (t·N + h)·D.
// The scores and probabilities are `[B, N, T, L]`: "head-major". Instead of transposing q, k, v
// to head-major and the result back (praxis' einsums 'BTNH,BSNH->BNTS' and 'BNTS,BSNH->BTNH' leave
// the layout to XLA), the GEMM reads each head's matrix through strides: rows of a token-major
// head are N·D apart. The sums are the same as `matmul` on transposed copies, bit for bit
// (Tests/GLaMTests/HeadMatmulTests.swift).

/// How a `[B, heads, rows, columns]` family of matrices is laid out in memory.
package enum HeadLayout: Sendable {
    /// `[B, N, R, C]`: each head's matrix is contiguous (attention scores and probabilities).
    case headMajor
    /// `[B, R, N, C]`: heads interleaved within each row (a projection `[B, T, N·D]`).
    case tokenMajor

    /// (B, N, R, C) of a tensor in this layout.
    func dimensions(_ shape: [Int]) -> (batch: Int, heads: Int, rows: Int, columns: Int) {
        precondition(shape.count == 4, "headMatmul: operands are rank 4, got \(shape)")
        switch self {
        case .headMajor: return (shape[0], shape[1], shape[2], shape[3])
        case .tokenMajor: return (shape[0], shape[2], shape[1], shape[3])
        }
    }

    /// The shape of a tensor in this layout.
    func shape(batch: Int, heads: Int, rows: Int, columns: Int) -> [Int] {
        switch self {
        case .headMajor: return [batch, heads, rows, columns]
        case .tokenMajor: return [batch, rows, heads, columns]
        }
    }

    /// Element offsets of batch item b's head h, of its rows, and between heads.
    func strides(batch: Int, heads: Int, rows: Int, columns: Int) -> (item: Int, row: Int, head: Int) {
        switch self {
        case .headMajor: return (heads * rows * columns, columns, rows * columns)
        case .tokenMajor: return (heads * rows * columns, heads * columns, columns)
        }
    }
}

/// Per batch item b and head h, the matrix product `C[b, h] = op(A[b, h]) · op(B[b, h])`, each
/// operand and the result in its own ``HeadLayout``; `op` transposes a head's matrix when asked.
///
/// Shapes: A's heads are `[m, k]` after `op`, B's `[k, n]`, C's `[m, n]`; all three have the
/// same B and N. Float runs on the packed GEMM; other scalars on a plain loop.
@_specialize(where Scalar == Float)
package func headMatmul<Scalar>(
    _ a: Tensor<Scalar>, _ aLayout: HeadLayout, _ b: Tensor<Scalar>, _ bLayout: HeadLayout,
    transposeA: Bool = false, transposeB: Bool = false, output: HeadLayout
) -> Tensor<Scalar> {
    let da = aLayout.dimensions(a.shape), db = bLayout.dimensions(b.shape)
    precondition(da.batch == db.batch && da.heads == db.heads, "headMatmul: batch and heads differ: \(a.shape) and \(b.shape)")
    let (m, k) = transposeA ? (da.columns, da.rows) : (da.rows, da.columns)
    let (k2, n) = transposeB ? (db.columns, db.rows) : (db.rows, db.columns)
    precondition(k == k2, "headMatmul: inner dimensions differ: \(a.shape) and \(b.shape)")
    let (batch, heads) = (da.batch, da.heads)
    let shape = output.shape(batch: batch, heads: heads, rows: m, columns: n)
    if k == 0 || batch * heads * m * n == 0 { return Tensor(zeros: shape) }
    let sa = aLayout.strides(batch: batch, heads: heads, rows: da.rows, columns: da.columns)
    let sb = bLayout.strides(batch: batch, heads: heads, rows: db.rows, columns: db.columns)
    let sc = output.strides(batch: batch, heads: heads, rows: m, columns: n)
    // (row, column) strides of op(A) and op(B) within one head.
    let opA = transposeA ? (row: 1, column: sa.row) : (row: sa.row, column: 1)
    let opB = transposeB ? (row: 1, column: sb.row) : (row: sb.row, column: 1)
    let out = a.scalars.withUnsafeBufferPointer { pa in
        b.scalars.withUnsafeBufferPointer { pb in
            [Scalar].filled(count: batch * heads * m * n) { pc in  // every element written below
                let (baseA, baseB, baseC) = (pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
                if Scalar.self == Float.self {
                    let fa = UnsafeRawPointer(baseA).assumingMemoryBound(to: Float.self)
                    let fb = UnsafeRawPointer(baseB).assumingMemoryBound(to: Float.self)
                    let fc = UnsafeMutableRawPointer(baseC).assumingMemoryBound(to: Float.self)
                    if batch * heads * m * n * k < 65_536 {
                        // Too little work to pay for waking workers (a decoding step's attention
                        // over a short cache): every head on this thread, the same products.
                        for item in 0..<batch {
                            for h in 0..<heads {
                                GEMM.multiply(
                                    m: m, n: n, k: k,
                                    a: MatrixOperand(base: fa + item * sa.item + h * sa.head, rowStride: opA.row, columnStride: opA.column),
                                    b: MatrixOperand(base: fb + item * sb.item + h * sb.head, rowStride: opB.row, columnStride: opB.column),
                                    c: fc + item * sc.item + h * sc.head, ldc: sc.row, threads: 1)
                            }
                        }
                    } else if batch * heads >= 2 * Parallelism.threadCount {
                        // Enough heads to share out: one task per (item, head), each product on
                        // one thread. (Else each item's heads are one batched product, shared out.)
                        let (pa, pb, pc) = (SendablePointer(fa), SendablePointer(fb), SendableMutablePointer(fc))
                        Parallelism.forEachTask(batch * heads) { task in
                            let (item, h) = task.quotientAndRemainder(dividingBy: heads)
                            GEMM.multiply(
                                m: m, n: n, k: k,
                                a: MatrixOperand(
                                    base: pa.base + item * sa.item + h * sa.head, rowStride: opA.row, columnStride: opA.column),
                                b: MatrixOperand(
                                    base: pb.base + item * sb.item + h * sb.head, rowStride: opB.row, columnStride: opB.column),
                                c: pc.base + item * sc.item + h * sc.head, ldc: sc.row, threads: 1)
                        }
                    } else {
                        for item in 0..<batch {  // one batched product over the heads per item
                            GEMM.multiply(
                                m: m, n: n, k: k, batch: heads,
                                a: MatrixOperand(
                                    base: fa + item * sa.item, rowStride: opA.row, columnStride: opA.column, batchStride: sa.head),
                                b: MatrixOperand(
                                    base: fb + item * sb.item, rowStride: opB.row, columnStride: opB.column, batchStride: sb.head),
                                c: fc + item * sc.item, ldc: sc.row, cBatchStride: sc.head)
                        }
                    }
                } else {
                    for item in 0..<batch {
                        for h in 0..<heads {
                            plainProduct(
                                m: m, n: n, k: k, a: baseA + item * sa.item + h * sa.head, aStrides: opA,
                                b: baseB + item * sb.item + h * sb.head, bStrides: opB, c: baseC + item * sc.item + h * sc.head, ldc: sc.row
                            )
                        }
                    }
                }
            }
        }
    }
    return Tensor(shape: shape, scalars: out)
}
