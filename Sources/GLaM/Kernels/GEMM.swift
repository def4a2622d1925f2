// Fast single-precision matrix multiplication: C = op(A) · op(B), optionally batched and
// accumulating, packed and cache-blocked in the BLIS style around `microKernel6x16`.
//
//   for every task (batch b, row block of MC rows, column block of NC columns)   ← parallel
//     for every depth block of KC                                                  ← fixed order
//       for every 16-column panel of the block                                     ← B̃ panel in L1
//         for every 6-row panel of the block                                       ← Ã block in L2
//           microKernel6x16
//
// Each element of C is owned by exactly one task, which sums its depth blocks in a fixed order,
// so the bits never depend on the thread count. Transposed operands are never materialised: the
// packing routines read them through strides. `referenceMatmul` is the plain triple loop that
// this must agree with (Tests/GLaMTests/GEMMTests.swift).

/// A strided, read-only view of a (batch of) row-major matrix operand(s).
///
/// Element `(i, j)` of batch item `b` is at `base[b·batchStride + i·rowStride + j·columnStride]`.
/// A transpose is the same memory with the two strides swapped. `batchStride` 0 shares one
/// matrix across the batch (a weight used by every item).
public struct MatrixOperand: @unchecked Sendable {
    /// The first element.
    public var base: UnsafePointer<Float>
    /// Distance between rows.
    public var rowStride: Int
    /// Distance between columns.
    public var columnStride: Int
    /// Distance between batch items (0: the same matrix for every item).
    public var batchStride: Int

    /// A view of `base` with the given strides.
    public init(base: UnsafePointer<Float>, rowStride: Int, columnStride: Int, batchStride: Int = 0) {
        self.base = base
        self.rowStride = rowStride
        self.columnStride = columnStride
        self.batchStride = batchStride
    }

    /// A view of the row-major `rows × columns` matrix stored at `base`, or of its transpose
    /// (`columns × rows`) when `transposed` is true.
    public init(rowMajor base: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool = false, batchStride: Int = 0) {
        let strides = MatrixOperand.strides(rows: rows, columns: columns, transposed: transposed)
        self.init(base: base, rowStride: strides.row, columnStride: strides.column, batchStride: batchStride)
    }

    /// Row and column strides that read a row-major `rows × columns` matrix as itself or as its
    /// transpose.
    static func strides(rows: Int, columns: Int, transposed: Bool) -> (row: Int, column: Int) {
        transposed ? (1, columns) : (columns, 1)
    }
}

/// The packed, cache-blocked SGEMM driver.
public enum GEMM {
    /// Depth block (BLIS `KC`): a 16 × KC panel of B̃ (16 KiB) stays in L1.
    static let depthBlock = 256
    /// Row block (BLIS `MC`, a multiple of 6): an MC × KC block of Ã (96 KiB) stays in L2.
    static let rowBlock = 96
    /// Column block (BLIS `NC`, a multiple of 16): the unit of parallel work with `rowBlock`.
    static let columnBlock = 128

    /// Computes `C[b] = op(A[b]) · op(B[b])` (or `C[b] += …` when `accumulate`) for every batch item.
    ///
    /// Shapes: `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]` with row stride `ldc` and
    /// batch stride `cBatchStride`. The result is bitwise independent of `threads`.
    public static func multiply(
        m: Int, n: Int, k: Int, batch: Int = 1,
        a: MatrixOperand, b: MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int, cBatchStride: Int = 0,
        accumulate: Bool = false, threads: Int = Parallelism.threadCount
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0 && batch >= 0, "GEMM: negative size")
        guard m > 0, n > 0, batch > 0 else { return }
        if k == 0 {
            if !accumulate {
                for item in 0..<batch {
                    for i in 0..<m { (c + item * cBatchStride + i * ldc).update(repeating: 0, count: n) }
                }
            }
            return
        }
        let rowPanels = (m + microTileRows - 1) / microTileRows
        let columnPanels = (n + microTileColumns - 1) / microTileColumns
        let packedASize = rowPanels * microTileRows * k  // Ã per batch item: [rowPanels][k][6]
        let packedBSize = columnPanels * microTileColumns * k  // B̃ per batch item: [columnPanels][k][16]
        let aItems = a.batchStride == 0 ? 1 : batch
        let bItems = b.batchStride == 0 ? 1 : batch
        // Tiny products are not worth waking workers for; the result is the same either way.
        let workers = m * n * k * batch < 32_768 ? 1 : threads

        // B̃ starts on a 64-byte boundary: the micro-kernel loads it with aligned 16-float loads
        // (SSE builds trap on a misaligned one).
        let packedBOffset = (aItems * packedASize + 15) / 16 * 16
        ScratchBuffers.withBuffer(count: packedBOffset + bItems * packedBSize) { scratch in
            let packedA = scratch
            let packedB = scratch + packedBOffset
            let aDst = SendableMutablePointer(packedA)
            let bDst = SendableMutablePointer(packedB)
            // Pack every row panel of Ã and column panel of B̃ (one parallel loop over both).
            let aTasks = aItems * rowPanels
            Parallelism.forEachTask(aTasks + bItems * columnPanels, threads: workers) { task in
                if task < aTasks {
                    let item = task / rowPanels, panel = task % rowPanels
                    packRowPanel(
                        a, item: item, panel: panel, m: m, k: k,
                        into: aDst.base + item * packedASize + panel * microTileRows * k)
                } else {
                    let item = (task - aTasks) / columnPanels, panel = (task - aTasks) % columnPanels
                    packColumnPanel(
                        b, item: item, panel: panel, n: n, k: k,
                        into: bDst.base + item * packedBSize + panel * microTileColumns * k)
                }
            }

            let rowBlocks = (m + rowBlock - 1) / rowBlock
            let columnBlocks = (n + columnBlock - 1) / columnBlock
            let tilesPerItem = rowBlocks * columnBlocks
            let out = SendableMutablePointer(c)
            Parallelism.forEachTask(batch * tilesPerItem, threads: workers) { task in
                let item = task / tilesPerItem
                let rowBlockIndex = (task % tilesPerItem) / columnBlocks
                let columnBlockIndex = task % columnBlocks
                let aItem = UnsafePointer(aDst.base + (a.batchStride == 0 ? 0 : item * packedASize))
                let bItem = UnsafePointer(bDst.base + (b.batchStride == 0 ? 0 : item * packedBSize))
                let i0 = rowBlockIndex * rowBlock, i1 = min(m, i0 + rowBlock)
                let j0 = columnBlockIndex * columnBlock, j1 = min(n, j0 + columnBlock)
                let cItem = out.base + item * cBatchStride
                var p0 = 0
                while p0 < k {
                    let kc = min(depthBlock, k - p0)
                    let accumulateBlock = accumulate || p0 > 0
                    var j = j0
                    while j < j1 {
                        let panelB = bItem + (j / microTileColumns) * microTileColumns * k + p0 * microTileColumns
                        var i = i0
                        while i < i1 {
                            let panelA = aItem + (i / microTileRows) * microTileRows * k + p0 * microTileRows
                            microKernel6x16(
                                depth: kc, packedA: panelA, packedB: panelB,
                                c: cItem + i * ldc + j, ldc: ldc,
                                rows: min(microTileRows, i1 - i), columns: min(microTileColumns, j1 - j),
                                accumulate: accumulateBlock)
                            i += microTileRows
                        }
                        j += microTileColumns
                    }
                    p0 += kc
                }
            }
        }
    }

    /// Packs rows `6·panel ..< 6·panel + 6` of `op(A)` (all `k` columns) as `Ã[p][r]`, zero-padded.
    @inline(__always)
    static func packRowPanel(
        _ a: MatrixOperand, item: Int, panel: Int, m: Int, k: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = a.base + item * a.batchStride
        let i0 = panel * microTileRows
        let height = min(microTileRows, m - i0)
        if height == microTileRows && a.columnStride == 1 {
            let r0 = src + i0 * a.rowStride, r1 = r0 + a.rowStride, r2 = r1 + a.rowStride
            let r3 = r2 + a.rowStride, r4 = r3 + a.rowStride, r5 = r4 + a.rowStride
            var out = dst
            for p in 0..<k {
                out[0] = r0[p]; out[1] = r1[p]; out[2] = r2[p]
                out[3] = r3[p]; out[4] = r4[p]; out[5] = r5[p]
                out += microTileRows
            }
            return
        }
        for p in 0..<k {
            let out = dst + p * microTileRows
            for r in 0..<microTileRows {
                out[r] = r < height ? src[(i0 + r) * a.rowStride + p * a.columnStride] : 0
            }
        }
    }

    /// Packs columns `16·panel ..< 16·panel + 16` of `op(B)` (all `k` rows) as `B̃[p][j]`, zero-padded.
    @inline(__always)
    static func packColumnPanel(
        _ b: MatrixOperand, item: Int, panel: Int, n: Int, k: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = b.base + item * b.batchStride
        let j0 = panel * microTileColumns
        let width = min(microTileColumns, n - j0)
        if width == microTileColumns && b.columnStride == 1 {
            let raw = UnsafeMutableRawPointer(dst)
            for p in 0..<k {
                let v = UnsafeRawPointer(src + p * b.rowStride + j0).loadUnaligned(as: SIMD16<Float>.self)
                raw.storeBytes(of: v, toByteOffset: p * 64, as: SIMD16<Float>.self)
            }
            return
        }
        for p in 0..<k {
            let row = src + p * b.rowStride
            let out = dst + p * microTileColumns
            for j in 0..<microTileColumns {
                out[j] = j < width ? row[(j0 + j) * b.columnStride] : 0
            }
        }
    }
}
