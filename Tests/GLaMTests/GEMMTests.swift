// The packed GEMM against the reference triple loop, over awkward shapes, every transpose
// variant, batches and accumulation; and bitwise determinism across thread counts.

import Dispatch
import Testing

@testable import GLaM

/// Deterministic test data in [-1, 1).
func testValues(_ count: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in 2 * generator.nextUniform() - 1 }
}

/// Runs the fast GEMM on row-major buffers: `batch` products, each item's A, B and C following the
/// previous one's.
func fastMatmul(
    _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, batch: Int = 1, transposeA: Bool, transposeB: Bool,
    initial: [Float]? = nil, threads: Int = 2, tile: GEMMTile = .selected
) -> [Float] {
    var c = initial ?? [Float](repeating: .nan, count: batch * m * n)
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                GEMM.multiply(
                    m: m, n: n, k: k, batch: batch,
                    a: MatrixOperand(
                        rowMajor: pa.baseAddress!, rows: transposeA ? k : m, columns: transposeA ? m : k, transposed: transposeA,
                        batchStride: m * k),
                    b: MatrixOperand(
                        rowMajor: pb.baseAddress!, rows: transposeB ? n : k, columns: transposeB ? k : n, transposed: transposeB,
                        batchStride: k * n),
                    c: pc.baseAddress!, ldc: n, cBatchStride: m * n, accumulate: initial != nil, threads: threads, tile: tile)
            }
        }
    }
    return c
}

/// Largest |fast − reference| relative to the scale of the products (k terms of size ≤ 1).
func maxError(_ x: [Float], _ y: [Float]) -> Float {
    zip(x, y).map { abs($0 - $1) }.max() ?? 0
}

struct GEMMTests {
    static let awkwardSizes = [1, 3, 7, 33, 65]

    @Test(
        "fast GEMM equals the reference on awkward shapes, all transpose variants",
        arguments: [
            (1, 1, 1), (3, 7, 33), (7, 65, 3), (33, 1, 65), (65, 33, 7), (1, 1000, 3), (1000, 7, 1), (17, 19, 257), (97, 129, 300),
            (20, 70, 4700),  // three chunks of depth blocks, the last one partial
        ],
        [(false, false), (true, false), (false, true), (true, true)])
    func agreesWithReference(shape: (Int, Int, Int), transposes: (Bool, Bool)) {
        let (m, n, k) = shape
        let a = testValues(m * k, seed: 1), b = testValues(k * n, seed: 2)
        let reference = referenceMatmul(a, b, m: m, n: n, k: k, transposeA: transposes.0, transposeB: transposes.1)
        for tile in GEMMTile.allCases {
            let fast = fastMatmul(a, b, m: m, n: n, k: k, transposeA: transposes.0, transposeB: transposes.1, tile: tile)
            // Float accumulation of k products of magnitude ≤ 1: error ≲ k·ε.
            #expect(
                maxError(fast, reference) <= Float(k) * 2e-7 + 1e-6,
                "tile \(tile.rawValue) m=\(m) n=\(n) k=\(k) transposes=\(transposes)")
        }
    }

    @Test(
        "every register tile gives the same bits (edges, transposes, accumulation, several depth blocks and chunks)",
        arguments: [(1, 1, 1), (13, 45, 7), (25, 33, 257), (96, 128, 256), (100, 130, 600), (7, 300, 513), (13, 40, 4700)])
    func tilesGiveIdenticalBits(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        let a = testValues(m * k, seed: 21), b = testValues(k * n, seed: 22), c0 = testValues(m * n, seed: 23)
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            for initial in [nil, c0] {
                let results = GEMMTile.allCases.map { tile in
                    fastMatmul(
                        a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, initial: initial, tile: tile
                    ).map(\.bitPattern)
                }
                #expect(
                    results.allSatisfy { $0 == results[0] },
                    "m=\(m) n=\(n) k=\(k) transposes=\((transposeA, transposeB)) accumulate=\(initial != nil)")
            }
        }
    }

    @Test("the tile is chosen by timing every candidate; each tile's shape divides the cache blocks")
    func tileSelection() {
        let start = DispatchTime.now().uptimeNanoseconds
        let timings = GEMMTile.timeKernels(rounds: 2)
        let wall = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        #expect(timings.map(\.tile) == GEMMTile.allCases)
        // Each is the elapsed time of one product of 2·96·128·256 = 6.3 MFLOP: more than it would
        // take at 10 TFLOP/s (far above one core), and the best runs together no longer than the
        // whole timing took.
        let flops = Double(2 * GEMM.rowBlock * GEMMTile.timedColumns * GEMM.depthBlock)
        #expect(timings.allSatisfy { $0.seconds > flops / 1e13 && $0.seconds.isFinite }, "\(timings)")
        #expect(timings.map(\.seconds).reduce(0, +) <= wall, "\(timings) in \(wall) s")
        #expect(GEMMTile.allCases.contains(GEMMTile.selected))
        for tile in GEMMTile.allCases {
            #expect(GEMM.rowBlock % tile.rows == 0 && GEMMTile.timedColumns % tile.columns == 0 && tile.columns % 16 == 0)
        }
    }

    @Test(
        "the documented summation order, bit for bit: each element sums depth blocks of 256 from zero, p in order, and adds each block's sum to C, on every tile, layout and thread count"
    )
    func summationOrder() {
        // The order fixes the bits a given input gives on every host and in every release.
        func multiplyAdd(_ acc: Float, _ a: Float, _ b: Float) -> Float {
            #if GLAM_FMA
                return acc.addingProduct(a, b)
            #else
                return acc + a * b
            #endif
        }
        for (m, n, k) in [(7, 20, 600), (40, 33, 513), (1, 17, 256), (13, 50, 1030)] {
            let a = testValues(m * k, seed: 91), b = testValues(k * n, seed: 92)
            var expected = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var c: Float = 0
                    for block in stride(from: 0, to: k, by: 256) {
                        var sum: Float = 0
                        for p in block..<min(k, block + 256) { sum = multiplyAdd(sum, a[i * k + p], b[p * n + j]) }
                        c = block == 0 ? sum : sum + c
                    }
                    expected[i * n + j] = c
                }
            }
            for tile in GEMMTile.allCases {
                for threads in [1, 2] {
                    for (transposeA, transposeB) in [(false, false), (true, true)] {
                        // The same matrices stored transposed.
                        let storedA = transposeA ? (0..<k * m).map { a[($0 % m) * k + $0 / m] } : a
                        let storedB = transposeB ? (0..<n * k).map { b[($0 % k) * n + $0 / k] } : b
                        let got = fastMatmul(
                            storedA, storedB, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, threads: threads, tile: tile
                        )
                        #expect(
                            got.map(\.bitPattern) == expected.map(\.bitPattern),
                            "m \(m) n \(n) k \(k), \(tile), \(threads) threads, transposes \(transposeA) \(transposeB)")
                    }
                }
            }
        }
    }

    @Test("square sizes 1, 3, 7, 33, 65, 1000")
    func squareSizes() {
        for size in Self.awkwardSizes + [1000] {
            let a = testValues(size * size, seed: 3), b = testValues(size * size, seed: 4)
            let fast = fastMatmul(a, b, m: size, n: size, k: size, transposeA: false, transposeB: false)
            let reference = referenceMatmul(a, b, m: size, n: size, k: size)
            #expect(maxError(fast, reference) <= Float(size) * 2e-7 + 1e-6, "size \(size)")
        }
    }

    @Test("accumulate adds to C instead of overwriting it")
    func accumulates() {
        let (m, n, k) = (13, 21, 300)
        let a = testValues(m * k, seed: 5), b = testValues(k * n, seed: 6), c0 = testValues(m * n, seed: 7)
        let fast = fastMatmul(a, b, m: m, n: n, k: k, transposeA: false, transposeB: true, initial: c0)
        let reference = zip(referenceMatmul(a, b, m: m, n: n, k: k, transposeB: true), c0).map { $0 + $1 }
        #expect(maxError(fast, reference) <= 1e-4)
    }

    @Test("k = 0 gives zeros, or leaves C alone when accumulating")
    func emptyDepth() {
        #expect(fastMatmul([], [], m: 3, n: 4, k: 0, transposeA: false, transposeB: false) == [Float](repeating: 0, count: 12))
        let c0 = testValues(12, seed: 8)
        #expect(fastMatmul([], [], m: 3, n: 4, k: 0, transposeA: false, transposeB: false, initial: c0) == c0)
    }

    @Test("a product with no rows, no columns or no items writes nothing, with or without depth, accumulating or not")
    func emptyProductsWriteNothing() {
        let a = testValues(64, seed: 12), b = testValues(64, seed: 13)
        for (m, n, k, batch) in [(0, 4, 3, 1), (3, 0, 3, 1), (3, 4, 3, 0), (0, 0, 0, 1), (3, 0, 0, 1), (0, 4, 0, 2), (0, 0, 5, 3)] {
            for accumulate in [false, true] {
                for threads in [1, 2] {
                    var c = [Float](repeating: 7, count: 16)  // a sentinel where nothing may be written
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            c.withUnsafeMutableBufferPointer { pc in
                                GEMM.multiply(
                                    m: m, n: n, k: k, batch: batch,
                                    a: MatrixOperand(rowMajor: pa.baseAddress!, rows: m, columns: k, transposed: false, batchStride: m * k),
                                    b: MatrixOperand(rowMajor: pb.baseAddress!, rows: k, columns: n, transposed: false, batchStride: k * n),
                                    c: pc.baseAddress!, ldc: max(n, 1), cBatchStride: m * n, accumulate: accumulate, threads: threads)
                            }
                        }
                    }
                    #expect(c == [Float](repeating: 7, count: 16), "m \(m) n \(n) k \(k) batch \(batch), accumulate \(accumulate)")
                }
            }
        }
    }

    @Test(
        "results are bitwise identical for 1, 2, 3 and 8 threads",
        arguments: [(300, 200, 517), (1, 1000, 64), (250, 3, 1000), (200, 70, 2600)])
    func threadCountDoesNotChangeBits(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        let a = testValues(m * k, seed: 9), b = testValues(k * n, seed: 10)
        let one = fastMatmul(a, b, m: m, n: n, k: k, transposeA: false, transposeB: false, threads: 1)
        for threads in [2, 3, 8] {
            let many = fastMatmul(a, b, m: m, n: n, k: k, transposeA: false, transposeB: false, threads: threads)
            #expect(one.map(\.bitPattern) == many.map(\.bitPattern), "threads \(threads)")
        }
    }

    @Test(
        "a batch of products with their own B (one task per item, B̃ packed in the task) gives the bits of one product at a time, for every layout and thread count"
    )
    func batchedOwnOperands() {
        let (batch, m, n, k) = (9, 20, 70, 300)  // two full column panels and a partial one; 18 blocks of 16 rows of B and 12 more
        let a = testValues(batch * m * k, seed: 31), b = testValues(batch * k * n, seed: 32)
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            // Item by item: a product of its own, packed by the shared schedule.
            var single: [Float] = []
            for item in 0..<batch {
                let ai = Array(a[(item * m * k)..<((item + 1) * m * k)]), bi = Array(b[(item * k * n)..<((item + 1) * k * n)])
                let product = fastMatmul(ai, bi, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, threads: 1)
                let reference = referenceMatmul(ai, bi, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
                #expect(maxError(product, reference) <= Float(k) * 2e-7 + 1e-6)
                single += product
            }
            // Batched: 1 and 2 threads take the per-item schedule (9 ≥ 4 items per worker · 2); 3 and
            // 4 the shared one, 3 with one task per item, 4 with four (rows and columns split in two).
            for threads in [1, 2, 3, 4] {
                let c = fastMatmul(a, b, m: m, n: n, k: k, batch: batch, transposeA: transposeA, transposeB: transposeB, threads: threads)
                #expect(
                    c.map { $0.bitPattern } == single.map { $0.bitPattern },
                    "threads \(threads), transposes \((transposeA, transposeB))")
            }
        }
    }

    @Test(
        "products of 1 to 8 rows (B read unpacked; 1 to 3 when B is transposed) give the bits of the same rows of a taller, packed product, for both layouts of A and of B, accumulating or not, at 1 and 2 threads"
    )
    func fewRowsMatchPackedRows() {
        let extra = 12  // rows added to make the packed path run (it takes more than 8 rows, or 4 when B is transposed)
        // Column tails, 128-column blocks and their shares between workers, depth blocks and a
        // depth that is no multiple of 16 (the transposed B's 16 × 16 blocks).
        for (m, n, k, transposeB) in [
            (1, 37, 300, false), (2, 600, 600, false), (3, 16, 3, false), (1, 1100, 257, false), (1, 256, 256, false), (1, 200, 300, false),
            (5, 70, 300, false),
            (8, 600, 257, false), (4, 33, 16, false), (7, 256, 256, false), (6, 1100, 530, false), (2, 17, 15, false), (1, 112, 300, false),
            (1, 240, 70, false), (1, 16, 20, false),
        ]
            + [(1, 37, 300, true), (2, 600, 600, true), (3, 16, 3, true), (1, 1100, 257, true), (3, 33, 40, true)]
        {
            let opA = testValues((m + extra) * k, seed: 41), b = testValues(k * n, seed: 42), c0 = testValues((m + extra) * n, seed: 43)
            for transposeA in [false, true] {
                // op(A) is `[m + extra, k]`; stored transposed it is `[k, m + extra]`.
                func stored(_ rows: Int) -> [Float] {
                    transposeA ? (0..<k).flatMap { p in (0..<rows).map { opA[$0 * k + p] } } : Array(opA[0..<(rows * k)])
                }
                for initial in [nil, c0] {
                    let tall = fastMatmul(
                        stored(m + extra), b, m: m + extra, n: n, k: k, transposeA: transposeA, transposeB: transposeB, initial: initial,
                        threads: 1)
                    for threads in [1, 2] {
                        let few = fastMatmul(
                            stored(m), b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                            initial: initial.map { Array($0[0..<(m * n)]) },
                            threads: threads)
                        #expect(
                            few.map(\.bitPattern) == tall[0..<(m * n)].map(\.bitPattern),
                            "m \(m) n \(n) k \(k), transposed A \(transposeA) B \(transposeB), accumulate \(initial != nil), \(threads) threads"
                        )
                    }
                }
            }
        }
    }

    @Test(
        "each row of a product depends on its own row of A alone: an infinite or NaN entry in one row leaves every other row's bits as they are, for 1 to 12 rows and column counts that are no multiple of 16"
    )
    func rowsAreIndependent() {
        for (m, n, k) in [(2, 37, 40), (5, 530, 300), (8, 17, 20), (3, 16, 33), (12, 45, 70)] {
            let a = testValues(m * k, seed: 71), b = testValues(k * n, seed: 72)
            let clean = fastMatmul(a, b, m: m, n: n, k: k, transposeA: false, transposeB: false, threads: 1)
            for row in 0..<m {
                for bad: Float in [.infinity, .nan] {
                    var poisoned = a
                    poisoned[row * k + k / 2] = bad
                    let c = fastMatmul(poisoned, b, m: m, n: n, k: k, transposeA: false, transposeB: false, threads: 1)
                    for other in 0..<m where other != row {
                        let range = (other * n)..<((other + 1) * n)
                        #expect(
                            c[range].map(\.bitPattern) == clean[range].map(\.bitPattern),
                            "m \(m) n \(n): \(bad) in row \(row) changed row \(other)")
                    }
                }
            }
        }
    }

    @Test(
        "products of the same few rows with several weights in one parallel loop equal one matmul each, bit for bit, at 1 and 2 threads; more rows and Double take matmul itself"
    )
    func sharedInputProductsEqualMatmul() {
        let widths = [37, 128, 300, 16]
        let weights = widths.enumerated().map { i, n in Tensor<Float>(shape: [70, n], scalars: testValues(70 * n, seed: UInt64(60 + i))) }
        for rows in [1, 2, 3, 8, 9, 20] {
            let x = Tensor<Float>(shape: [1, rows, 70], scalars: testValues(rows * 70, seed: UInt64(rows)))
            let saved = Parallelism.threadCount
            defer { Parallelism.threadCount = saved }
            for threads in [1, 2] {
                Parallelism.threadCount = threads
                let together = sharedInputProducts(x, weights)
                for (w, product) in zip(weights, together) {
                    let alone = matmul(x, w)
                    #expect(
                        product.shape == alone.shape && product.scalars.map(\.bitPattern) == alone.scalars.map(\.bitPattern),
                        "rows \(rows), \(threads) threads, width \(w.shape[1])")
                }
            }
        }
        let x = Tensor<Double>(shape: [2, 70], scalars: testValues(140, seed: 5).map(Double.init))
        let w = Tensor<Double>(shape: [70, 9], scalars: testValues(630, seed: 6).map(Double.init))
        #expect(sharedInputProducts(x, [w, w]) == [matmul(x, w), matmul(x, w)])
    }

    @Test(
        "operands with any strides (neither rows nor columns contiguous) give the product of the matrices they describe",
        arguments: [(1, 1, 1), (5, 7, 3), (13, 33, 17), (12, 32, 16), (25, 40, 70)])
    func generalStrides(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        // op(A)[i][p] at i·2 + p·(2m + 1), op(B)[p][j] at p·3 + j·(3k + 2): every element apart,
        // with gaps that hold NaN, so that a read of the wrong element shows.
        let (aRow, aColumn, bRow, bColumn) = (2, 2 * m + 1, 3, 3 * k + 2)
        var aBuffer = [Float](repeating: .nan, count: (m - 1) * aRow + (k - 1) * aColumn + 1)
        var bBuffer = [Float](repeating: .nan, count: (k - 1) * bRow + (n - 1) * bColumn + 1)
        let a = testValues(m * k, seed: 31), b = testValues(k * n, seed: 32)
        for i in 0..<m { for p in 0..<k { aBuffer[i * aRow + p * aColumn] = a[i * k + p] } }
        for p in 0..<k { for j in 0..<n { bBuffer[p * bRow + j * bColumn] = b[p * n + j] } }
        let reference = referenceMatmul(a, b, m: m, n: n, k: k)
        for tile in GEMMTile.allCases {
            for threads in [1, 2] {
                var c = [Float](repeating: .nan, count: m * n)
                aBuffer.withUnsafeBufferPointer { pa in
                    bBuffer.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            GEMM.multiply(
                                m: m, n: n, k: k, a: MatrixOperand(base: pa.baseAddress!, rowStride: aRow, columnStride: aColumn),
                                b: MatrixOperand(base: pb.baseAddress!, rowStride: bRow, columnStride: bColumn),
                                c: pc.baseAddress!, ldc: n, threads: threads, tile: tile)
                        }
                    }
                }
                #expect(
                    maxError(c, reference) <= Float(k) * 2e-7 + 1e-6 && !c.contains { $0.isNaN },
                    "tile \(tile.rawValue) threads \(threads) m=\(m) n=\(n) k=\(k)")
            }
        }
    }

    @Test(
        "any operand strides, shared, overlapping or padded, give C[b][i][j] = Σ_p A(b, i, p)·B(b, p, j) read at the stated offsets",
        arguments: 0..<24)
    func arbitraryStrides(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed) + 900)
        func pick(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(generator.next() % UInt64(range.count)) }
        let (batch, m, n, k) = (pick(1...3), pick(1...9), pick(1...20), pick(1...40))
        // Strides: contiguous either way, padded, or (for the batch) 0 = shared and 1 = overlapping items.
        func strides(_ rows: Int, _ columns: Int) -> (row: Int, column: Int, batch: Int) {
            let padding = pick(0...2)
            let (row, column) = generator.next() % 2 == 0 ? (columns + padding, 1) : (1, rows + padding)
            let span = (rows - 1) * row + (columns - 1) * column + 1
            return (row, column, [0, 1, span, span + pick(1...3)][pick(0...3)])
        }
        let (sa, sb) = (strides(m, k), strides(k, n))
        func size(_ s: (row: Int, column: Int, batch: Int), _ rows: Int, _ columns: Int) -> Int {
            (batch - 1) * s.batch + (rows - 1) * s.row + (columns - 1) * s.column + 1
        }
        let a = testValues(size(sa, m, k), seed: UInt64(seed) * 2 + 1), b = testValues(size(sb, k, n), seed: UInt64(seed) * 2 + 2)
        let ldc = n + pick(0...2), cBatchStride = m * ldc + pick(0...2)
        for threads in [1, 2] {
            for tile in GEMMTile.allCases {
                var c = [Float](repeating: .nan, count: (batch - 1) * cBatchStride + (m - 1) * ldc + n)
                a.withUnsafeBufferPointer { pa in
                    b.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            GEMM.multiply(
                                m: m, n: n, k: k, batch: batch,
                                a: MatrixOperand(base: pa.baseAddress!, rowStride: sa.row, columnStride: sa.column, batchStride: sa.batch),
                                b: MatrixOperand(base: pb.baseAddress!, rowStride: sb.row, columnStride: sb.column, batchStride: sb.batch),
                                c: pc.baseAddress!, ldc: ldc, cBatchStride: cBatchStride, threads: threads, tile: tile)
                        }
                    }
                }
                var worst: Float = 0
                for item in 0..<batch {
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = 0.0
                            for p in 0..<k {
                                sum +=
                                    Double(a[item * sa.batch + i * sa.row + p * sa.column])
                                    * Double(b[item * sb.batch + p * sb.row + j * sb.column])
                            }
                            let error = abs(c[item * cBatchStride + i * ldc + j] - Float(sum))
                            if !(error <= worst) { worst = error }  // a NaN (an element never written) is kept
                        }
                    }
                }
                #expect(worst <= Float(k) * 2e-7 + 1e-6, "seed \(seed) tile \(tile.rawValue) threads \(threads): \(worst) \(sa) \(sb)")
            }
        }
    }

    @Test("batched products, with a matrix shared across the batch")
    func batched() {
        let (batch, m, n, k) = (5, 9, 18, 40)
        let a = testValues(batch * m * k, seed: 11), b = testValues(batch * k * n, seed: 12), w = testValues(k * n, seed: 13)
        let perItem = Tensor(shape: [batch, m, k], scalars: a)
        let batchedB = matmul(perItem, Tensor(shape: [batch, k, n], scalars: b))
        let shared = matmul(perItem, Tensor(shape: [k, n], scalars: w))
        for item in 0..<batch {
            let ai = Array(a[(item * m * k)..<((item + 1) * m * k)])
            let bi = Array(b[(item * k * n)..<((item + 1) * k * n)])
            let cb = Array(batchedB.scalars[(item * m * n)..<((item + 1) * m * n)])
            let cs = Array(shared.scalars[(item * m * n)..<((item + 1) * m * n)])
            #expect(maxError(cb, referenceMatmul(ai, bi, m: m, n: n, k: k)) <= 1e-5)
            #expect(maxError(cs, referenceMatmul(ai, w, m: m, n: n, k: k)) <= 1e-5)
        }
    }

    @Test("Float and Double tensor matmul agree (the Double path is the plain loop)")
    func floatMatchesDouble() {
        let a = Tensor(shape: [2, 7, 33], scalars: testValues(2 * 7 * 33, seed: 14))
        let b = Tensor(shape: [2, 65, 33], scalars: testValues(2 * 65 * 33, seed: 15))
        let fast = matmul(a, b, transposeB: true)
        let exact = matmul(Tensor<Double>(a), Tensor<Double>(b), transposeB: true)
        #expect(fast.shape == [2, 7, 65])
        #expect(maxError(fast.scalars, exact.scalars.map { Float($0) }) <= 1e-5)
    }
}
