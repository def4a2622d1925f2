// Fast single-precision matrix multiplication: C = op(A) · op(B), optionally batched and
// accumulating, packed and cache-blocked in the BLIS style around a register-tile micro-kernel
// of MR × NR (6 × 16 or 12 × 32, whichever `GEMMTile.selected` found faster on this CPU).
//
//   pack B̃ (all of op(B), in NR-column panels)                                  ← parallel
//   for every task (batch b, an even share of the rows, its columns)             ← parallel
//    for every row block of MC rows in the task
//     for every chunk of 8 depth blocks                                            ← fixed order
//       pack the task's MC × 8·KC block of Ã (in the order of A's memory)          ← Ã block in L2
//       for every NR-column panel of the block
//         for every depth block of KC in the chunk                                 ← fixed order
//           for every MR-row panel of the block                                    ← B̃ panel in L1
//             micro-kernel (adds its KC-deep sum to the tile of C)                 ← C panel in L1/L2
//
// A batch whose items have B's of their own (the experts' weights) and that has enough items to
// share out is scheduled differently: one task per item, which packs that item's B̃ and runs all
// its row blocks while B̃ is still in cache.
//
// A product of at most 8 rows whose B has contiguous rows, or of at most 3 whose B has contiguous
// columns (decoding, one token per sequence), is not packed at all: RowsTimesMatrix.swift reads B
// where it is, summing each element by the same chain as the micro-kernels.
//
// The depth chunk is this driver's departure from BLIS' loop order: running a column panel's
// depth blocks back to back keeps its MC × NR strip of C in cache between them, where BLIS'
// order sweeps all of C once per depth block (from L3 or memory when C is large). Packing reads
// its source in memory order, so that the hardware prefetcher can stream it; a transposed B is
// transposed 16 × 16 at a time in registers.
//
// A task holds all of its rows' columns, except when there are too few row panels to give every
// worker a share: then the columns are split too. Either way each element of C is owned by exactly
// one task, which sums its depth blocks in a fixed order, so the bits never depend on the thread
// count, though the split into tasks does. Transposed operands are never materialised: the
// packing routines read them through strides. `referenceMatmul` is the plain triple loop that
// this must agree with (Tests/GLaMTests/GEMMTests.swift).

/// A strided, read-only view of a (batch of) row-major matrix operand(s).
///
/// Element `(i, j)` of batch item `b` is at `base[b·batchStride + i·rowStride + j·columnStride]`.
/// A transpose is the same memory with the two strides swapped. `batchStride` 0 shares one
/// matrix across the batch (a weight used by every item).
package struct MatrixOperand: @unchecked Sendable {
    /// The first element.
    package var base: UnsafePointer<Float>
    /// Distance between rows.
    package var rowStride: Int
    /// Distance between columns.
    package var columnStride: Int
    /// Distance between batch items (0: the same matrix for every item).
    package var batchStride: Int

    /// A view of `base` with the given strides.
    package init(base: UnsafePointer<Float>, rowStride: Int, columnStride: Int, batchStride: Int = 0) {
        self.base = base
        self.rowStride = rowStride
        self.columnStride = columnStride
        self.batchStride = batchStride
    }

    /// A view of the row-major `rows × columns` matrix stored at `base`, or of its transpose
    /// (`columns × rows`) when `transposed` is true.
    package init(rowMajor base: UnsafePointer<Float>, rows: Int, columns: Int, transposed: Bool = false, batchStride: Int = 0) {
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
package enum GEMM {
    /// Depth block (BLIS `KC`): a 16 × KC panel of B̃ (16 KiB) stays in L1.
    package static let depthBlock = 256
    /// Row block (BLIS `MC`, a multiple of every tile's MR): an MC × KC block of Ã (96 KiB) stays in L2.
    package static let rowBlock = 96
    /// Depth of Ã a task packs at once (BLIS has no such level; a multiple of `depthBlock`): its
    /// 96 × 2048 block (768 KiB) stays in L2 while every column panel runs all its depth blocks.
    static let depthChunk = 8 * depthBlock
    /// Items per worker a batch with B's of their own needs to be scheduled one task per item.
    static let itemsPerWorker = 4
    /// Rows of op(B) one packing task copies.
    static let packDepth = 64
    /// Multiply-adds below which a product (or a loop of small products) runs on the calling
    /// thread: waking a worker would cost about what it saves.
    package static let smallestShared = 32_768

    /// Computes `C[b] = op(A[b]) · op(B[b])` (or `C[b] += …` when `accumulate`) for every batch item.
    ///
    /// Shapes: `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, `C` is `[m, n]` with row stride `ldc` and
    /// batch stride `cBatchStride`. The result is bitwise independent of `threads` and of `tile`.
    package static func multiply(
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
        let nr = tile.columns
        let columnPanels = (n + nr - 1) / nr
        let packedBSize = columnPanels * nr * k  // B̃ per batch item: [columnPanels][k][NR]
        let bItems = b.batchStride == 0 ? 1 : batch
        // Tiny products are not worth waking workers for; the result is the same either way.
        let workers = m * n * k * batch < smallestShared ? 1 : threads

        let rowBlocks = (m + rowBlock - 1) / rowBlock
        let out = SendableMutablePointer(c)

        // Few rows (decoding one token per sequence), with B's rows or its columns contiguous:
        // rows of C straight from B, unpacked (RowsTimesMatrix.swift).
        // Each worker takes an equal run of whole column blocks of one item.
        if (m <= unpackedRows && b.columnStride == 1) || (m < 4 && b.rowStride == 1) {
            let transposed = b.columnStride != 1
            let block = transposed || n < unpackedColumnBlock * workers ? 16 : unpackedColumnBlock
            let shares = batch >= workers ? 1 : min((n + block - 1) / block, (workers + batch - 1) / batch)
            let chunk = ((n + shares - 1) / shares + block - 1) / block * block
            let chunks = (n + chunk - 1) / chunk
            Parallelism.forEachTask(batch * chunks, threads: workers) { task in
                let item = task / chunks, j0 = (task % chunks) * chunk, columns = j0..<min(n, j0 + chunk)
                let target = out.base + item * cBatchStride
                if transposed {
                    rowsTimesTransposedMatrix(
                        a, b, item: item, rows: m, columns: columns, k: k, c: target, ldc: ldc, accumulate: accumulate)
                } else {
                    rowsTimesMatrix(a, b, item: item, rows: m, columns: columns, k: k, c: target, ldc: ldc, accumulate: accumulate)
                }
            }
            return
        }

        // A batch whose items each have their own B and are enough to share out: one task per
        // item, which packs that item's B̃ and uses it while it is still in cache. (Packing every
        // item's B̃ first would write it all out to memory and read it back: at E = 64 experts of
        // 32 rows each, most of the products' time.)
        if batch > 1 && b.batchStride != 0 && batch >= (workers == 1 ? 1 : itemsPerWorker * workers) {
            Parallelism.forEachTask(batch, threads: workers) { item in
                ScratchBuffers.withBuffer(count: packedBSize) { packedB in
                    packColumnPanels(b, item: item, depth: 0..<k, columns: nr, n: n, k: k, into: packedB)
                    for rowBlockIndex in 0..<rowBlocks {
                        let i0 = rowBlockIndex * rowBlock
                        macroKernel(
                            a, item: item, rows: i0..<min(m, i0 + rowBlock), columns: 0..<n, k: k, packedB: packedB,
                            c: out.base + item * cBatchStride, ldc: ldc, accumulate: accumulate, tile: tile)
                    }
                }
            }
            return
        }

        ScratchBuffers.withBuffer(count: bItems * packedBSize) { packedB in
            // Pack all of B̃ (shared by all tasks), rows `packDepth` at a time.
            let bDst = SendableMutablePointer(packedB)
            let depthTasks = (k + packDepth - 1) / packDepth
            Parallelism.forEachTask(bItems * depthTasks, threads: workers) { task in
                let item = task / depthTasks, p0 = (task % depthTasks) * packDepth
                packColumnPanels(
                    b, item: item, depth: p0..<min(k, p0 + packDepth), columns: nr, n: n, k: k,
                    into: bDst.base + item * packedBSize)
            }

            // Tasks: each item's rows cut into `rowTasks` runs of whole row panels (and, if it has
            // too few panels, its columns into `columnTasks` runs of whole column panels), as evenly
            // as the panels allow, and as few as give every worker an equal share: one task per
            // worker for a single product. (Timed at n = 256 on two threads: 193 → 237 GFLOP/s
            // against four uneven tasks per worker, which repacked Ã for every column block.)
            // Tasks decide who computes an element of C, never how: its sum is the same whatever
            // the tasks (and so whatever the thread count).
            let mr = tile.rows
            let rowPanels = (m + mr - 1) / mr
            let tasksWanted = workers == 1 ? 1 : workers / greatestCommonDivisor(batch, workers)
            let rowTasks = min(rowPanels, tasksWanted)
            let columnTasks = min(columnPanels, (tasksWanted + rowTasks - 1) / rowTasks)
            let tilesPerItem = rowTasks * columnTasks
            Parallelism.forEachTask(batch * tilesPerItem, threads: workers) { task in
                let item = task / tilesPerItem
                let rowTask = (task % tilesPerItem) / columnTasks, columnTask = task % columnTasks
                let i0 = rowTask * rowPanels / rowTasks * mr, i1 = min(m, (rowTask + 1) * rowPanels / rowTasks * mr)
                let j0 = columnTask * columnPanels / columnTasks * nr, j1 = min(n, (columnTask + 1) * columnPanels / columnTasks * nr)
                var i = i0
                while i < i1 {
                    macroKernel(
                        a, item: item, rows: i..<min(i1, i + rowBlock), columns: j0..<j1, k: k,
                        packedB: bDst.base + (b.batchStride == 0 ? 0 : item * packedBSize),
                        c: out.base + item * cBatchStride, ldc: ldc, accumulate: accumulate, tile: tile)
                    i += rowBlock
                }
            }
        }
    }

    /// One task's share of a product: the block `rows × columns` of C (at most `rowBlock` rows) of
    /// batch item `item`, from its packed B̃ (`[column panel][k][NR]`, all of op(B)'s columns).
    ///
    /// The task packs its own rows of Ã, a chunk of depth blocks at a time, into memory of its own
    /// (it stays in L2 while the block's tiles use it). Then, column panel by column panel, it runs
    /// all the depth blocks of the chunk: the panel's tiles of C stay in cache from one depth block
    /// to the next.
    @inline(__always)
    static func macroKernel(
        _ a: MatrixOperand, item: Int, rows: Range<Int>, columns: Range<Int>, k: Int, packedB: UnsafeMutablePointer<Float>,
        c cItem: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, tile: GEMMTile
    ) {
        let mr = tile.rows, nr = tile.columns
        let (i0, i1, j0, j1) = (rows.lowerBound, rows.upperBound, columns.lowerBound, columns.upperBound)
        let bItem = UnsafePointer(packedB)
        // The end of the task's B̃ (whole column panels): what the 12 × 32 kernel reads ahead stays below it.
        let bEnd = bItem + ((j1 + nr - 1) / nr) * nr * k
        var checksum: Int32 = 0
        ScratchBuffers.withBuffer(count: rowBlock * min(k, depthChunk)) { packedA in
            // Kept where the compiler cannot drop it, so that it keeps the loads that read ahead.
            defer { UnsafeMutableRawPointer(packedA).storeBytes(of: checksum, as: Int32.self) }
            var c0 = 0
            while c0 < k {
                let c1 = min(k, c0 + depthChunk)
                // Ã's depth block p0 holds the task's rows at `(p0 − c0) · rowBlock`, row panel i at
                // `(i − i0) · kc` within it. The order of packing follows A's memory: with contiguous
                // rows, a row panel's whole chunk at a time, so that each of its MR rows is read
                // straight through (MR streams the hardware prefetcher follows; depth block by depth
                // block, every row of the task would be a stream, read a block at a time: small's
                // 1024 × 256 × 2048 product, whose Ã comes from memory for only 256 columns, went
                // from 106 to 115 GFLOP/s); a transposed A, whose rows of memory are depth steps,
                // a depth block at a time, all the task's rows of each step together.
                func pack(rowPanel i: Int, depthBlock p0: Int) {
                    let kc = min(depthBlock, c1 - p0)
                    packRowPanel(
                        a, item: item, rows: i..<min(i1, i + mr), panelHeight: mr, depth: p0..<(p0 + kc),
                        into: packedA + (p0 - c0) * rowBlock + (i - i0) * kc)
                }
                let panels = stride(from: i0, to: i1, by: mr), blocks = stride(from: c0, to: c1, by: depthBlock)
                if a.columnStride == 1 {
                    for i in panels { for p0 in blocks { pack(rowPanel: i, depthBlock: p0) } }
                } else {
                    for p0 in blocks { for i in panels { pack(rowPanel: i, depthBlock: p0) } }
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
                                // B̃ is laid out in the order the tiles use it, so the block after
                                // this one is the next KC × NR at panelB + kc·NR; each of the
                                // block's (up to) eight row panels reads an eighth of it ahead.
                                let ahead = panelB + kc * nr + ((i - i0) / mr % (rowBlock / mr)) * kc * nr / (rowBlock / mr)
                                checksum &+= microKernel12x32(
                                    depth: kc, packedA: panelA, packedB: panelB, c: target, ldc: ldc,
                                    rows: rows, columns: columns, accumulate: accumulateBlock,
                                    ahead: UnsafeRawPointer(min(ahead, bEnd - kc * 4)))
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

    /// Packs rows `rows` (at most `panelHeight` of them) and columns `depth` of `op(A)` as
    /// `Ã[p][r]` with `panelHeight` floats per `p`, zero-padded below the last row.
    @inline(__always)
    static func packRowPanel(
        _ a: MatrixOperand, item: Int, rows: Range<Int>, panelHeight mr: Int, depth: Range<Int>, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = a.base + item * a.batchStride + depth.lowerBound * a.columnStride
        let height = rows.count, k = depth.count
        if a.columnStride == 1 {
            var p = 0
            if height == mr && mr <= 16 {
                // 16 values of each of the MR rows, transposed in registers, give Ã for 16 steps
                // of p. Each store writes 16 floats at p·MR; its lanes past MR fall on the next p,
                // which is stored after it, so only the stores that would reach past the block's
                // 16·MR floats are trimmed to MR.
                withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 16) { buffer in
                    let block = buffer.baseAddress!
                    while p + 16 <= k {
                        loadTransposed16x16(into: block, from: src + rows.lowerBound * a.rowStride + p, rowStride: a.rowStride, rows: mr)
                        for q in 0..<16 {
                            let values = block[bitReversed4(q)], out = dst + (p + q) * mr
                            if q * mr + 16 <= 16 * mr {
                                UnsafeMutableRawPointer(out).storeBytes(of: values, as: SIMD16<Float>.self)
                            } else {
                                for r in 0..<mr { out[r] = values[r] }
                            }
                        }
                        p += 16
                    }
                }
            }
            // The rest: read each row along p, write it with stride MR.
            for r in 0..<height {
                let row = src + (rows.lowerBound + r) * a.rowStride
                for q in p..<k { dst[q * mr + r] = row[q] }
            }
        } else {
            // Columns are contiguous (a transposed operand): each step of p reads `height` neighbours.
            for p in 0..<k {
                let column = src + p * a.columnStride + rows.lowerBound * a.rowStride
                let out = dst + p * mr
                if a.rowStride == 1 {
                    // Contiguous: four floats at a time, then the rest.
                    var r = 0
                    while r + 4 <= height {
                        UnsafeMutableRawPointer(out + r).storeBytes(
                            of: UnsafeRawPointer(column + r).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
                        r += 4
                    }
                    while r < height {
                        out[r] = column[r]
                        r += 1
                    }
                } else {
                    for r in 0..<height { out[r] = column[r * a.rowStride] }
                }
            }
        }
        if height < mr {
            for p in 0..<k { (dst + p * mr + height).update(repeating: 0, count: mr - height) }
        }
    }

    /// Packs rows `depth` of `op(B)` of batch item `item`, all its columns, into B̃ at `dst`:
    /// `B̃[panel][p][j]` (`[columnPanels][k][NR]`), zero-padded past column n.
    ///
    /// The loops follow memory: a row-major B is read row by row (`p` outer), a transposed one
    /// (`op(B)[p][j] = W[j][p]`) row of W by row of W (`j` outer), so the source streams in
    /// order and the hardware prefetcher keeps up; the scattered side is the writes, into B̃,
    /// which stays in cache. (Panel by panel with `p` inside, each row of B would be fetched a
    /// cache line or two at a time, once per panel.)
    static func packColumnPanels(
        _ b: MatrixOperand, item: Int, depth: Range<Int>, columns nr: Int, n: Int, k: Int, into dst: UnsafeMutablePointer<Float>
    ) {
        let src = b.base + item * b.batchStride
        let columnPanels = (n + nr - 1) / nr
        let fullPanels = n / nr, width = n - fullPanels * nr  // the last panel's columns, if partial
        if b.columnStride == 1 {
            let raw = UnsafeMutableRawPointer(dst)
            let vectors = nr / 16
            for p in depth {
                let row = src + p * b.rowStride
                let rawRow = UnsafeRawPointer(row)
                for panel in 0..<fullPanels {
                    for v in 0..<vectors {
                        let value = rawRow.loadUnaligned(fromByteOffset: (panel * nr + v * 16) * 4, as: SIMD16<Float>.self)
                        raw.storeBytes(of: value, toByteOffset: ((panel * k + p) * nr + v * 16) * 4, as: SIMD16<Float>.self)
                    }
                }
                if width > 0 {
                    let out = dst + (fullPanels * k + p) * nr
                    for j in 0..<nr { out[j] = j < width ? row[fullPanels * nr + j] : 0 }
                }
            }
            return
        }
        for panel in 0..<columnPanels {
            let j0 = panel * nr, panelWidth = min(nr, n - j0)
            let out = dst + panel * nr * k
            var p = depth.lowerBound
            if b.rowStride == 1 && panelWidth == nr {
                // Column j of the panel is a contiguous run of op(B) (a row of W): 16 × 16 blocks,
                // sixteen columns of sixteen values each, transposed in registers.
                withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 16) { buffer in
                    let block = buffer.baseAddress!
                    while p + 16 <= depth.upperBound {
                        for j in stride(from: 0, to: nr, by: 16) {
                            loadTransposed16x16(into: block, from: src + (j0 + j) * b.columnStride + p, rowStride: b.columnStride, rows: 16)
                            for q in 0..<16 {
                                UnsafeMutableRawPointer(out + (p + q) * nr + j).storeBytes(
                                    of: block[bitReversed4(q)], as: SIMD16<Float>.self)
                            }
                        }
                        p += 16
                    }
                }
            }
            for j in 0..<panelWidth {
                let column = src + (j0 + j) * b.columnStride
                for q in p..<depth.upperBound { out[q * nr + j] = column[q * b.rowStride] }
            }
            for j in panelWidth..<nr {
                for q in depth { out[q * nr + j] = 0 }
            }
        }
    }
}

/// The greatest common divisor of two positive integers (Euclid).
func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
    b == 0 ? a : greatestCommonDivisor(b, a % b)
}

/// `x` (0..<16) with its four bits reversed.
@inline(__always)
func bitReversed4(_ x: Int) -> Int {
    (x & 1) << 3 | (x & 2) << 1 | (x & 4) >> 1 | (x & 8) >> 3
}

/// Loads the 16 × 16 block whose row r is the 16 floats at `base + r · rowStride` for r < `rows`
/// (zeros below) and transposes it in registers: afterwards column q of the block is
/// `block[bitReversed4(q)]`.
///
/// Four rounds of the perfect unshuffle: the 32 lanes of vectors `s` and `s + 8` split into their
/// even lanes (new vector 2s) and odd lanes (new vector 2s + 1). Four rounds move the element in
/// vector v, lane c to vector bitrev(c), lane bitrev(v) (bitrev: the four bits reversed). So row r
/// is loaded into vector bitrev(r); after the rounds, vector bitrev(q) holds column q, its lane r
/// the element (r, q).
@inline(__always)
func loadTransposed16x16(into block: UnsafeMutablePointer<SIMD16<Float>>, from base: UnsafePointer<Float>, rowStride: Int, rows: Int) {
    for r in 0..<16 {
        block[bitReversed4(r)] = r < rows ? UnsafeRawPointer(base + r * rowStride).loadUnaligned(as: SIMD16<Float>.self) : SIMD16()
    }
    withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 16) { scratch in
        let next = scratch.baseAddress!
        for _ in 0..<4 {
            for s in 0..<8 {
                let pair = SIMD32<Float>(lowHalf: block[s], highHalf: block[s + 8])
                next[2 * s] = pair.evenHalf
                next[2 * s + 1] = pair.oddHalf
            }
            block.update(from: next, count: 16)
        }
    }
}
