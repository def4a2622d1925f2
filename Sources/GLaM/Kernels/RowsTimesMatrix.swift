// Products of fewer rows than the register tile (decoding: one token per sequence), read straight
// from B where it is, never packed. Packing would copy every element of B to use it fewer than MR
// times; here each element of B is read once per row of A.
//
//   B's rows contiguous (x · W):      C[i, j..j+128] += A[i, p] · B[p, j..j+128]   eight vectors
//                                     in registers, B read row by row (128 floats a step)
//   B's columns contiguous (x · Wᵀ):  sixteen columns of op(B) are sixteen rows of W; a 16 × 16
//                                     block of them is transposed in registers and applied to
//                                     every row of A before the next block is read
//
// Each element of C gets the micro-kernels' chain of multiply-adds: per depth block of
// `depthBlock`, a sum from 0 over the block's p in order, then stored (the first block, when not
// accumulating) or added to C. So the bits are those of the packed path
// (Tests/GLaMTests/GEMMTests.swift), whatever the column blocks and the thread count.

extension GEMM {
    /// Columns of C one pass of `rowsTimesMatrix` keeps in registers (eight vectors of 16), and
    /// the unit of columns workers share.
    static let unpackedColumnBlock = 128

    /// Rows `0..<m` and `columns` of C for batch item `item`, read straight from a B whose rows are
    /// contiguous (`b.columnStride == 1`): 128 columns at a time, eight chains of sixteen in
    /// registers (so that the multiply-adds' latency is hidden), each step of p reading 512
    /// contiguous bytes of B's row p.
    static func rowsTimesMatrix(
        _ a: MatrixOperand, _ b: MatrixOperand, item: Int, rows m: Int, columns: Range<Int>, k: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, accumulate: Bool
    ) {
        let aItem = a.base + item * a.batchStride, bItem = b.base + item * b.batchStride
        var j = columns.lowerBound
        while j < columns.upperBound {
            let width = min(unpackedColumnBlock, columns.upperBound - j)
            for i in 0..<m {
                let aRow = aItem + i * a.rowStride, cRow = c + i * ldc + j
                var p0 = 0
                while p0 < k {
                    let p1 = min(k, p0 + depthBlock)
                    let add = accumulate || p0 > 0
                    if width == unpackedColumnBlock {
                        var (s0, s1, s2, s3) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                        var (s4, s5, s6, s7) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                        for p in p0..<p1 {
                            let x = aRow[p * a.columnStride], row = UnsafeRawPointer(bItem + p * b.rowStride + j)
                            multiplyAdd(&s0, x, row.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self))
                            multiplyAdd(&s1, x, row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
                            multiplyAdd(&s2, x, row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
                            multiplyAdd(&s3, x, row.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
                            multiplyAdd(&s4, x, row.loadUnaligned(fromByteOffset: 256, as: SIMD16<Float>.self))
                            multiplyAdd(&s5, x, row.loadUnaligned(fromByteOffset: 320, as: SIMD16<Float>.self))
                            multiplyAdd(&s6, x, row.loadUnaligned(fromByteOffset: 384, as: SIMD16<Float>.self))
                            multiplyAdd(&s7, x, row.loadUnaligned(fromByteOffset: 448, as: SIMD16<Float>.self))
                        }
                        finish(s0, into: cRow, lanes: 16, add: add)
                        finish(s1, into: cRow + 16, lanes: 16, add: add)
                        finish(s2, into: cRow + 32, lanes: 16, add: add)
                        finish(s3, into: cRow + 48, lanes: 16, add: add)
                        finish(s4, into: cRow + 64, lanes: 16, add: add)
                        finish(s5, into: cRow + 80, lanes: 16, add: add)
                        finish(s6, into: cRow + 96, lanes: 16, add: add)
                        finish(s7, into: cRow + 112, lanes: 16, add: add)
                    } else {
                        // The last columns, sixteen (or fewer) at a time.
                        var v = 0
                        while v < width {
                            let lanes = min(16, width - v)
                            var sum = SIMD16<Float>()
                            for p in p0..<p1 {
                                let source = bItem + p * b.rowStride + j + v
                                multiplyAdd(
                                    &sum, aRow[p * a.columnStride],
                                    lanes == 16
                                        ? UnsafeRawPointer(source).loadUnaligned(as: SIMD16<Float>.self)
                                        : FastMath.partialVector(source, count: lanes))
                            }
                            finish(sum, into: cRow + v, lanes: lanes, add: add)
                            v += lanes
                        }
                    }
                    p0 = p1
                }
            }
            j += width
        }
    }

    /// Rows `0..<m` (at most 3) and `columns` of C for batch item `item`, from a B whose columns are
    /// contiguous (`b.rowStride == 1`: op(B) = Wᵀ for a row-major W, as in logits = x · Embᵀ).
    ///
    /// Column j of op(B) is row j of W: sixteen of them, sixteen depth steps at a time, are loaded
    /// and transposed in registers (`loadTransposed16x16`), then every row of A takes its sixteen
    /// multiply-adds from them.
    static func rowsTimesTransposedMatrix(
        _ a: MatrixOperand, _ b: MatrixOperand, item: Int, rows m: Int, columns: Range<Int>, k: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, accumulate: Bool
    ) {
        precondition(m <= 3, "rowsTimesTransposedMatrix: at most 3 rows, got \(m)")
        let aItem = a.base + item * a.batchStride, bItem = b.base + item * b.batchStride
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 16) { buffer in
            let block = buffer.baseAddress!
            var j = columns.lowerBound
            while j < columns.upperBound {
                let lanes = min(16, columns.upperBound - j)
                let columnsStart = bItem + j * b.columnStride  // op(B)[0, j]
                var p0 = 0
                while p0 < k {
                    let p1 = min(k, p0 + depthBlock)
                    var sums = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                    @inline(__always) func step(_ p: Int, _ column: SIMD16<Float>) {
                        multiplyAdd(&sums.0, aItem[p * a.columnStride], column)
                        if m > 1 { multiplyAdd(&sums.1, aItem[a.rowStride + p * a.columnStride], column) }
                        if m > 2 { multiplyAdd(&sums.2, aItem[2 * a.rowStride + p * a.columnStride], column) }
                    }
                    var p = p0
                    while p + 16 <= p1 {
                        loadTransposed16x16(into: block, from: columnsStart + p, rowStride: b.columnStride, rows: lanes)
                        for q in 0..<16 { step(p + q, block[bitReversed4(q)]) }
                        p += 16
                    }
                    while p < p1 {
                        var column = SIMD16<Float>()
                        for lane in 0..<lanes { column[lane] = columnsStart[lane * b.columnStride + p] }
                        step(p, column)
                        p += 1
                    }
                    let add = accumulate || p0 > 0
                    finish(sums.0, into: c + j, lanes: lanes, add: add)
                    if m > 1 { finish(sums.1, into: c + ldc + j, lanes: lanes, add: add) }
                    if m > 2 { finish(sums.2, into: c + 2 * ldc + j, lanes: lanes, add: add) }
                    p0 = p1
                }
                j += lanes
            }
        }
    }

    /// Writes the first `lanes` lanes of a depth block's `sum` to `out`: stored, or added to what
    /// is there when `add` (the micro-kernels' `sum + C`).
    @inline(__always)
    private static func finish(_ sum: SIMD16<Float>, into out: UnsafeMutablePointer<Float>, lanes: Int, add: Bool) {
        if lanes == 16 {
            let raw = UnsafeMutableRawPointer(out)
            raw.storeBytes(of: add ? sum + raw.loadUnaligned(as: SIMD16<Float>.self) : sum, as: SIMD16<Float>.self)
        } else {
            for lane in 0..<lanes { out[lane] = add ? sum[lane] + out[lane] : sum[lane] }
        }
    }
}
