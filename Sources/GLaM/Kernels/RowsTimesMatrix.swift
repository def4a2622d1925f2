// Products of few rows (decoding: one token per sequence, up to 8 sequences), read straight from B
// where it is, never packed. Packing would copy every element of B to use it a few times; here
// each element of B is read once.
//
//   B's rows contiguous (x · W):      one row: C[0, j..j+128] += A[0, p] · B[p, j..j+128], eight
//                                     chains in registers; 2 to 8 rows: 32 columns, each vector
//                                     of B used by every row (2 × m chains)
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
    /// The most rows of A `rowsTimesMatrix` takes (a decoding step of up to 8 sequences): each
    /// row reads B's 128-column block again, from L2, where packing would write all of B out first.
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
            severalRowsTimesMatrix(a, b, item: item, rows: m, columns: columns, k: k, c: c, ldc: ldc, accumulate: accumulate)
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
                    } else {
                        // The last columns: four vectors at a time while they last (four chains:
                        // attention's p·v of one head is 64 columns), then sixteen or fewer.
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

    /// `rowsTimesMatrix` for 2 to 8 rows: 32 columns at a time, every vector of B loaded once and
    /// used by every row (2 × m chains in registers). Rows that each read B again would read it
    /// from L3: the rows of a wide B fall on few cache sets, and a block of them does not stay in L2.
    static func severalRowsTimesMatrix(
        _ a: MatrixOperand, _ b: MatrixOperand, item: Int, rows m: Int, columns: Range<Int>, k: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, accumulate: Bool
    ) {
        precondition(m >= 2 && m <= 8, "severalRowsTimesMatrix: 2 to 8 rows, got \(m)")
        let aItem = a.base + item * a.batchStride, bItem = b.base + item * b.batchStride
        var j = columns.lowerBound
        while j < columns.upperBound {
            let width = min(32, columns.upperBound - j)
            let (lanes0, lanes1) = (min(16, width), max(0, width - 16))
            var p0 = 0
            while p0 < k {
                let p1 = min(k, p0 + depthBlock)
                let zero = SIMD16<Float>()
                var (s00, s01, s10, s11, s20, s21, s30, s31) = (zero, zero, zero, zero, zero, zero, zero, zero)
                var (s40, s41, s50, s51, s60, s61, s70, s71) = (zero, zero, zero, zero, zero, zero, zero, zero)
                @inline(__always) func step(_ p: Int, _ v0: SIMD16<Float>, _ v1: SIMD16<Float>) {
                    let x = aItem + p * a.columnStride, r = a.rowStride
                    multiplyAdd(&s00, x[0], v0)
                    multiplyAdd(&s01, x[0], v1)
                    multiplyAdd(&s10, x[r], v0)
                    multiplyAdd(&s11, x[r], v1)
                    if m > 2 {
                        multiplyAdd(&s20, x[2 * r], v0)
                        multiplyAdd(&s21, x[2 * r], v1)
                    }
                    if m > 3 {
                        multiplyAdd(&s30, x[3 * r], v0)
                        multiplyAdd(&s31, x[3 * r], v1)
                    }
                    if m > 4 {
                        multiplyAdd(&s40, x[4 * r], v0)
                        multiplyAdd(&s41, x[4 * r], v1)
                    }
                    if m > 5 {
                        multiplyAdd(&s50, x[5 * r], v0)
                        multiplyAdd(&s51, x[5 * r], v1)
                    }
                    if m > 6 {
                        multiplyAdd(&s60, x[6 * r], v0)
                        multiplyAdd(&s61, x[6 * r], v1)
                    }
                    if m > 7 {
                        multiplyAdd(&s70, x[7 * r], v0)
                        multiplyAdd(&s71, x[7 * r], v1)
                    }
                }
                if width == 32 {
                    for p in p0..<p1 {
                        let row = UnsafeRawPointer(bItem + p * b.rowStride + j)
                        step(p, row.loadUnaligned(as: SIMD16<Float>.self), row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
                    }
                } else {
                    for p in p0..<p1 {
                        let row = bItem + p * b.rowStride + j
                        step(
                            p, FastMath.partialVector(row, count: lanes0),
                            lanes1 > 0 ? FastMath.partialVector(row + 16, count: lanes1) : zero)
                    }
                }
                let add = accumulate || p0 > 0
                func write(_ i: Int, _ sum0: SIMD16<Float>, _ sum1: SIMD16<Float>) {
                    guard i < m else { return }
                    finish(sum0, into: c + i * ldc + j, lanes: lanes0, add: add)
                    if lanes1 > 0 { finish(sum1, into: c + i * ldc + j + 16, lanes: lanes1, add: add) }
                }
                write(0, s00, s01)
                write(1, s10, s11)
                write(2, s20, s21)
                write(3, s30, s31)
                write(4, s40, s41)
                write(5, s50, s51)
                write(6, s60, s61)
                write(7, s70, s71)
                p0 = p1
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
