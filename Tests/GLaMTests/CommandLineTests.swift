// The `glam` command line, run in-process: help, dispatch, exit statuses and the bench contract.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

/// Runs `glam` with `arguments`; returns (status, stdout, stderr).
func runGlam(_ arguments: [String]) -> (status: Int32, out: String, err: String) {
    final class Buffer: @unchecked Sendable { var text = "" }
    let out = Buffer(), err = Buffer()
    let status = CommandLineTool.run(arguments, output: Output(standard: { out.text += $0 }, error: { err.text += $0 }))
    return (status, out.text, err.text)
}

struct CommandLineTests {
    @Test func helpListsSubcommands() {
        let result = runGlam(["--help"])
        #expect(result.status == 0 && result.out.contains("bench") && result.err.isEmpty)
        #expect(runGlam([]).status == 0)
        #expect(runGlam(["bench", "--help"]).out.contains("glam bench gemm"))
    }

    @Test("bad usage exits 2 with a one-line message naming the problem")
    func badUsage() {
        let unknown = runGlam(["frobnicate"])
        #expect(unknown.status == 2 && unknown.err.contains("unknown subcommand 'frobnicate'"))
        let option = runGlam(["bench", "gemm", "--sise", "3"])
        #expect(option.status == 2 && option.err.contains("unknown option --sise"))
        let value = runGlam(["bench", "gemm", "--size", "abc"])
        #expect(value.status == 2 && value.err.contains("--size must be an integer"))
        let missing = runGlam(["bench", "gemm", "--threads"])
        #expect(missing.status == 2 && missing.err.contains("--threads needs a value"))
        let what = runGlam(["bench", "conv"])
        #expect(what.status == 2 && what.err.contains("expected 'glam bench gemm'"))
        for result in [unknown, option, value, missing, what] {
            #expect(result.err.split(separator: "\n").count == 1)
        }
    }

    @Test("the benchmarks' best and median: the smallest value, and the value with as many values below it as at or above it")
    func minimumAndMedian() {
        var generator = SeededGenerator(seed: 11)
        for count in 1...12 {
            // Distinct values in a shuffled order, so the median is one value and sorting matters.
            let values = (0..<count).map { Double($0) * 1.5 + 0.25 }.shuffled(using: &generator)
            let (minimum, median) = Benchmarking.minimumAndMedian(values)
            #expect(minimum == values.min())
            let below = values.filter { $0 < median }.count, atOrAbove = values.filter { $0 >= median }.count
            #expect(values.contains(median) && below == count / 2 && atOrAbove == count - count / 2, "\(count): \(values) → \(median)")
        }
        #expect(Benchmarking.minimumAndMedian([3, 3, 1, 3]) == (1, 3))
    }

    @Test("the benchmarks' runs: one warm-up, then R runs, or until at least the minimum time in all and 3 runs, at most the maximum")
    func timingRule() {
        for (seconds, minimum, maximum) in [
            (0.5, 1.5, 30), (0.5, 1.4, 30), (0.5, 1.6, 30), (1.0, 0.0, 30), (0.25, 5.0, 7), (2.0, 1.0, 2), (0.0, 0.0, 9),
        ] {
            var calls = 0
            let timed = Benchmarking.timings(repeats: nil, minimumSeconds: minimum, maximumRuns: maximum) {
                calls += 1
                return seconds
            }
            // The first n with (n·seconds ≥ minimum and n ≥ 3) or n ≥ maximum, computed as the rule says.
            let expected = (1...).first { n in (Double(n) * seconds >= minimum && n >= 3) || n >= maximum }!
            #expect(
                timed.count == expected && calls == expected + 1,
                "\(seconds) s each, minimum \(minimum), at most \(maximum): \(timed.count)")
        }
        var calls = 0
        #expect(
            Benchmarking.timings(repeats: 4, minimumSeconds: 100, maximumRuns: 2) {
                calls += 1; return 1
            }.count == 4 && calls == 5)
    }

    @Test("bench decode's bound reads exactly the first n floats once per pass, whatever the thread count and n")
    func decodeBoundReadsItsFloats() {
        // Small integers: every partial sum is exact, so any order gives the same total.
        let values = (0..<1000).map { Float($0 % 7) }
        for (floats, threads) in [(1000, 1), (1000, 2), (999, 3), (65, 2), (64, 1), (1, 2)] {
            let read = MemoryTraffic.readSeconds(of: values, range: 0..<floats, threads: threads, passes: 3)
            #expect(read.sum == 3 * values[0..<floats].reduce(0, +), "\(floats) floats on \(threads) threads")
            #expect(read.seconds > 0 && read.seconds.isFinite)
        }
    }

    @Test("bench decode's memory bound reads its ranges once per pass, each pass after the data that evicts them")
    func decodeMemoryBoundReadsItsRanges() {
        let values = (0..<1000).map { Float($0 % 5) }, others = (0..<70).map { Float($0 % 3) }
        let evicting = [Float](repeating: 1, count: 300)
        for (ranges, threads) in [([0..<10, 20..<25], 1), ([0..<1000], 2), ([3..<3, 999..<1000], 3), ([100..<700, 0..<64], 2)] {
            // Each range of `values`, then all of `others`: every float of them, once a pass.
            let sources = ranges.map { (values, $0) } + [(others, 0..<70)]
            let read = MemoryTraffic.coldReadSeconds(of: sources, evicting: evicting, threads: threads, passes: 3)
            let once = ranges.map { values[$0].reduce(0, +) }.reduce(0, +) + others.reduce(0, +)
            #expect(read.sum == 3 * once, "\(ranges) on \(threads) threads")
            #expect(read.seconds >= 0 && read.seconds.isFinite)
        }
    }

    @Test("bench decode's mean KV cache per step is the mean over the N steps of every layer's keys and values at P + i positions")
    func decodeCacheBytes() throws {
        for name in ["tiny", "small", "medium"] {
            let c = try #require(ModelConfiguration.named(name))
            for (b, p, n) in [(1, 64, 64), (8, 64, 64), (3, 1, 1), (2, 10_000, 17), (1024, 65536, 65536)] {
                // Step i (1…N) attends to P + i positions: keys and values [B, N, P + i, D] per layer.
                let perPosition = 4 * 2 * c.numLayers * b * c.numHeads * c.headDim
                let total = (1...n).reduce(0) { $0 + perPosition * (p + $1) }
                #expect(BenchDecode.cacheBytesPerStep(c, batch: b, prompt: p, tokens: n) * n == total, "\(name) B \(b) P \(p) N \(n)")
            }
        }
    }

    @Test("bench decode reads sysfs cache sizes in bytes and evicts at least twice the largest cache")
    func decodeEvictionSize() {
        #expect(MemoryTraffic.cacheSize("32768K\n") == 32 << 20)
        #expect(
            MemoryTraffic.cacheSize("2M") == 2 << 20 && MemoryTraffic.cacheSize("1G") == 1 << 30 && MemoryTraffic.cacheSize("512") == 512)
        #expect(["", "K", "-4K", "12Q", "9999999999999999999G", "1.5M"].allSatisfy { MemoryTraffic.cacheSize($0) == nil })
        // At least twice every cache this machine lists (and 64 MiB), so that it evicts them all.
        let listed = (0..<8).compactMap { index in
            (try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cache/index\(index)/size", encoding: .utf8))
                .flatMap(MemoryTraffic.cacheSize)
        }
        #expect(MemoryTraffic.evictionBytes() >= max(64 << 20, 2 * (listed.max() ?? 0)))
    }

    @Test("bench model's memory floor: 4 reads and 2 writes of the extra expert bytes, every MoE layer's wi and wo of all E experts")
    func expertMemoryFloor() throws {
        #expect(abs(BenchModel.memoryFloor(extraBytes: 1_000_000_000, firstStep: 1, read: 4e9, write: 2e9) - 3) < 1e-12)
        #expect(BenchModel.memoryFloor(extraBytes: 0, firstStep: 0.25, read: 1e9, write: 1e9) == 1)
        for name in ["tiny", "small", "medium"] {
            let c = try #require(ModelConfiguration.named(name))
            let moe = (0..<c.numLayers).filter { c.isMoELayer($0) }.count
            for e in [1, 8, 64] {
                #expect(BenchModel.expertWeightBytes(c.withExperts(e)) == 4 * moe * e * 2 * c.modelDim * c.moeHiddenDim, "\(name) E = \(e)")
            }
        }
    }

    @Test("memory writes store every element once per pass, whatever the thread count")
    func coldWritesStoreEveryElement() {
        let evicting = [Float](repeating: 1, count: 100)
        for (count, threads) in [(1000, 1), (1000, 2), (17, 3), (16, 2), (1, 1)] {
            var target = [Float](repeating: 0, count: count)
            let seconds = MemoryTraffic.coldWriteSeconds(into: &target, evicting: evicting, threads: threads, passes: 3)
            #expect(target.allSatisfy { $0 == 3 } && seconds >= 0 && seconds.isFinite, "\(count) floats on \(threads) threads")
        }
    }

    @Test("bench decode's bound counts every weight once and 2·B of each MoE layer's E experts (all of them once 2·B ≥ E)")
    func decodeWeightBytes() throws {
        for name in ["tiny", "small", "small-dense", "medium"] {
            let c = try #require(ModelConfiguration.named(name))
            let (v, m, nd, h, e, hm) = (c.vocabSize, c.modelDim, c.numHeads * c.headDim, c.ffDim, c.numExperts, c.moeHiddenDim)
            let moe = (0..<c.numLayers).filter { c.isMoELayer($0) }.count, dense = c.numLayers - moe
            for b in [1, 2, 3, 8, 64] {
                let experts = min(e, 2 * b)
                let floats =
                    v * m + m + c.numLayers * (2 * m + 4 * m * nd + c.numHeads * c.relativeBuckets) + dense * 3 * m * h
                    + moe * (m * e + experts * 2 * m * hm)
                #expect(BenchDecode.weightBytesPerStep(c, batch: b) == 4 * floats, "\(name) B = \(b)")
            }
        }
    }

    @Test("bench decode feeds a P-token prompt per row, then exactly N steps of one id per row, all in the vocabulary")
    func decodeWorkload() {
        for (b, p, n, v) in [(1, 1, 1, 2), (1, 64, 64, 260), (8, 3, 5, 7), (3, 10, 1, 1000)] {
            let work = BenchDecode.workload(batch: b, prompt: p, tokens: n, vocabulary: v)
            #expect(work.prompt.count == b * p && work.steps.count == n && work.steps.allSatisfy { $0.count == b }, "\(b) \(p) \(n)")
            #expect((work.prompt + work.steps.joined()).allSatisfy { (0..<v).contains($0) })
            let again = BenchDecode.workload(batch: b, prompt: p, tokens: n, vocabulary: v)
            #expect(again.prompt == work.prompt && again.steps == work.steps)
        }
    }

    @Test("the thread-scaling benchmark alternates one thread and T threads, and returns each one's timings under its name")
    func alternateThreads() {
        let saved = Parallelism.threadCount
        defer { Parallelism.threadCount = saved }
        for (threads, rounds) in [(2, 3), (5, 1), (1, 2)] {
            var order: [Int] = []
            let timed = Benchmarking.alternate(oneThreadAnd: threads, rounds: rounds) {
                order.append(Parallelism.threadCount)
                return Double(Parallelism.threadCount)
            }
            // A warm-up round, then `rounds` rounds, each one thread then T threads.
            #expect(order == Array([[Int]](repeating: [1, threads], count: rounds + 1).joined()))
            #expect(timed.oneThread == [Double](repeating: 1, count: rounds))
            #expect(timed.threads == [Double](repeating: Double(threads), count: rounds))
        }
    }

    @Test("bench gemm --json prints one object per line with m, n, k, threads, gflops")
    func benchJSON() throws {
        let result = runGlam(["bench", "gemm", "--size", "64", "--threads", "2", "--repeats", "2", "--json"])
        #expect(result.status == 0)
        let lines = result.out.split(separator: "\n")
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["m"] as? Int == 64 && object["n"] as? Int == 64 && object["k"] as? Int == 64)
        #expect(object["threads"] as? Int == 2)
        #expect((object["gflops"] as? Double ?? 0) > 0)
    }

    @Test("bench gemm without --threads times 1 thread and all CPUs, as its help says")
    func benchGEMMDefaultThreads() throws {
        // The real binary, in its own process: in this one, other tests set the thread count.
        let process = Process()
        process.executableURL = try CrashTests.glamExecutable()
        process.arguments = ["bench", "gemm", "--size", "8", "--repeats", "1", "--json"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        let threads = try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["threads"] as? Int
        }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        #expect(threads == (cpus > 1 ? [1, cpus] : [1]), "\(threads) on \(cpus) CPUs")
    }

    @Test("bench gemm's table: a header naming the product and the tile, column titles, and each row labelled by its sizes")
    func benchGEMMTable() throws {
        let square = runGlam(["bench", "gemm", "--size", "8", "--threads", "1", "--repeats", "1"])
        try #require(square.status == 0, "\(square.err)")
        let lines = square.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")  // header, kernels, column titles, one row
        #expect(lines.first?.hasPrefix("SGEMM C = A·B, square n") == true && lines[0].contains("tile "))
        #expect(lines.contains { $0.hasPrefix("micro-kernels on one cache-resident") })
        #expect(lines.contains { $0.contains("n  threads  best GFLOP/s  median GFLOP/s  repeats") })
        #expect(lines.last?.split(separator: " ").first == "8" && lines.last?.split(separator: " ").dropFirst().first == "1")
        let shaped = runGlam(["bench", "gemm", "--shape", "3,5,7,2", "--layout", "tn", "--threads", "1", "--repeats", "1"])
        try #require(shaped.status == 0, "\(shaped.err)")
        #expect(shaped.out.contains("op(A) [M, K] · op(B) [K, N], BATCH products"))
        #expect(shaped.out.split(separator: "\n").last?.hasPrefix("3×5×7×2 tn") == true, "\(shaped.out)")
        // A row is labelled by n alone only for a single square product in the plain layout.
        for (shape, layout, label) in [("8,8,8,1", "tn", "8×8×8×1 tn"), ("8,8,8,2", "nn", "8×8×8×2 nn"), ("8,8,4,1", "nn", "8×8×4×1 nn")] {
            let result = runGlam(["bench", "gemm", "--shape", shape, "--layout", layout, "--threads", "1", "--repeats", "1"])
            #expect(result.out.split(separator: "\n").last?.hasPrefix(label + " ") == true, "\(result.out)")
        }
        let plain = runGlam(["bench", "gemm", "--shape", "8,8,8,1", "--layout", "nn", "--threads", "1", "--repeats", "1"])
        #expect(plain.out.split(separator: "\n").last?.split(separator: " ").first == "8", "\(plain.out)")
    }

    @Test("bench moe --json reports tokens per second; bad options exit 2")
    func benchMoE() throws {
        let result = runGlam([
            "bench", "moe", "--groups", "2", "--group-size", "64", "--experts", "8", "--model-dim", "16", "--repeats", "1", "--json",
        ])
        #expect(result.status == 0, "\(result.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        #expect((object["tokens_per_second"] as? Double ?? 0) > 0 && object["experts"] as? Int == 8)
        #expect(runGlam(["bench", "moe", "--implementation", "sparse"]).status == 2)
        let model = runGlam(["bench", "model", "--config", "tiny", "--batch", "1", "--length", "8", "--repeats", "1", "--json"])
        #expect(model.status == 0, "\(model.err)")
        let rows = try model.out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(rows.map { $0["mode"] as? String } == ["forward", "forward+backward", "train step"])
        #expect(rows.allSatisfy { ($0["mfu"] as? Double ?? 0) > 0 && ($0["gemm_peak_gflops"] as? Double ?? 0) > 0 })
        // MFU is the model FLOP rate over the measured GEMM peak: tokens/s × FLOPs a token (3× the
        // forward's with the backward) / peak, which no run exceeds.
        let flops = try #require(ModelConfiguration.named("tiny")).forwardFLOPsPerToken(length: 8)
        for row in rows {
            let (mfu, rate, peak) = (
                row["mfu"] as? Double ?? -1, row["tokens_per_second"] as? Double ?? -1, row["gemm_peak_gflops"] as? Double ?? -1
            )
            let expected = rate * flops * (row["mode"] as? String == "forward" ? 1 : 3) / (peak * 1e9)
            #expect(mfu <= 1 && abs(mfu - expected) <= 5e-4 + 0.02 * expected, "\(row)")
        }
        let sweep = runGlam(["bench", "model", "--config", "tiny", "--batch", "1", "--length", "8", "--repeats", "1", "--experts", "4,16"])
        #expect(sweep.status == 0, "\(sweep.err)")
        #expect(sweep.out.contains("tiny E=16 B=1 T=8 train step") && sweep.out.contains("train step time at E = 16 over E = 4"))
        // The floor: 12 more experts' bytes, at least 1 (the first's step) plus their traffic.
        let floorLine = try #require(sweep.out.split(separator: "\n").first { $0.contains("its memory floor: ") })
        let floor = try #require(Double(floorLine.split(separator: " ")[3]))
        let tiny = try #require(ModelConfiguration.named("tiny"))
        let extra = Double(BenchModel.expertWeightBytes(tiny.withExperts(16)) - BenchModel.expertWeightBytes(tiny.withExperts(4)))
        #expect(
            floor > 1 && floor.isFinite && floorLine.contains(String(format: "the %.1f MB more expert weights", extra / 1e6)),
            "\(floorLine)")
        // The rates it used: memory's, timed in the run, positive and finite.
        let rates = floorLine.split(separator: "this run's ").last!.split(separator: " ")
        let (read, written) = (try #require(Double(rates[0])), try #require(Double(rates[4])))
        #expect(read > 0 && read.isFinite && written > 0 && written.isFinite && rates[1] == "GB/s" && rates[6] == "written", "\(floorLine)")
        #expect(runGlam(["bench", "model", "--config", "tiny-dense", "--experts", "4"]).status == 2)
        // Fewer experts than the first: a ratio, and no floor (it bounds only added experts).
        let fewer = runGlam(["bench", "model", "--config", "tiny", "--batch", "1", "--length", "8", "--repeats", "1", "--experts", "16,4"])
        #expect(fewer.status == 0 && fewer.out.contains("train step time at E = 4 over E = 16") && !fewer.out.contains("memory floor"))
        // --scaling: 1 thread against T, paired runs, one row per mode with both speeds.
        let scaling = runGlam([
            "bench", "model", "--config", "tiny", "--batch", "1", "--length", "8", "--repeats", "2", "--threads", "2", "--scaling",
            "--json",
        ])
        #expect(scaling.status == 0, "\(scaling.err)")
        let scaled = try scaling.out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(scaled.map { $0["mode"] as? String } == ["forward", "forward+backward", "train step"])
        #expect(scaled.allSatisfy { $0["threads"] as? Int == 2 && $0["repeats"] as? Int == 2 })
        for row in scaled {
            let one = try #require(row["tokens_per_second_1_thread"] as? Double), many = try #require(row["tokens_per_second"] as? Double)
            let speedUp = try #require(row["speed_up"] as? Double)
            #expect(one > 0 && many > 0 && abs(speedUp - many / one) < 0.01 * speedUp + 0.002)
        }
        #expect(runGlam(["bench", "model", "--config", "tiny", "--threads", "1", "--scaling"]).status == 2)
        #expect(runGlam(["bench", "gemm", "--scaling"]).status == 2)
        #expect(runGlam(["bench", "model", "--config", "tiny", "--experts", "4,x"]).status == 2)
        let decode = runGlam([
            "bench", "decode", "--config", "tiny", "--batch", "1,3", "--prompt", "4", "--tokens", "5", "--repeats", "1", "--json",
        ])
        #expect(decode.status == 0, "\(decode.err)")
        let decoded = try decode.out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(decoded.map { $0["batch"] as? Int } == [1, 3] && decoded.allSatisfy { ($0["tokens_per_second"] as? Double ?? 0) > 0 })
        // The bound: B tokens over one read of the step's weight bytes at the rate reported.
        for row in decoded {
            let (b, bytes) = (try #require(row["batch"] as? Int), try #require(row["weight_bytes_per_step"] as? Int))
            let (rate, bound) = (
                try #require(row["read_gigabytes_per_second"] as? Double), try #require(row["bandwidth_bound_tokens_per_second"] as? Double)
            )
            #expect(bytes == BenchDecode.weightBytesPerStep(try #require(ModelConfiguration.named("tiny")), batch: b))
            #expect(rate > 0 && bound > 0 && abs(Double(b) * rate * 1e9 / Double(bytes) - bound) <= 0.02 * bound + 1, "\(row)")
            // The memory bound: B tokens over one read of those weights and the mean step's cache.
            let cacheBytes = try #require(row["cache_bytes_per_step"] as? Int)
            let (memoryRate, memoryBound) = (
                try #require(row["memory_read_gigabytes_per_second"] as? Double),
                try #require(row["memory_bound_tokens_per_second"] as? Double)
            )
            #expect(
                cacheBytes == BenchDecode.cacheBytesPerStep(try #require(ModelConfiguration.named("tiny")), batch: b, prompt: 4, tokens: 5))
            #expect(
                memoryRate > 0 && memoryBound > 0
                    && abs(Double(b) * memoryRate * 1e9 / Double(bytes + cacheBytes) - memoryBound) <= 0.02 * memoryBound + 1, "\(row)")
            #expect((row["prefill_tokens_per_second"] as? Double ?? 0) > 0, "\(row)")
        }
        // The prefill's chunks: each row's prompt, cut into pieces of at most prefillChunk, in order.
        for (b, p) in [(1, 5), (3, 1100), (2, 512)] {
            let prompt = (0..<(b * p)).map { $0 }
            let chunks = BenchDecode.chunks(prompt, batch: b, length: p)
            #expect(chunks.allSatisfy { $0.count % b == 0 && $0.count / b <= IncrementalDecoder.prefillChunk })
            for row in 0..<b {
                let rebuilt = chunks.flatMap { chunk in chunk[(row * chunk.count / b)..<((row + 1) * chunk.count / b)] }
                #expect(rebuilt == Array(prompt[(row * p)..<((row + 1) * p)]), "B = \(b), P = \(p), row \(row)")
            }
        }
        // The memory bound covers at least the weights and the KV cache, and grows with the positions.
        let small = try #require(ModelConfiguration.named("small"))
        let cache = 2 * small.numLayers * 10_000 * small.numHeads * small.headDim * 4
        let weights = ParameterCount(small).total * 4
        #expect(BenchDecode.decodingBytes(small, batch: 1, positions: 10_000) >= cache + weights)
        #expect(
            BenchDecode.decodingBytes(small, batch: 1, positions: 20_000) > BenchDecode.decodingBytes(small, batch: 1, positions: 10_000))
        #expect(runGlam(["bench", "model", "--config", "nonexistent"]).status == 2)
        #expect(runGlam(["bench", "moe", "--capacity-factor", "-1"]).status == 2)
        // A capacity factor must be positive: 0 is refused like −1, naming the option.
        #expect(runGlam(["bench", "moe", "--capacity-factor", "0"]).err.contains("--capacity-factor must be a positive number, got '0'"))
        for shard in ["0/0", "1/1", "-1/2", "0/1025"] {
            let never = FileManager.default.temporaryDirectory.appendingPathComponent("never-\(UUID())").path
            let refused = runGlam(["compare", "--shard", shard, "--output", never])
            #expect(!FileManager.default.fileExists(atPath: never))
            #expect(
                refused.status == 2 && refused.err.contains("--shard must be I/N with 0 ≤ I < N ≤ 1024, got '\(shard)'"), "\(refused.err)")
        }
    }

    @Test("every benchmark's best figure is at least its median, both positive and finite (rates are work over time)")
    func bestIsAtLeastMedian() throws {
        let runs: [([String], String)] = [
            (["gemm", "--size", "48", "--threads", "1"], "gflops"),
            (["moe", "--groups", "1", "--group-size", "32", "--experts", "4", "--model-dim", "16"], "tokens_per_second"),
            (["model", "--config", "tiny", "--batch", "1", "--length", "8"], "tokens_per_second"),
            (["decode", "--config", "tiny", "--batch", "2", "--prompt", "3", "--tokens", "4"], "tokens_per_second"),
        ]
        for (arguments, key) in runs {
            let result = runGlam(["bench"] + arguments + ["--repeats", "5", "--json"])
            try #require(result.status == 0, "\(arguments): \(result.err)")
            for line in result.out.split(separator: "\n") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let best = try #require(object[key] as? Double), median = try #require(object["median_" + key] as? Double)
                #expect(median > 0 && best >= median && best.isFinite, "\(arguments): best \(best), median \(median)")
                #expect(object["repeats"] as? Int == 5, "\(arguments)")
            }
        }
    }

    @Test("each benchmark is a subcommand with its own options and help: another's option is refused, by name")
    func benchmarksHaveTheirOwnOptions() {
        let foreign = [
            ("gemm", ["--config", "tiny"]), ("moe", ["--batch", "1"]), ("model", ["--size", "64"]), ("decode", ["--tile", "6x16"]),
            ("decode", ["--scaling"]), ("gemm", ["--group-size", "4"]), ("moe", ["--implementation", "dense"]),
        ]
        for (bench, arguments) in foreign {
            let result = runGlam(["bench", bench] + arguments)
            #expect(
                result.status == 2 && result.err.contains("bench \(bench): unknown option \(arguments[0])"),
                "\(bench) \(arguments): \(result.err)")
            #expect(result.err.split(separator: "\n").count == 1)
        }
        let extra = runGlam(["bench", "gemm", "512"])
        #expect(extra.status == 2 && extra.err.contains("unexpected argument '512'"), "\(extra.err)")
        // Every command that takes no positional argument says so by name (a stray word is a typo, not ignored).
        for command in [
            ["eval", "--checkpoint", "x.safetensors"], ["trace", "--prompt", "a"], ["train"], ["generate"], ["params"], ["plan"],
            ["compare"], ["fixture"],
        ] {
            let stray = runGlam(command + ["stray"])
            #expect(stray.status == 2 && stray.err.contains("unexpected argument 'stray'"), "\(command[0]): \(stray.err)")
        }
        let names = ["gemm", "moe", "model", "decode"]
        for bench in names {
            let help = runGlam(["bench", bench, "--help"])
            #expect(help.status == 0 && help.out.contains("USAGE: glam bench \(bench) "), "\(bench)")
            for other in names where other != bench { #expect(!help.out.contains("glam bench \(other) "), "\(bench) help shows \(other)") }
        }
        let overview = runGlam(["bench", "--help"]).out
        #expect(names.allSatisfy { overview.contains("glam bench \($0) [") })
    }

    @Test("without --repeats a benchmark stops at its documented number of runs when each run is quick: 5,000, 50, 30, 20")
    func benchmarkRunCaps() throws {
        func repeats(_ arguments: [String]) throws -> [Int] {
            let result = runGlam(["bench"] + arguments + ["--json"])
            try #require(result.status == 0, "\(arguments): \(result.err)")
            return try result.out.split(separator: "\n").map {
                try #require((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["repeats"] as? Int)
            }
        }
        // Each of these runs takes well under the minimum time divided by the cap.
        #expect(try repeats(["gemm", "--size", "4", "--threads", "1"]) == [5000])
        #expect(try repeats(["moe", "--groups", "1", "--group-size", "4", "--experts", "2", "--model-dim", "2"]) == [50])
        #expect(try repeats(["model", "--config", "tiny", "--batch", "1", "--length", "2"]) == [30, 30, 30])
        #expect(try repeats(["decode", "--config", "tiny", "--batch", "1", "--prompt", "1", "--tokens", "1"]) == [20])
    }

    @Test("each bench's --repeats accepts 1...1000 and names that range when refusing 0 or 1001")
    func repeatsRange() {
        for bench in ["gemm", "moe", "model", "decode"] {
            for bad in ["0", "1001"] {
                let result = runGlam(["bench", bench, "--repeats", bad])
                #expect(
                    result.status == 2 && result.err.contains("--repeats must be an integer in 1...1000"),
                    "bench \(bench) --repeats \(bad): \(result.err)")
            }
        }
    }

    @Test("params: the paper's headline model, JSON fields, unknown names")
    func params() throws {
        let result = runGlam(["params", "--config", "glam-64b-64e", "--json"])
        #expect(result.status == 0)
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [[String: Any]])
        #expect(objects.count == 1)
        let object = objects[0]
        for key in ["name", "total", "activated", "layers", "model_dim", "ff_dim", "num_heads", "head_dim", "num_experts", "vocab_size"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(abs(Double(try #require(object["activated"] as? Int)) / 1e9 - 96.6) < 0.05)
        #expect(runGlam(["params"]).out.contains("| glam-137b |"))
        let unknown = runGlam(["params", "--config", "glam-2t"])
        #expect(unknown.status == 2 && unknown.err.contains("unknown configuration 'glam-2t'"))
    }

    @Test("train, resume and generate end to end on the tiny model; bad input exits 2")
    func trainAndGenerate() throws {
        let scratch = ScratchDirectory()
        let corpus = scratch.path("corpus.txt")
        try Data(try corpusSample(bytes: 30_000).utf8).write(to: corpus)
        let output = scratch.path("run").path
        let common = ["--config", "tiny", "--corpus", corpus.path, "--output", output, "--batch", "2", "--length", "32"]
        let started = Date()
        let train = runGlam(["train", "--steps", "3", "--evaluate-every", "2"] + common)
        let wall = Date().timeIntervalSince(started)
        #expect(train.status == 0, "\(train.err)")
        #expect(train.out.contains("step     3/3") && train.out.contains("validation at step 2: cross-entropy"))
        for file in ["checkpoint.safetensors", "metrics.jsonl", "loss.svg"] {
            #expect(FileManager.default.fileExists(atPath: scratch.path("run/\(file)").path), "\(file)")
        }
        // It ends by naming what it saved and the commands that use the checkpoint, which run as printed.
        let checkpointPath = scratch.path("run/checkpoint.safetensors").path
        let tail = train.out.split(separator: "\n").suffix(3).map(String.init)
        let glam = TrainCommand.executableName
        #expect(
            tail == [
                "saved \(checkpointPath), \(scratch.path("run/metrics.jsonl").path), \(scratch.path("run/loss.svg").path)",
                "continue a prompt: \(glam) generate --checkpoint \(checkpointPath) --prompt \"The hacker\"",
                "follow it through the model: \(glam) trace --checkpoint \(checkpointPath) --prompt \"The hacker\"",
            ], "\(tail)")
        for command in ["generate", "trace"] {
            let printed = runGlam([command, "--checkpoint", checkpointPath, "--prompt", "The hacker"])
            #expect(printed.status == 0, "\(command): \(printed.err)")
        }
        // One step numbering: metrics count from 1 like the console; per-MoE-layer loads before and
        // after capacity, and the dropped share, which the loads imply.
        let records = try String(contentsOf: scratch.path("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(records.compactMap { $0["ce"] != nil ? $0["step"] as? Int : nil } == [1, 2, 3])
        #expect(records.compactMap { $0["validation_ce"] != nil ? $0["step"] as? Int : nil } == [2, 3])
        // Throughput: the real tokens so far over the seconds since the first step, which grow and stay
        // within the run's wall time; the console prints the same rate.
        var seen = 0, last = 0.0, printed = 0
        for record in records where record["ce"] != nil {
            let tokens = try #require(record["tokens"] as? Int), elapsed = try #require(record["elapsed_seconds"] as? Double)
            let rate = try #require(record["tokens_per_second"] as? Double)
            seen += tokens
            #expect(tokens > 0 && tokens <= 2 * 32 && elapsed > last && elapsed <= wall, "\(record)")
            #expect(abs(rate * elapsed - Double(seen)) <= 1e-9 * Double(seen), "\(record)")
            // The console prints steps 1 and 3 (the first, and the last).
            // Time to go: the steps left at the mean time of the steps taken so far; the console's ETA.
            let step = try #require(record["step"] as? Int), eta = try #require(record["eta_seconds"] as? Double)
            #expect(abs(eta - Double(3 - step) * elapsed / Double(step)) <= 1e-12 * elapsed, "\(record)")
            if let line = train.out.split(separator: "\n").first(where: { $0.hasPrefix("step     \(step)/3") }) {
                #expect(line.contains(String(format: "%6.0f tok/s", rate)), "\(line)")
                #expect(line.contains("ETA \(Formats.duration(eta))  "), "\(line)")
                printed += 1
            }
            last = elapsed
        }
        #expect(printed == 2)
        let layers = try #require(records[0]["moe_layers"] as? [[String: Any]])
        #expect(layers.map { $0["layer"] as? Int } == [0, 2])
        for layer in layers {
            let before = try #require(layer["load_before_capacity"] as? [Int]), after = try #require(layer["load_after_capacity"] as? [Int])
            let dropped = try #require(layer["dropped_fraction"] as? Double)
            #expect(before.count == 4 && after.count == 4 && zip(before, after).allSatisfy { $0 >= $1 })
            // Two real-token assignments per token (the tiny model's second choices are always made).
            #expect(before.reduce(0, +) <= 2 * 2 * 32 && before.reduce(0, +) > 0)
            #expect(abs(dropped - Double(before.reduce(0, +) - after.reduce(0, +)) / Double(before.reduce(0, +))) < 1e-12)
        }
        #expect(train.out.contains("experts max/mean L0 ") && train.out.contains(", L2 ") && train.out.contains("drop "))
        // The console's figures for step 1 are the metrics': busiest expert over the mean load,
        // before and after capacity, and the dropped share in per cent.
        let first = try #require(train.out.split(separator: "\n").first { $0.hasPrefix("step     1/3") })
        let shown = first.matches(of: /L([0-9]+) ([0-9.]+)→([0-9.]+) drop ([0-9.]+)%/).map {
            (layer: Int($0.output.1)!, before: Double($0.output.2)!, after: Double($0.output.3)!, drop: Double($0.output.4)!)
        }
        try #require(shown.count == layers.count, "\(first)")
        for (figures, layer) in zip(shown, layers) {
            let before = try #require(layer["load_before_capacity"] as? [Int]).map(Double.init)
            let after = try #require(layer["load_after_capacity"] as? [Int]).map(Double.init)
            let dropped = try #require(layer["dropped_fraction"] as? Double)
            #expect(figures.layer == layer["layer"] as? Int)
            #expect(abs(figures.before - before.max()! / (before.reduce(0, +) / 4)) <= 0.005 + 1e-9, "\(first)")
            #expect(abs(figures.after - after.max()! / (after.reduce(0, +) / 4)) <= 0.005 + 1e-9, "\(first)")
            #expect(abs(figures.drop - 100 * dropped) <= 0.05 + 1e-9, "\(first): \(dropped)")
        }
        // An existing run is not overwritten by accident; --force starts over.
        let again = runGlam(["train", "--steps", "1"] + common)
        #expect(again.status == 2 && again.err.contains("already holds a run") && again.err.contains("--force"), "\(again.err)")
        #expect(runGlam(["train", "--steps", "3", "--evaluate-every", "2", "--force"] + common).status == 0)
        let resumed = runGlam(["train", "--resume", "--steps", "5"] + common)
        #expect(resumed.status == 0 && resumed.out.contains("resuming") && resumed.out.contains("step     5/5"), "\(resumed.err)")
        let checkpoint = scratch.path("run/checkpoint.safetensors").path
        let generated = runGlam(["generate", "--checkpoint", checkpoint, "--prompt", "The hacker", "--tokens", "8", "--seed", "1"])
        #expect(generated.status == 0 && generated.out.hasPrefix("The hacker"), "\(generated.err)")
        #expect(
            generated.out
                == runGlam(["generate", "--checkpoint", checkpoint, "--prompt", "The hacker", "--tokens", "8", "--seed", "1"]).out)
        // --temperature scales the logits: near 0 it samples the arg max (greedy's text, whatever the
        // seed); high, it spreads the draws, so that some seed's text differs from the default's.
        let prompt = ["generate", "--checkpoint", checkpoint, "--prompt", "The hacker", "--tokens", "12"]
        let greedy = runGlam(prompt + ["--greedy"]).out
        for seed in ["1", "2", "3"] {
            #expect(runGlam(prompt + ["--temperature", "0.0001", "--seed", seed]).out == greedy, "seed \(seed)")
        }
        let hot = ["1", "2", "3"].map { runGlam(prompt + ["--temperature", "50", "--top-k", "0", "--seed", $0]).out }
        let usual = ["1", "2", "3"].map { runGlam(prompt + ["--seed", $0]).out }
        #expect(hot != usual && hot.allSatisfy { $0 != greedy })
        // A temperature must be a positive finite number: infinity or NaN would sample nonsense.
        for bad in ["0", "-1", "inf", "nan", "warm"] {
            let refused = runGlam(prompt + ["--temperature", bad])
            #expect(refused.status == 2 && refused.err.contains("--temperature must be a positive number"), "\(bad): \(refused.err)")
        }
        // Bad input.
        #expect(runGlam(["train", "--corpus", "/nonexistent.txt", "--output", output]).err.contains("cannot read the corpus"))
        // What this trainer cannot train is refused before any work, saying why and what can be.
        let huge = runGlam(["train", "--config", "glam-64b-64e", "--output", scratch.path("huge").path])
        #expect(huge.status == 2 && huge.out.isEmpty && huge.err.contains("more than 80% of this machine") && huge.err.contains("small"))
        let vocabulary = runGlam(["train", "--config", "glam-0.1b", "--output", scratch.path("v").path, "--corpus", corpus.path])
        #expect(vocabulary.status == 2 && vocabulary.out.isEmpty && vocabulary.err.contains("256000-token vocabulary"), "\(vocabulary.err)")
        let long = runGlam(["train", "--config", "small", "--length", "65536", "--batch", "1", "--output", scratch.path("l").path])
        #expect(long.status == 2 && long.err.contains("T = 65536"), "\(long.err)")
        try Data("tiny corpus".utf8).write(to: scratch.path("small.txt"))
        let tinyCorpus = runGlam([
            "train", "--config", "tiny", "--corpus", scratch.path("small.txt").path, "--output", scratch.path("s").path,
        ])
        #expect(tinyCorpus.status == 2 && tinyCorpus.err.contains("at most"), "\(tinyCorpus.err)")
        let bench = runGlam(["bench", "model", "--config", "glam-64b-64e"])
        #expect(bench.status == 2 && bench.err.contains("more than 80% of this machine"))
        #expect(runGlam(["train", "--config", "huge"]).status == 2)
        #expect(runGlam(["generate", "--checkpoint", "/nonexistent", "--prompt", "x"]).status == 2)
        #expect(runGlam(["generate", "--checkpoint", checkpoint]).err.contains("--prompt TEXT is required"))
        // An empty prompt is no prompt: refused by the command, naming the option, before the model loads.
        let empty = runGlam(["generate", "--checkpoint", checkpoint, "--prompt", ""])
        #expect(empty.status == 2 && empty.err == "glam: generate: --prompt TEXT is required\n", "\(empty.err)")
        try Data("garbage".utf8).write(to: scratch.path("bad.safetensors"))
        #expect(runGlam(["generate", "--checkpoint", scratch.path("bad.safetensors").path, "--prompt", "x"]).status == 2)
    }

    @Test("train --mesh 2x2: one core's losses, the bytes sent equal the prediction, a resumable checkpoint; unfitting meshes exit 2")
    func trainOnMesh() throws {
        let scratch = ScratchDirectory()
        let corpus = scratch.path("corpus.txt")
        try Data(try corpusSample(bytes: 30_000).utf8).write(to: corpus)
        let common = ["--config", "tiny", "--corpus", corpus.path, "--batch", "4", "--length", "32", "--groups", "2", "--steps", "3"]
        let one = runGlam(["train", "--output", scratch.path("one").path] + common)
        let mesh = runGlam(["train", "--output", scratch.path("mesh").path, "--mesh", "2x2"] + common)
        #expect(one.status == 0 && mesh.status == 0, "\(one.err) \(mesh.err)")
        func losses(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { $0.hasPrefix("step ") }.map { $0.split(separator: "(")[0].split(separator: "loss ")[1] }
        }
        // The mesh sums partial results across cores in another order than one device (and Adafactor's
        // sums of squares across shards), so the losses agree to rounding, not bit for bit: within one
        // unit of the printed fourth decimal.
        let (meshLosses, oneLosses) = (
            losses(mesh.out).compactMap { Double($0.trimmingCharacters(in: .whitespaces)) },
            losses(one.out).compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        )
        #expect(meshLosses.count == 2 && oneLosses.count == 2, "\(mesh.out)")
        #expect(zip(meshLosses, oneLosses).allSatisfy { abs($0 - $1) <= 1.01e-4 }, "mesh \(meshLosses), one device \(oneLosses)")
        // Every printed step sent exactly the predicted bytes.
        let sent = mesh.out.split(separator: "\n").filter { $0.contains("sent per core") }
        #expect(sent.count == 2)
        for line in sent {
            let numbers = line.split(separator: " ").filter { $0.first?.isNumber == true }
            #expect(numbers.count == 4 && numbers[0] == numbers[1] && numbers[2] == numbers[3], "\(line)")
        }
        let resumed = runGlam(
            ["train", "--output", scratch.path("mesh").path, "--resume", "--steps", "4"] + Array(common.prefix(2)) + [
                "--corpus", corpus.path,
            ])
        #expect(resumed.status == 0 && resumed.out.contains("step     4/4"), "\(resumed.err)")
        let onMesh = runGlam(
            ["train", "--output", scratch.path("mesh").path, "--resume", "--steps", "5", "--mesh", "2x1", "--corpus", corpus.path])
        #expect(onMesh.status == 0 && onMesh.out.contains("step     5/5") && onMesh.out.contains("sent per core"), "\(onMesh.err)")
        let regroup = runGlam(["train", "--output", scratch.path("mesh").path, "--resume", "--groups", "4", "--corpus", corpus.path])
        #expect(regroup.status == 2 && regroup.err.contains("--groups cannot change a resumed run"))
        let metrics = try String(contentsOf: scratch.path("mesh/metrics.jsonl"), encoding: .utf8)
        // Every step of the mesh runs logged exactly the predicted bytes.
        let steps = metrics.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["sent_bytes_per_core"] != nil }
        #expect(steps.count == 4)  // steps 1–3 on 2×2, step 5 on 2×1 (step 4 ran on one device)
        for step in steps {
            #expect(step["sent_bytes_per_core"] as? [String: Int] == step["predicted_bytes_per_core"] as? [String: Int], "\(step)")
        }
        // Meshes that do not fit.
        let experts = runGlam(
            ["train", "--output", scratch.path("bad").path, "--mesh", "3x1", "--batch", "6", "--groups", "6", "--length", "32"] + [
                "--config", "tiny", "--corpus", corpus.path,
            ])
        #expect(experts.status == 2 && experts.err.contains("do not divide the 4 experts"), "\(experts.err)")
        let hidden = runGlam(["train", "--output", scratch.path("bad").path, "--mesh", "2x3"] + common)
        #expect(hidden.status == 2 && hidden.err.contains("expert hidden size 128"), "\(hidden.err)")
        let groups = runGlam(["train", "--output", scratch.path("bad").path, "--mesh", "4x1", "--groups", "2"] + Array(common.prefix(8)))
        #expect(groups.status == 2 && groups.err.contains("do not divide the 2 groups"), "\(groups.err)")
        // With the default single group, the error says which --groups to give (the 2×2 run above
        // gives --groups 2 and trains).
        let defaultGroups = runGlam(["train", "--output", scratch.path("bad").path, "--mesh", "2x2"] + Array(common.prefix(8)))
        #expect(defaultGroups.status == 2 && defaultGroups.err.contains("do not divide the 1 groups"), "\(defaultGroups.err)")
        #expect(defaultGroups.err.contains("give --groups G, a multiple of 2") && defaultGroups.err.contains("--groups 2"))
        // The data axis is the first: a 4x1 mesh asks for a multiple of 4, a 1x2 mesh fits one group.
        let dataAxis = runGlam(["train", "--output", scratch.path("bad").path, "--mesh", "4x1"] + Array(common.prefix(8)))
        #expect(dataAxis.status == 2 && dataAxis.err.contains("the 4x1 mesh does not fit"), "\(dataAxis.err)")
        #expect(dataAxis.err.contains("a multiple of 4 that divides B·T") && dataAxis.err.contains("(--groups 4:"), "\(dataAxis.err)")
        let malformed = runGlam(["train", "--mesh", "2by2"] + common)
        #expect(malformed.status == 2 && malformed.err.contains("--mesh must be DATAxMDL"))
        #expect(runGlam(["train", "--mesh", "16x8"] + common).err.contains("at most 64 cores"))
        // A dense model trains data-parallel.
        let dense = runGlam(
            ["train", "--output", scratch.path("dense").path, "--mesh", "2x1", "--config", "tiny-dense"] + common.dropFirst(2))
        #expect(dense.status == 0 && dense.out.contains("sent per core"), "\(dense.err)")
    }
}

extension CommandLineTests {
    @Test("train refuses a --groups that does not divide the batch's tokens, before any work, naming both")
    func trainGroupsMustDivideTheBatch() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        let result = runGlam([
            "train", "--config", "tiny", "--batch", "2", "--length", "32", "--groups", "3", "--corpus", corpus.path, "--output",
            scratch.path("run").path,
        ])
        #expect(result.status == 2 && result.out.isEmpty && result.err.contains("num_groups 3 does not divide B·T = 64"), "\(result.err)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("run/metrics.jsonl").path))
    }
}

extension ModelConfiguration {
    /// The same configuration with `experts` experts in each MoE layer.
    fileprivate func withExperts(_ experts: Int) -> ModelConfiguration {
        var c = self
        c.numExperts = experts
        return c
    }
}
