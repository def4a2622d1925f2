// `glam bench`: four benchmarks, each a subcommand with its own options and help (the "The glam
// command line" article): `gemm` (GFLOP/s), `moe` (routing tokens/s), `model` (tokens/s and MFU),
// `decode` (generated tokens/s). Performance goals are ratios against references measured in the
// same run (Scripts/bench_gemm.py, bench_moe.py, bench_train_jax.py), never timed tests.

import GLaM

enum BenchCommand: Subcommand {
    static let name = "bench"
    static let summary = "Time kernels: 'glam bench gemm' (GFLOP/s), 'bench moe' (routing), 'bench model' (tokens/s, MFU), 'bench decode'."
    static var benchmarks: [any Benchmark.Type] { [BenchGEMM.self, BenchMoE.self, BenchModel.self, BenchDecode.self] }

    static var help: String {
        """
        USAGE: glam bench <benchmark> [options]

        BENCHMARKS:
        \(benchmarks.map { "  " + $0.usage }.joined(separator: "\n"))

        Run 'glam bench <benchmark> --help' for a benchmark's options and what it reports.
        """
    }

    static func help(for arguments: [String]) -> String {
        benchmarks.first { $0.name == arguments.first }?.help ?? help
    }

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        guard let first = arguments.first, let benchmark = benchmarks.first(where: { $0.name == first }) else {
            let names = benchmarks.map { "'glam bench \($0.name)'" }
            throw UsageError(
                "bench: expected \(names.dropLast().joined(separator: ", ")) or \(names.last!), got '\(arguments.joined(separator: " "))'")
        }
        return try benchmark.run(Array(arguments.dropFirst()), output: &output)
    }
}
