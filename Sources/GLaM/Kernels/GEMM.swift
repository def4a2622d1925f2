// Fast single-precision matrix multiplication: C = op(A) · op(B), optionally batched and
// accumulating, packed and cache-blocked in the BLIS style around a register-tile micro-kernel
// of MR × NR (6 × 16 or 12 × 32, whichever `GEMMTile.selected` found faster on this CPU).
//
//   pack B̃ (all of op(B), in NR-column panels)                                  ← parallel
//   for every task (batch b, row block of MC rows, column block of NC columns)   ← parallel
//                  (NC: all columns, unless that leaves fewer than 4 tasks per worker)
//     for every chunk of 8 depth blocks                                            ← fixed order
//       pack the task's MC × 8·KC block of Ã                                       ← Ã block in L2
//       for every NR-column panel of the block
//         for every depth block of KC in the chunk                                 ← fixed order
//           for every MR-row panel of the block                                    ← B̃ panel in L1
//             micro-kernel (adds its KC-deep sum to the tile of C)                 ← C panel in L1/L2
//
// The depth chunk is this driver's departure from BLIS' loop order: running a column panel's
// depth blocks back to back keeps its MC × NR strip of C in cache between them, where BLIS'
// order sweeps all of C once per depth block (from L3 or memory when C is large).
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
    /// Depth of Ã a task packs at once (BLIS has no such level; a multiple of `depthBlock`): its
    /// 96 × 2048 block (768 KiB) stays in L2 while every column panel runs all its depth blocks.
    static let depthChunk = 8 * depthBlock
    /// Tasks per worker a product is cut into when its size allows, for balance. Columns are
    /// split into blocks only to reach this: every block of columns packs the same rows of Ã again.
    static let tasksPerWorker = 4

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
        // A batch that shares B and whose A and C rows continue from item to item is one taller
        // product (the same sums in the same order, fewer partial tiles).
        if batch > 1 && b.batchStride == 0 && a.batchStride == m * a.rowStride && a.columnStride == 1 && cBatchStride == m * ldc {
            multiply(
                m: m * batch, n: n, k: k, a: MatrixOperand(base: a.base, rowStride: a.rowStride, columnStride: 1), b: b,
                c: c, ldc: ldc, accumulate: accumulate, threads: threads, tile: tile)
            return
        }
        let mr = tile.rows, nr = tile.columns
        let columnPanels = (n + nr - 1) / nr
        let packedBSize = columnPanels * nr * k  // B̃ per batch item: [columnPanels][k][NR]
        let bItems = b.batchStride == 0 ? 1 : batch
        // Tiny products are not worth waking workers for; the result is the same either way.
        let workers = m * n * k * batch < 32_768 ? 1 : threads

        ScratchBuffers.withBuffer(count: bItems * packedBSize) { packedB in
            // Pack every column panel of B̃ (shared by all tasks).
            let bDst = SendableMutablePointer(packedB)
            Parallelism.forEachTask(bItems * columnPanels, threads: workers) { task in
                let item = task / columnPanels, panel = task % columnPanels
                packColumnPanel(
                    b, item: item, panel: panel, columns: nr, n: n, k: k,
                    into: bDst.base + item * packedBSize + panel * nr * k)
            }

            // Column blocks (BLIS `NC`): all columns in one, or as few blocks as give every worker
            // `tasksPerWorker` tasks. Blocks decide who computes an element of C, never how: its
            // sum is the same whatever the blocks (and so whatever the thread count).
            let rowBlocks = (m + rowBlock - 1) / rowBlock
            let tasksWanted = workers == 1 ? 1 : tasksPerWorker * workers
            let wanted = min(columnPanels, max(1, (tasksWanted + batch * rowBlocks - 1) / (batch * rowBlocks)))
            let columnBlock = (columnPanels + wanted - 1) / wanted * nr
            let columnBlocks = (n + columnBlock - 1) / columnBlock
            let tilesPerItem = rowBlocks * columnBlocks
            let out = SendableMutablePointer(c)
            Parallelism.forEachTask(batch * tilesPerItem, threads: workers) { task in
                let item = task / tilesPerItem
                let rowBlockIndex = (task % tilesPerItem) / columnBlocks
                let columnBlockIndex = task % columnBlocks
                let bItem = UnsafePointer(bDst.base + (b.batchStride == 0 ? 0 : item * packedBSize))
                let i0 = rowBlockIndex * rowBlock, i1 = min(m, i0 + rowBlock)
                let j0 = columnBlockIndex * columnBlock, j1 = min(n, j0 + columnBlock)
                let cItem = out.base + item * cBatchStride
                // Each task packs its own rows of Ã, a chunk of depth blocks at a time, into memory
                // of its own (it stays in L2 while the block's tiles use it). Then, column panel by
                // column panel, it runs all the depth blocks of the chunk: the panel's tiles of C
                // stay in cache from one depth block to the next.
                let chunkCapacity = min(k, depthChunk)
                ScratchBuffers.withBuffer(count: rowBlock * chunkCapacity) { packedA in
                    var c0 = 0
                    while c0 < k {
                        let c1 = min(k, c0 + depthChunk)
                        var p0 = c0
                        while p0 < c1 {
                            let kc = min(depthBlock, c1 - p0)
                            let blockA = packedA + (p0 - c0) * rowBlock
                            var i = i0
                            while i < i1 {
                                packRowPanel(
                                    a, item: item, rows: i..<min(i1, i + mr), panelHeight: mr, depth: p0..<(p0 + kc),
                                    into: blockA + (i - i0) * kc)
                                i += mr
                            }
                            p0 += kc
                        }
                        var j = j0
                        while j < j1 {
                            let columns = min(nr, j1 - j)
                            var p0 = c0
                            while p0 < c1 {
                                let kc = min(depthBlock, c1 - p0)
                                let accumulateBlock = accumulate || p0 > 0
                                let panelB = bItem + (j / nr) * nr * k + p0 * nr
                                let blockA = UnsafePointer(packedA + (p0 - c0) * rowBlock)
                                var i = i0
                                while i < i1 {
                                    let panelA = blockA + (i - i0) * kc
                                    let target = cItem + i * ldc + j
                                    let rows = min(mr, i1 - i)
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
                                p0 += kc
                            }
                            j += nr
                        }
                        c0 = c1
                    }
                }
            }
        }
    }

    /// Packs rows `rows` (at most `panelHeight` of them) and columns `depth` of `op(A)` as
    /// `Ã[p][r]` with `panelHeight` floats per `p`, zero-padded below the last row.
    @inline(__always)
    static func packRowPanel(
        _ a: MatrixOperand, item: Int, rows: Range<Int>, panelHeight mr: Int, depth: Range<Int>, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = a.base + item * a.batchStride + depth.lowerBound * a.columnStride
        let height = rows.count, k = depth.count
        if a.columnStride == 1 {
            // Rows are contiguous: read each along p, write it with stride MR.
            for r in 0..<height {
                let row = src + (rows.lowerBound + r) * a.rowStride
                var out = dst + r
                for p in 0..<k {
                    out.pointee = row[p]
                    out += mr
                }
            }
        } else {
            // Columns are contiguous (a transposed operand): each step of p reads `height` neighbours.
            for p in 0..<k {
                let column = src + p * a.columnStride + rows.lowerBound * a.rowStride
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
