// `glam bench gemm`: square SGEMM timing (contracts.md section 4). The comparison with numpy's
// OpenBLAS, measured in the same run, is Scripts/bench_gemm.py.

import Dispatch
import GLaM

enum BenchCommand: Subcommand {
    static let name = "bench"
    static let summary = "Time kernels: 'glam bench gemm' (square SGEMM, GFLOP/s)."
    static let help = """
        USAGE: glam bench gemm [--size N] [--threads T] [--repeats R] [--json]

        Times C = A·B for square n × n Float matrices with the packed multithreaded GEMM.
        Without --size: n = 256, 512, 1024, 2048. Without --threads: 1 and all CPUs.
        Each case runs once to warm up, then R times (default: until 0.5 s, at least 3, at most 50);
        reported are the best and the median GFLOP/s (2n³ floating-point operations per product).

        OPTIONS:
          --size N      matrix size (1...8192)
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --json        one JSON object per line: m, n, k, threads, gflops (best), median_gflops,
                        repeats, fma (whether built with -DGLAM_FMA)
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(arguments, command: "bench", options: ["size", "threads", "repeats"], flags: ["json"])
        guard parsed.positionals == ["gemm"] else {
            throw UsageError("bench: expected 'glam bench gemm', got '\(parsed.positionals.joined(separator: " "))'")
        }
        let sizes = try parsed.integer("size", in: 1...8192).map { [$0] } ?? [256, 512, 1024, 2048]
        let cpus = Parallelism.threadCount
        let threadCounts = try parsed.integer("threads", in: 1...256).map { [$0] } ?? (cpus > 1 ? [1, cpus] : [1])
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let json = parsed.has("json")
        if !json {
            output.line(
                "SGEMM C = A·B, square n, \(GEMM.isFused ? "fused multiply-add (-DGLAM_FMA)" : "unfused multiply-add (built without -DGLAM_FMA)")"
            )
            output.line("    n  threads  best GFLOP/s  median GFLOP/s  repeats")
        }
        for threads in threadCounts {
            for n in sizes {
                let result = measure(n: n, threads: threads, repeats: repeats)
                if json {
                    output.line(
                        #"{"m": \#(n), "n": \#(n), "k": \#(n), "threads": \#(threads), "gflops": \#(rounded(result.best)), "median_gflops": \#(rounded(result.median)), "repeats": \#(result.repeats), "fma": \#(GEMM.isFused)}"#
                    )
                } else {
                    output.line(
                        "\(pad(n, 5))  \(pad(threads, 7))  \(pad(rounded(result.best), 12))  \(pad(rounded(result.median), 14))  \(pad(result.repeats, 7))"
                    )
                }
            }
        }
        return 0
    }

    static func measure(n: Int, threads: Int, repeats: Int?) -> (best: Double, median: Double, repeats: Int) {
        var generator = SeededGenerator(seed: UInt64(n))
        let a = (0..<(n * n)).map { _ in generator.nextUniform() - 0.5 }
        let b = (0..<(n * n)).map { _ in generator.nextUniform() - 0.5 }
        var c = [Float](repeating: 0, count: n * n)
        var seconds: [Double] = []
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    func once() -> Double {
                        let start = DispatchTime.now().uptimeNanoseconds
                        GEMM.multiply(
                            m: n, n: n, k: n,
                            a: MatrixOperand(rowMajor: pa.baseAddress!, rows: n, columns: n),
                            b: MatrixOperand(rowMajor: pb.baseAddress!, rows: n, columns: n),
                            c: pc.baseAddress!, ldc: n, threads: threads)
                        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                    }
                    _ = once()
                    var total = 0.0
                    while true {
                        let t = once()
                        seconds.append(t)
                        total += t
                        if let repeats {
                            if seconds.count >= repeats { break }
                        } else if (total >= 0.5 && seconds.count >= 3) || seconds.count >= 50 {
                            break
                        }
                    }
                }
            }
        }
        let flops = 2 * Double(n) * Double(n) * Double(n)
        let sorted = seconds.sorted()
        return (flops / sorted[0] / 1e9, flops / sorted[sorted.count / 2] / 1e9, seconds.count)
    }

    static func rounded(_ x: Double) -> Double { (x * 10).rounded() / 10 }

    static func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
        let text = value.description
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
