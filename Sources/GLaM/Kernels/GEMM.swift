// Fast single-precision matrix multiplication: C = op(A) · op(B), optionally batched and
// accumulating, packed and cache-blocked in the BLIS style around a register-tile micro-kernel
// of MR × NR (6 × 16 or 12 × 32, whichever `GEMMTile.selected` found faster on this CPU).
//
//   for every task (batch b, row block of MC rows, column block of NC columns)   ← parallel
//     for every depth block of KC                                                  ← fixed order
//       for every NR-column panel of the block                                     ← B̃ panel in L1
//         for every MR-row panel of the block                                      ← Ã block in L2
//           micro-kernel
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
    public static let depthBlock = 256
    /// Row block (BLIS `MC`, a multiple of every tile's MR): an MC × KC block of Ã (96 KiB) stays in L2.
    public static let rowBlock = 96
    /// Column block (BLIS `NC`, a multiple of every tile's NR): the unit of parallel work with `rowBlock`.
    public static let columnBlock = 128

    /// Computes `C[b] = op(A[b]) · op(B[b])` (or `C[b] += …` when `accumulate`) for every batch item.
    ///
    /// Shapes: `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]` with row stride `ldc` and
    /// batch stride `cBatchStride`. The result is bitwise independent of `threads` and of `tile`.
    public static func multiply(
        m: Int, n: Int, k: Int, batch: Int = 1,
        a: MatrixOperand, b: MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int, cBatchStride: Int = 0,
        accumulate: Bool = false, threads: Int = Parallelism.threadCount,
        tile: GEMMTile = .selected
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
        let mr = tile.rows, nr = tile.columns
        let rowPanels = (m + mr - 1) / mr
        let columnPanels = (n + nr - 1) / nr
        let packedASize = rowPanels * mr * k  // Ã per batch item: [rowPanels][k][MR]
        let packedBSize = columnPanels * nr * k  // B̃ per batch item: [columnPanels][k][NR]
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
                        a, item: item, panel: panel, rows: mr, m: m, k: k,
                        into: aDst.base + item * packedASize + panel * mr * k)
                } else {
                    let item = (task - aTasks) / columnPanels, panel = (task - aTasks) % columnPanels
                    packColumnPanel(
                        b, item: item, panel: panel, columns: nr, n: n, k: k,
                        into: bDst.base + item * packedBSize + panel * nr * k)
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
                        let panelB = bItem + (j / nr) * nr * k + p0 * nr
                        var i = i0
                        while i < i1 {
                            let panelA = aItem + (i / mr) * mr * k + p0 * mr
                            let target = cItem + i * ldc + j
                            let rows = min(mr, i1 - i), columns = min(nr, j1 - j)
                            switch tile {
                            case .rows6Columns16:
                                microKernel6x16(
                                    depth: kc, packedA: panelA, packedB: panelB, c: target, ldc: ldc,
                                    rows: rows, columns: columns, accumulate: accumulateBlock)
                            case .rows12Columns32:
                                microKernel12x32(
                                    depth: kc, packedA: panelA, packedB: panelB, c: target, ldc: ldc,
                                    rows: rows, columns: columns, accumulate: accumulateBlock)
                            }
                            i += mr
                        }
                        j += nr
                    }
                    p0 += kc
                }
            }
        }
    }

    /// Packs rows `MR·panel ..< MR·panel + MR` of `op(A)` (all `k` columns) as `Ã[p][r]`, zero-padded.
    @inline(__always)
    static func packRowPanel(
        _ a: MatrixOperand, item: Int, panel: Int, rows mr: Int, m: Int, k: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = a.base + item * a.batchStride
        let i0 = panel * mr
        let height = min(mr, m - i0)
        if a.columnStride == 1 {
            // Rows are contiguous: read each along p, write it with stride MR.
            for r in 0..<height {
                let row = src + (i0 + r) * a.rowStride
                var out = dst + r
                for p in 0..<k {
                    out.pointee = row[p]
                    out += mr
                }
            }
        } else {
            // Columns are contiguous (a transposed operand): each step of p reads `height` neighbours.
            for p in 0..<k {
                let column = src + p * a.columnStride + i0 * a.rowStride
                let out = dst + p * mr
                for r in 0..<height { out[r] = column[r * a.rowStride] }
            }
        }
        if height < mr {
            for p in 0..<k { (dst + p * mr + height).update(repeating: 0, count: mr - height) }
        }
    }

    /// Packs columns `NR·panel ..< NR·panel + NR` of `op(B)` (all `k` rows) as `B̃[p][j]`, zero-padded.
    @inline(__always)
    static func packColumnPanel(
        _ b: MatrixOperand, item: Int, panel: Int, columns nr: Int, n: Int, k: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = b.base + item * b.batchStride
        let j0 = panel * nr
        let width = min(nr, n - j0)
        if width == nr && b.columnStride == 1 {
            let raw = UnsafeMutableRawPointer(dst)
            let vectors = nr / 16
            for p in 0..<k {
                let row = UnsafeRawPointer(src + p * b.rowStride + j0)
                for v in 0..<vectors {
                    let value = row.loadUnaligned(fromByteOffset: v * 64, as: SIMD16<Float>.self)
                    raw.storeBytes(of: value, toByteOffset: (p * vectors + v) * 64, as: SIMD16<Float>.self)
                }
            }
            return
        }
        for p in 0..<k {
            let row = src + p * b.rowStride
            let out = dst + p * nr
            for j in 0..<nr {
                out[j] = j < width ? row[(j0 + j) * b.columnStride] : 0
            }
        }
    }
}
