// `glam bench decode`: cached incremental decoding, generated tokens per second (the "The glam
// command line" article).

import Dispatch
import GLaM

/// `glam bench decode`.
enum BenchDecode: Benchmark {
    static let name = "decode"
    static let usage =
        "glam bench decode [--config NAME] [--batch B1,B2,...] [--prompt P] [--tokens N] [--threads T] [--repeats R] [--json]"
    /// The model, batch sizes, prompt and tokens when no option is given.
    static let defaults = (config: "small", batches: [1, 8], prompt: 64, tokens: 64)
    /// Without --repeats: runs until this many seconds (and 3 runs), at most this many runs.
    static let timing = (minimumSeconds: 1.0, maximumRuns: 20)
    static let help = """
        USAGE: \(usage)

        Times cached incremental decoding: a P-token prompt is prefilled (untimed), then N steps each
        feed one token per row. Defaults: '\(defaults.config)', B = \(defaults.batches.map(String.init).joined(separator: " and ")), P = \(defaults.prompt), N = \(defaults.tokens).
        Each batch size runs once to warm up, then R times (default: until \(timing.minimumSeconds) s and at least 3,
        at most \(timing.maximumRuns)).
        Reported: best and median generated tokens/s (B·N per run).

        OPTIONS:
          --config NAME  a configuration 'glam params' lists
          --batch B1,B2,...  batch sizes, each timed (1...1024, distinct)
          --prompt P    prompt tokens (1...65536)
          --tokens N    generated tokens (1...65536)
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --json        one JSON object per batch size: config, batch, prompt, tokens, threads,
                        tokens_per_second, median_tokens_per_second, repeats
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Benchmarking.arguments(
            arguments, benchmark: name, options: ["config", "batch", "prompt", "tokens", "threads", "repeats"])
        let name = parsed.value("config") ?? defaults.config
        guard let configuration = ModelConfiguration.named(name) else {
            throw UsageError("bench decode: unknown configuration '\(name)' (see 'glam params')")
        }
        let batches = try parsed.distinctIntegerList("batch", in: 1...1024) ?? defaults.batches
        let prompt = try parsed.integer("prompt", in: 1...65536) ?? defaults.prompt
        let count = try parsed.integer("tokens", in: 1...65536) ?? defaults.tokens
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let repeats = try parsed.integer("repeats", in: 1...1000)
        for b in batches {
            // Bounded by a training step's estimate at T = prompt + tokens: decoding keeps less (the
            // KV cache, one chunk's attention maps), so what passes here fits.
            let estimate = MemoryEstimate(configuration: configuration, batchSize: b, length: prompt + count)
            guard estimate.fits() else {
                throw UsageError(
                    "bench: \(name) decode with B = \(b) and \(prompt) + \(count) positions may need up to \(MemoryEstimate.describe(estimate.totalBytes)), more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory))"
                )
            }
        }
        let parameters = try ModelParameters(configuration: configuration, seed: 1)
        for b in batches {
            let (promptTokens, steps) = workload(batch: b, prompt: prompt, tokens: count, vocabulary: configuration.vocabSize)
            func once() throws -> Double {
                var decoder = IncrementalDecoder(parameters: parameters, batchSize: b)
                _ = try decoder.prefill(promptTokens)
                let start = DispatchTime.now().uptimeNanoseconds
                for tokens in steps { _ = try decoder.step(tokens) }
                return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            }
            let seconds = try Benchmarking.timings(
                repeats: repeats, minimumSeconds: timing.minimumSeconds, maximumRuns: timing.maximumRuns, once
            )
            let fastest = Benchmarking.minimumAndMedian(seconds)
            let (best, median) = (Double(b * count) / fastest.minimum, Double(b * count) / fastest.median)
            if parsed.has("json") {
                output.line(
                    JSONText.line(
                        [
                            "config": name, "batch": b, "prompt": prompt, "tokens": count, "threads": Parallelism.threadCount,
                            "tokens_per_second": best.rounded(), "median_tokens_per_second": median.rounded(), "repeats": seconds.count,
                        ] as [String: Any])
                )
            } else {
                output.line(
                    "\(name) decode B=\(b), \(count) tokens after a \(prompt)-token prompt (KV cache): best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) over \(seconds.count) runs"
                )
            }
        }
        return 0
    }

    /// What one timed run feeds: a prompt of `b · prompt` ids (row-major `[B, P]`), then `tokens`
    /// decoding steps of one id per row, all seeded ids in `0..<vocabulary`. The rate reported is
    /// B · tokens over the seconds of the decoding steps alone.
    static func workload(batch b: Int, prompt: Int, tokens count: Int, vocabulary v: Int) -> (prompt: [Int], steps: [[Int]]) {
        var generator = SeededGenerator(seed: 3)
        let promptTokens = (0..<(b * prompt)).map { _ in Int(generator.next() % UInt64(v)) }
        let steps = (0..<count).map { _ in (0..<b).map { _ in Int(generator.next() % UInt64(v)) } }
        return (promptTokens, steps)
    }
}
