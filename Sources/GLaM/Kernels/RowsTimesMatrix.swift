// Products of few rows (decoding: one token per sequence, up to 8 sequences), read straight from B
// where it is, never packed. Packing would copy every element of B to use it a few times; here
// each element of B is read once.
//
//   B's rows contiguous (x · W):      one row: C[0, j..j+128] += A[0, p] · B[p, j..j+128], eight
//                                     chains in registers; 2 to 8 rows: sixteen rows of B at a
//                                     time, each from its first column to its last, every vector
//                                     of them used by every row of A, the sums kept in L1
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
    /// The most rows of A `rowsTimesMatrix` takes (a decoding step of up to 8 sequences), where
    /// packing would write all of B out before using each element a few times.
    static let unpackedRows = 8

    /// Rows `0..<m` and `columns` of C for batch item `item`, read straight from a B whose rows are
    /// contiguous (`b.columnStride == 1`): 128 columns at a time, eight chains of sixteen in
    /// registers (so that the multiply-adds' latency is hidden), each step of p reading 512
    /// contiguous bytes of B's row p.
    static func rowsTimesMatrix(
        _ a: MatrixOperand, _ b: MatrixOperand, item: Int, rows m: Int, columns: Range<Int>, k: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, accumulate: Bool
    ) {
        if m > 1 {
            streamingRowsTimesMatrix(a, b, item: item, rows: m, columns: columns, k: k, c: c, ldc: ldc, accumulate: accumulate)
            return
        }
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
                    } else if width % 16 == 0 {
                        // Fewer than 128 columns, all in whole vectors (attention's q·kᵀ against a
                        // cache padded to 16 positions, its p·v of one head's 64 columns): one
                        // chain per vector, all in registers, so that their latencies overlap.
                        let vectors = width / 16
                        var (s0, s1, s2, s3) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                        var (s4, s5, s6) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                        for p in p0..<p1 {
                            let x = aRow[p * a.columnStride], row = UnsafeRawPointer(bItem + p * b.rowStride + j)
                            multiplyAdd(&s0, x, row.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self))
                            if vectors > 1 { multiplyAdd(&s1, x, row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)) }
                            if vectors > 2 { multiplyAdd(&s2, x, row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self)) }
                            if vectors > 3 { multiplyAdd(&s3, x, row.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)) }
                            if vectors > 4 { multiplyAdd(&s4, x, row.loadUnaligned(fromByteOffset: 256, as: SIMD16<Float>.self)) }
                            if vectors > 5 { multiplyAdd(&s5, x, row.loadUnaligned(fromByteOffset: 320, as: SIMD16<Float>.self)) }
                            if vectors > 6 { multiplyAdd(&s6, x, row.loadUnaligned(fromByteOffset: 384, as: SIMD16<Float>.self)) }
                        }
                        finish(s0, into: cRow, lanes: 16, add: add)
                        if vectors > 1 { finish(s1, into: cRow + 16, lanes: 16, add: add) }
                        if vectors > 2 { finish(s2, into: cRow + 32, lanes: 16, add: add) }
                        if vectors > 3 { finish(s3, into: cRow + 48, lanes: 16, add: add) }
                        if vectors > 4 { finish(s4, into: cRow + 64, lanes: 16, add: add) }
                        if vectors > 5 { finish(s5, into: cRow + 80, lanes: 16, add: add) }
                        if vectors > 6 { finish(s6, into: cRow + 96, lanes: 16, add: add) }
                    } else {
                        // The last columns: four vectors at a time while they last (four chains),
                        // then sixteen or fewer.
                        var v = 0
                        while v + 64 <= width {
                            var (s0, s1, s2, s3) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                            for p in p0..<p1 {
                                let x = aRow[p * a.columnStride], row = UnsafeRawPointer(bItem + p * b.rowStride + j + v)
                                multiplyAdd(&s0, x, row.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self))
                                multiplyAdd(&s1, x, row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
                                multiplyAdd(&s2, x, row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
                                multiplyAdd(&s3, x, row.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
                            }
                            finish(s0, into: cRow + v, lanes: 16, add: add)
                            finish(s1, into: cRow + v + 16, lanes: 16, add: add)
                            finish(s2, into: cRow + v + 32, lanes: 16, add: add)
                            finish(s3, into: cRow + v + 48, lanes: 16, add: add)
                            v += 64
                        }
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

    /// Columns of C one pass of `streamingRowsTimesMatrix` sums in its scratch rows (8 rows of
    /// 512 floats: 16 KiB, in L1).
    static let streamingColumnBlock = 512

    /// `rowsTimesMatrix` for 2 to 8 rows, reading B in memory order: B is walked sixteen rows of p
    /// at a time, across all of the task's columns, and every vector of them is used by every row
    /// of A, whose depth-block sums wait in an L1 scratch `[m, width]`. Sixteen rows of B in flight
    /// keep enough reads outstanding that B streams from L3 or memory: a decoding step's weights
    /// (26 MB at B = 8 for `small`) are not in L2, and in a B = 8 decoding step on the EPYC, 32
    /// columns at a time down all of B's rows ran at half the speed, the rows read 8 or 4 at a
    /// time at 0.8× and 0.6× of 16 (`glam bench decode --threads 1`). Each element's chain is the
    /// micro-kernels': from 0, the block's p in order, then stored or added to C.
    static func streamingRowsTimesMatrix(
        _ a: MatrixOperand, _ b: MatrixOperand, item: Int, rows m: Int, columns: Range<Int>, k: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, accumulate: Bool
    ) {
        precondition(m >= 1 && m <= unpackedRows, "streamingRowsTimesMatrix: 1 to \(unpackedRows) rows, got \(m)")
        let aItem = a.base + item * a.batchStride, bItem = b.base + item * b.batchStride
        let (ars, acs, brs) = (a.rowStride, a.columnStride, b.rowStride)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: unpackedRows * streamingColumnBlock) { buffer in
            let sums = buffer.baseAddress!  // [m, width], row stride `width` rounded up to 16
            var j0 = columns.lowerBound
            while j0 < columns.upperBound {
                let width = min(streamingColumnBlock, columns.upperBound - j0)
                let vectors = width / 16, tail = width - vectors * 16
                // A row's last, partial vector is summed as a whole vector: its scratch row has
                // room for it, so that it never reaches into the next row's sums.
                let stride = (width + 15) / 16 * 16
                var p0 = 0
                while p0 < k {
                    let p1 = min(k, p0 + depthBlock)
                    sums.update(repeating: 0, count: m * stride)
                    var p = p0
                    while p + 16 <= p1 {
                        let rowB = bItem + p * brs + j0
                        for v in 0..<vectors {
                            let column = UnsafeRawPointer(rowB + 16 * v)
                            let b0 = column.loadUnaligned(fromByteOffset: 0 * brs, as: SIMD16<Float>.self)
                            let b1 = column.loadUnaligned(fromByteOffset: 4 * brs, as: SIMD16<Float>.self)
                            let b2 = column.loadUnaligned(fromByteOffset: 8 * brs, as: SIMD16<Float>.self)
                            let b3 = column.loadUnaligned(fromByteOffset: 12 * brs, as: SIMD16<Float>.self)
                            let b4 = column.loadUnaligned(fromByteOffset: 16 * brs, as: SIMD16<Float>.self)
                            let b5 = column.loadUnaligned(fromByteOffset: 20 * brs, as: SIMD16<Float>.self)
                            let b6 = column.loadUnaligned(fromByteOffset: 24 * brs, as: SIMD16<Float>.self)
                            let b7 = column.loadUnaligned(fromByteOffset: 28 * brs, as: SIMD16<Float>.self)
                            let b8 = column.loadUnaligned(fromByteOffset: 32 * brs, as: SIMD16<Float>.self)
                            let b9 = column.loadUnaligned(fromByteOffset: 36 * brs, as: SIMD16<Float>.self)
                            let b10 = column.loadUnaligned(fromByteOffset: 40 * brs, as: SIMD16<Float>.self)
                            let b11 = column.loadUnaligned(fromByteOffset: 44 * brs, as: SIMD16<Float>.self)
                            let b12 = column.loadUnaligned(fromByteOffset: 48 * brs, as: SIMD16<Float>.self)
                            let b13 = column.loadUnaligned(fromByteOffset: 52 * brs, as: SIMD16<Float>.self)
                            let b14 = column.loadUnaligned(fromByteOffset: 56 * brs, as: SIMD16<Float>.self)
                            let b15 = column.loadUnaligned(fromByteOffset: 60 * brs, as: SIMD16<Float>.self)
                            for i in 0..<m {
                                let x = aItem + i * ars + p * acs
                                let sum = UnsafeMutableRawPointer(sums + i * stride + 16 * v)
                                var s = sum.loadUnaligned(as: SIMD16<Float>.self)
                                multiplyAdd(&s, x[0 * acs], b0)
                                multiplyAdd(&s, x[1 * acs], b1)
                                multiplyAdd(&s, x[2 * acs], b2)
                                multiplyAdd(&s, x[3 * acs], b3)
                                multiplyAdd(&s, x[4 * acs], b4)
                                multiplyAdd(&s, x[5 * acs], b5)
                                multiplyAdd(&s, x[6 * acs], b6)
                                multiplyAdd(&s, x[7 * acs], b7)
                                multiplyAdd(&s, x[8 * acs], b8)
                                multiplyAdd(&s, x[9 * acs], b9)
                                multiplyAdd(&s, x[10 * acs], b10)
                                multiplyAdd(&s, x[11 * acs], b11)
                                multiplyAdd(&s, x[12 * acs], b12)
                                multiplyAdd(&s, x[13 * acs], b13)
                                multiplyAdd(&s, x[14 * acs], b14)
                                multiplyAdd(&s, x[15 * acs], b15)
                                sum.storeBytes(of: s, as: SIMD16<Float>.self)
                            }
                        }
                        if tail > 0 {
                            for q in 0..<16 {
                                let bRow = rowB + q * brs + 16 * vectors
                                let bv = FastMath.partialVector(bRow, count: tail)
                                for i in 0..<m {
                                    let sum = UnsafeMutableRawPointer(sums + i * stride + 16 * vectors)
                                    var s = sum.loadUnaligned(as: SIMD16<Float>.self)
                                    multiplyAdd(&s, aItem[i * ars + (p + q) * acs], bv)
                                    sum.storeBytes(of: s, as: SIMD16<Float>.self)
                                }
                            }
                        }
                        p += 16
                    }
                    while p < p1 {
                        let rowB = bItem + p * brs + j0
                        for v in 0..<(vectors + (tail > 0 ? 1 : 0)) {
                            let bv =
                                v < vectors
                                ? UnsafeRawPointer(rowB + 16 * v).loadUnaligned(as: SIMD16<Float>.self)
                                : FastMath.partialVector(rowB + 16 * v, count: tail)
                            for i in 0..<m {
                                let sum = UnsafeMutableRawPointer(sums + i * stride + 16 * v)
                                var s = sum.loadUnaligned(as: SIMD16<Float>.self)
                                multiplyAdd(&s, aItem[i * ars + p * acs], bv)
                                sum.storeBytes(of: s, as: SIMD16<Float>.self)
                            }
                        }
                        p += 1
                    }
                    let add = accumulate || p0 > 0
                    for i in 0..<m {
                        let out = c + i * ldc + j0, sum = sums + i * stride
                        for v in 0..<vectors {
                            finish(
                                UnsafeRawPointer(sum + 16 * v).loadUnaligned(as: SIMD16<Float>.self), into: out + 16 * v, lanes: 16,
                                add: add)
                        }
                        if tail > 0 {
                            finish(FastMath.partialVector(sum + 16 * vectors, count: tail), into: out + 16 * vectors, lanes: tail, add: add)
                        }
                    }
                    p0 = p1
                }
                j0 += width
            }
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
