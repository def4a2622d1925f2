// `glam bench gemm`: SGEMM timing, square products or one product of a given shape and layout (the
// "The glam command line" article). The comparison with numpy's OpenBLAS, measured in the same run,
// is Scripts/bench_gemm.py.

import Dispatch
import GLaM

/// `glam bench gemm`.
enum BenchGEMM: Benchmark {
    static let name = "gemm"
    static let usage =
        "glam bench gemm [--size N | --shape M,N,K[,BATCH] [--layout nn|tn|nt|tt]] [--threads T] [--repeats R] [--tile 6x16|12x32] [--json]"
    /// Without --repeats: runs until this many seconds (and 3 runs), at most this many runs.
    static let timing = (minimumSeconds: 0.5, maximumRuns: 5000)
    static let help = """
        USAGE: \(usage)

        Times C = A·B for square n × n Float matrices with the packed multithreaded GEMM.
        Without --size: n = 256, 512, 1024, 2048. Without --threads: 1 and all CPUs.
        Each case runs once to warm up, then R times (default: until \(timing.minimumSeconds) s, at least 3, at most \(timing.maximumRuns));
        reported are the best and the median GFLOP/s (2n³ floating-point operations per product).

        OPTIONS:
          --size N      matrix size (1...8192)
          --shape M,N,K[,BATCH]  one product C = op(A)·op(B) instead, op(A) [M, K], op(B) [K, N],
                        BATCH of them; --layout tn reads A transposed, nt B, tt both (the model's
                        backward layouts)
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --tile MRxNR  the register tile (default: the one timed fastest on this CPU; see GEMMTile)
          --json        one JSON object per line: m, n, k, batch, layout, threads, gflops (best),
                        median_gflops, repeats, fma (whether built with -DGLAM_FMA), tile
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Benchmarking.arguments(
            arguments, benchmark: name, options: ["size", "shape", "layout", "threads", "repeats", "tile"])
        var products = (try parsed.integer("size", in: 1...8192).map { [$0] } ?? [256, 512, 1024, 2048]).map {
            Product(m: $0, n: $0, k: $0)
        }
        if let shape = try parsed.integerList("shape", in: 1...65536) {
            guard parsed.value("size") == nil else {
                throw UsageError("bench gemm: --size and --shape cannot be combined (--shape sets M, N and K)")
            }
            guard shape.count == 3 || shape.count == 4 else {
                throw UsageError("bench gemm: --shape must be M,N,K or M,N,K,BATCH, got '\(parsed.value("shape")!)'")
            }
            let layout = parsed.value("layout") ?? "nn"
            guard ["nn", "tn", "nt", "tt"].contains(layout) else {
                throw UsageError("bench gemm: --layout must be nn, tn, nt or tt, got '\(layout)'")
            }
            let product = Product(m: shape[0], n: shape[1], k: shape[2], batch: shape.count == 4 ? shape[3] : 1, layout: layout)
            let operands = [[product.m, product.k], [product.k, product.n], [product.m, product.n]].map {
                CheckedSize.product([product.batch] + $0)
            }
            guard operands.allSatisfy({ $0 <= 1 << 28 }) else {
                throw UsageError("bench gemm: --shape \(parsed.value("shape")!) is larger than 2^28 elements in A, B or C")
            }
            // A, B, C, and the packed copies of A and B.
            let bytes = CheckedSize.product([4, CheckedSize.sum(operands + operands.prefix(2))])
            guard MemoryEstimate.fits(bytes) else {
                throw UsageError(
                    "bench: --shape \(parsed.value("shape")!) needs about \(MemoryEstimate.describe(bytes)), more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory))"
                )
            }
            products = [product]
        }
        let cpus = Parallelism.threadCount
        let threadCounts = try parsed.integer("threads", in: 1...256).map { [$0] } ?? (cpus > 1 ? [1, cpus] : [1])
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let json = parsed.has("json")
        let tile: GEMMTile
        if let name = parsed.value("tile") {
            guard let named = GEMMTile(rawValue: name) else {
                throw UsageError(
                    "bench gemm: --tile must be one of \(GEMMTile.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
            }
            tile = named
        } else {
            tile = .selected
        }
        if !json {
            output.line(
                "SGEMM C = A·B, \(parsed.value("shape") == nil ? "square n" : "op(A) [M, K] · op(B) [K, N], BATCH products"), \(GEMM.isFused ? "fused multiply-add (-DGLAM_FMA)" : "unfused multiply-add (built without -DGLAM_FMA)"), tile \(tile.rawValue) (\(parsed.value("tile") == nil ? GEMMTile.selectionReason : "--tile"))"
            )
            let block = 2.0 * Double(GEMM.rowBlock * GEMMTile.timedColumns * GEMM.depthBlock)
            let kernels = GEMMTile.timeKernels().map { "\($0.tile.rawValue) \(Benchmarking.rounded(block / $0.seconds / 1e9))" }
            output.line(
                "micro-kernels on one cache-resident \(GEMM.rowBlock)×\(GEMMTile.timedColumns)×\(GEMM.depthBlock) block, GFLOP/s: \(kernels.joined(separator: ", "))"
            )
            output.line("    n  threads  best GFLOP/s  median GFLOP/s  repeats")
        }
        for threads in threadCounts {
            for product in products {
                let result = measure(product, threads: threads, repeats: repeats, tile: tile)
                let isSquare = product.m == product.n && product.n == product.k && product.batch == 1 && product.layout == "nn"
                let label = isSquare ? "\(product.m)" : "\(product.m)×\(product.n)×\(product.k)×\(product.batch) \(product.layout)"
                if json {
                    output.line(
                        JSONText.line(
                            [
                                "m": product.m, "n": product.n, "k": product.k, "batch": product.batch, "layout": product.layout,
                                "threads": threads, "gflops": Benchmarking.rounded(result.best),
                                "median_gflops": Benchmarking.rounded(result.median), "repeats": result.repeats, "fma": GEMM.isFused,
                                "tile": tile.rawValue,
                            ] as [String: Any])
                    )
                } else {
                    output.line(
                        "\(Benchmarking.pad(label, 5))  \(Benchmarking.pad(threads, 7))  \(Benchmarking.pad(Benchmarking.rounded(result.best), 12))  \(Benchmarking.pad(Benchmarking.rounded(result.median), 14))  \(Benchmarking.pad(result.repeats, 7))"
                    )
                }
            }
        }
        return 0
    }

    /// A product to time: `C[b] = op(A[b]) · op(B[b])` with `op(A)` `[m, k]`, `op(B)` `[k, n]`.
    struct Product {
        var m: Int, n: Int, k: Int, batch = 1
        /// "nn", "tn" (A read transposed), "nt" (B read transposed) or "tt".
        var layout = "nn"
        var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(batch) }
    }

    static func measure(n: Int, threads: Int, repeats: Int?, tile: GEMMTile = .selected) -> (best: Double, median: Double, repeats: Int) {
        measure(Product(m: n, n: n, k: n), threads: threads, repeats: repeats, tile: tile)
    }

    static func measure(_ product: Product, threads: Int, repeats: Int?, tile: GEMMTile = .selected) -> (
        best: Double, median: Double, repeats: Int
    ) {
        let (m, n, k, batch) = (product.m, product.n, product.k, product.batch)
        let (transposeA, transposeB) = (product.layout.first == "t", product.layout.last == "t")
        var generator = SeededGenerator(seed: UInt64(m * 31 + n * 7 + k))
        let a = (0..<(batch * m * k)).map { _ in generator.nextUniform() - 0.5 }
        let b = (0..<(batch * k * n)).map { _ in generator.nextUniform() - 0.5 }
        var c = [Float](repeating: 0, count: batch * m * n)
        var seconds: [Double] = []
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    func once() -> Double {
                        let start = DispatchTime.now().uptimeNanoseconds
                        GEMM.multiply(
                            m: m, n: n, k: k, batch: batch,
                            a: MatrixOperand(
                                rowMajor: pa.baseAddress!, rows: transposeA ? k : m, columns: transposeA ? m : k, transposed: transposeA,
                                batchStride: m * k),
                            b: MatrixOperand(
                                rowMajor: pb.baseAddress!, rows: transposeB ? n : k, columns: transposeB ? k : n, transposed: transposeB,
                                batchStride: k * n),
                            c: pc.baseAddress!, ldc: n, cBatchStride: m * n, threads: threads, tile: tile)
                        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                    }
                    seconds = Benchmarking.timings(
                        repeats: repeats, minimumSeconds: timing.minimumSeconds, maximumRuns: timing.maximumRuns, once)
                }
            }
        }
        // A timing of a wrong product is worthless: sixteen entries (the corners and seeded others)
        // recomputed in Double from the operands as stored.
        var picker = SeededGenerator(seed: 17)
        let corners = [(0, 0, 0), (batch - 1, m - 1, n - 1), (0, m - 1, 0), (batch - 1, 0, n - 1)]
        let picked = (0..<12).map { _ in
            (Int(picker.next() % UInt64(batch)), Int(picker.next() % UInt64(m)), Int(picker.next() % UInt64(n)))
        }
        for (item, i, j) in corners + picked {
            var sum = 0.0, magnitude = 0.0
            for p in 0..<k {
                let x = Double(a[item * m * k + (transposeA ? p * m + i : i * k + p)])
                let y = Double(b[item * k * n + (transposeB ? j * k + p : p * n + j)])
                sum += x * y
                magnitude += abs(x * y)
            }
            let got = Double(c[item * m * n + i * n + j])
            precondition(
                abs(got - sum) <= 1e-5 * magnitude + 1e-30,
                "bench gemm: the product is wrong at item \(item), row \(i), column \(j): \(got), expected \(sum)")
        }
        let fastest = Benchmarking.minimumAndMedian(seconds)
        return (product.flops / fastest.minimum / 1e9, product.flops / fastest.median / 1e9, seconds.count)
    }
}
