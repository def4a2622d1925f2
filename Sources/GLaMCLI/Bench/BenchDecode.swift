// `glam bench decode`: cached incremental decoding, generated tokens per second (the "The glam
// command line" article).

import Dispatch
import Foundation
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

        Times cached incremental decoding: a P-token prompt is prefilled in chunks of \(IncrementalDecoder.prefillChunk) positions
        (as generate does; timed apart), then N steps each feed one token per row. Defaults: '\(defaults.config)', B = \(defaults.batches.map(String.init).joined(separator: " and ")), P = \(defaults.prompt), N = \(defaults.tokens).
        Each batch size runs once to warm up, then R times (default: until \(timing.minimumSeconds) s and at least 3,
        at most \(timing.maximumRuns)).
        Reported: best and median generated tokens/s (B·N per run), and beside them two bounds, timed in
        the same run on the same threads (best of 20 reads):
          bandwidth bound: B over the time to read, once, the weights a step uses (every weight, and 2·B
            of each MoE layer's experts), read again and again, so from the caches when they fit;
          memory bound: B over the time to read those weights and a mean step's KV cache (keys and values
            of B rows at P + (N + 1)/2 positions), each read following a read of other data twice the size
            of the last-level cache, so from memory, as a step finds them when the model and its cache
            together outgrow that cache.

        OPTIONS:
          --config NAME  a configuration 'glam params' lists
          --batch B1,B2,...  batch sizes, each timed (1...1024, distinct)
          --prompt P    prompt tokens (1...65536)
          --tokens N    generated tokens (1...65536)
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --json        one JSON object per batch size: config, batch, prompt, tokens, threads,
                        tokens_per_second, median_tokens_per_second, repeats, weight_bytes_per_step,
                        read_gigabytes_per_second, bandwidth_bound_tokens_per_second,
                        cache_bytes_per_step, memory_read_gigabytes_per_second,
                        memory_bound_tokens_per_second, prefill_tokens_per_second (B·P over the best
                        prefill)
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
            // Decoding, and the bounds' buffers: the weights laid end to end, a stand-in for the KV
            // cache and the data read between the memory bound's reads.
            let bytes = CheckedSize.sum([
                decodingBytes(configuration, batch: b, positions: prompt + count),
                CheckedSize.product([4, ParameterCount(configuration).total]),
                cacheBytesPerStep(configuration, batch: b, prompt: prompt, tokens: count), MemoryTraffic.evictionBytes(),
            ])
            guard MemoryEstimate.fits(bytes) else {
                throw UsageError(
                    "bench: \(name) decode with B = \(b) and \(prompt) + \(count) positions may need up to \(MemoryEstimate.describe(bytes)), more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory))"
                )
            }
        }
        let parameters = try ModelParameters(configuration: configuration, seed: 1)
        // The weights laid end to end, the source of the bounds' reads; for the memory bound, as
        // many floats as the largest mean KV cache, and data to read in between.
        let allWeights = parameters.weights.flatMap(\.weight.scalars)
        let largestCache = batches.map { cacheBytesPerStep(configuration, batch: $0, prompt: prompt, tokens: count) }.max()!
        let cacheStandIn = [Float](repeating: 1, count: largestCache / 4)
        let evicting = [Float](repeating: 1, count: MemoryTraffic.evictionBytes() / 4)
        for b in batches {
            let (promptTokens, steps) = workload(batch: b, prompt: prompt, tokens: count, vocabulary: configuration.vocabSize)
            var prefillSeconds: [Double] = []
            func once() throws -> Double {
                var decoder = IncrementalDecoder(parameters: parameters, batchSize: b)
                let prefillStart = DispatchTime.now().uptimeNanoseconds
                for chunk in chunks(promptTokens, batch: b, length: prompt) { _ = try decoder.prefill(chunk) }
                let start = DispatchTime.now().uptimeNanoseconds
                prefillSeconds.append(Double(start - prefillStart) * 1e-9)
                for tokens in steps { _ = try decoder.step(tokens) }
                return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            }
            let seconds = try Benchmarking.timings(
                repeats: repeats, minimumSeconds: timing.minimumSeconds, maximumRuns: timing.maximumRuns, once
            )
            let fastest = Benchmarking.minimumAndMedian(seconds)
            // The warm-up run's prefill is not counted.
            let prefill = Double(b * prompt) / prefillSeconds.suffix(seconds.count).min()!
            let (best, median) = (Double(b * count) / fastest.minimum, Double(b * count) / fastest.median)
            // The bound: B tokens per read of the weights a step needs, timed now, on as many threads.
            let bytes = weightBytesPerStep(configuration, batch: b)
            let read = MemoryTraffic.readSeconds(of: allWeights, range: 0..<(bytes / 4), threads: Parallelism.threadCount)
            let bound = Double(b) / read.seconds
            let cacheBytes = cacheBytesPerStep(configuration, batch: b, prompt: prompt, tokens: count)
            let (weightOnly, cacheOnly) = (bytes / 4, cacheBytes / 4)
            let fromMemory = MemoryTraffic.coldReadSeconds(
                of: [(allWeights, 0..<weightOnly), (cacheStandIn, 0..<cacheOnly)], evicting: evicting, threads: Parallelism.threadCount
            ).seconds
            let memoryBound = Double(b) / fromMemory
            let memoryRate = Double(bytes + cacheBytes) / fromMemory / 1e9
            if parsed.has("json") {
                output.line(
                    JSONText.line(
                        [
                            "config": name, "batch": b, "prompt": prompt, "tokens": count, "threads": Parallelism.threadCount,
                            "tokens_per_second": best.rounded(), "median_tokens_per_second": median.rounded(), "repeats": seconds.count,
                            "weight_bytes_per_step": bytes,
                            "read_gigabytes_per_second": (Double(bytes) / read.seconds / 1e7).rounded() / 100,
                            "bandwidth_bound_tokens_per_second": bound.rounded(),
                            "cache_bytes_per_step": cacheBytes, "memory_read_gigabytes_per_second": (memoryRate * 100).rounded() / 100,
                            "memory_bound_tokens_per_second": memoryBound.rounded(),
                            "prefill_tokens_per_second": prefill.rounded(),
                        ] as [String: Any])
                )
            } else {
                output.line(
                    "\(name) decode B=\(b), \(count) tokens after a \(prompt)-token prompt (KV cache): best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) over \(seconds.count) runs"
                )
                output.line(
                    "  prefill of the \(prompt)-token prompt\(b == 1 ? "" : "s") in chunks of \(IncrementalDecoder.prefillChunk) (as generate does): best \(Int(prefill.rounded())) tokens/s"
                )
                output.line(
                    "  bandwidth bound: \(Int(bound.rounded())) tokens/s (a step reads \(String(format: "%.1f", Double(bytes) / 1e6)) MB of weights; read once at \(String(format: "%.1f", Double(bytes) / read.seconds / 1e9)) GB/s on \(Parallelism.threadCount == 1 ? "1 thread" : "\(Parallelism.threadCount) threads")); best is \(String(format: "%.0f", 100 * best / bound))% of it"
                )
                output.line(
                    "  memory bound: \(Int(memoryBound.rounded())) tokens/s (those weights and the mean step's \(String(format: "%.1f", Double(cacheBytes) / 1e6)) MB of KV cache, read once from memory at \(String(format: "%.1f", memoryRate)) GB/s); best is \(String(format: "%.0f", 100 * best / memoryBound))% of it"
                )
            }
        }
        return 0
    }

    /// A generous bound on the memory of decoding `b` rows to `positions` positions, prefilled in
    /// chunks: the weights and the decoder's copy of Embᵀ; the KV cache, twice (a cache of B > 1
    /// rows is copied as it grows); and per chunk of `prefillChunk` positions, four attention maps
    /// `[B, N, chunk, L]` (logits, probabilities and scratch), 40 `[B, chunk, M]` activations, 8 of
    /// the hidden width and 4 of the logits `[B, chunk, V]` — 4 bytes each, overflow-checked.
    static func decodingBytes(_ c: ModelConfiguration, batch b: Int, positions l: Int) -> Int {
        let (product, sum) = (CheckedSize.product, CheckedSize.sum)
        let chunk = min(l, IncrementalDecoder.prefillChunk)
        let weights = sum(ParameterPath.all(in: c).map { product($0.shape(in: c)) } + [product([c.vocabSize, c.modelDim])])
        let cache = product([4, c.numLayers, b, l, c.numHeads, c.headDim])
        let maps = product([4, b, c.numHeads, chunk, l])
        let activations = product([
            b, chunk, sum([product([40, c.modelDim]), product([8, max(c.ffDim, 2 * c.moeHiddenDim)]), product([4, c.vocabSize])]),
        ])
        return product([4, sum([weights, cache, maps, activations])])
    }

    /// The bytes of weights one decoding step of `b` rows reads: every weight once, except each
    /// MoE layer's experts, of which at most 2·B (top-2 of each row's token) run.
    static func weightBytesPerStep(_ c: ModelConfiguration, batch b: Int) -> Int {
        ParameterPath.all(in: c).reduce(0) { total, path in
            let count = path.shape(in: c).reduce(1, *)
            return total + 4 * (path.isExpertWeight ? count / c.numExperts * min(c.numExperts, 2 * b) : count)
        }
    }

    /// The bytes of keys and values a mean decoding step reads from the KV cache: every layer's keys
    /// and values `[B, N, L, D]` each, at the mean L of N steps after a P-token prompt
    /// (P + (N + 1)/2: step i attends to P + i positions, i = 1…N), rounded down to whole floats.
    static func cacheBytesPerStep(_ c: ModelConfiguration, batch b: Int, prompt p: Int, tokens n: Int) -> Int {
        // Keys and values (2), at twice the mean L, halved: an exact number of floats.
        CheckedSize.product([4, CheckedSize.product([2, c.numLayers, b, c.numHeads, c.headDim, 2 * p + n + 1]) / 2])
    }

    /// The prompts `[B, P]` (row-major) as the successive prefills of at most
    /// `IncrementalDecoder.prefillChunk` positions each, every chunk `[B, chunk]` row-major.
    static func chunks(_ tokens: [Int], batch b: Int, length p: Int) -> [[Int]] {
        stride(from: 0, to: p, by: IncrementalDecoder.prefillChunk).map { start in
            let end = min(start + IncrementalDecoder.prefillChunk, p)
            return (0..<b).flatMap { row in tokens[(row * p + start)..<(row * p + end)] }
        }
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
