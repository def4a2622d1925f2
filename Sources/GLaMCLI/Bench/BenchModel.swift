// `glam bench model`: the whole decoder's speed, forward, forward + backward and training step, with
// model-FLOP utilisation against the GEMM peak of the same run; expert-count sweeps at equal
// activated compute; thread scaling (the "The glam command line" article).

import Dispatch
import GLaM

/// `glam bench model`.
enum BenchModel: Benchmark {
    static let name = "model"
    static let usage =
        "glam bench model [--config NAME] [--batch B] [--length T] [--experts E1,E2,...] [--threads T] [--scaling] [--repeats R] [--json]"
    /// The model and batch when no option is given.
    static let defaults = (config: "small", batch: 8, length: 128, alternatingRounds: 5)
    /// Without --repeats: runs until this many seconds (and 3 runs), at most this many runs.
    static let timing = (minimumSeconds: 2.0, maximumRuns: 30)
    static let help = """
        USAGE: \(usage)

        Times the whole decoder on random tokens: forward only (inference, nothing recorded),
        forward + backward (loss and every parameter's gradient), and a training step (forward +
        backward + Adafactor update). Defaults: the '\(defaults.config)' configuration, B = \(defaults.batch), T = \(defaults.length).
        Each mode runs once to warm up, then R times (default: until \(timing.minimumSeconds) s and at least 3, at most
        \(timing.maximumRuns)).
        Reported: best and median tokens/s (B·T per run) and model-FLOP utilisation: model FLOPs per
        second (3 × forward for training; see ModelConfiguration.trainingFLOPsPerToken) over the
        best GEMM speed measured at the start of the same run (n = 1024, same threads).

        OPTIONS:
          --config NAME  a configuration 'glam params' lists
          --batch B, --length T  the batch (1...4096, 1...65536)
          --experts E1,E2,...  runs the configuration once per expert count with the expert size
                        unchanged, so every run has the same activated compute per token, and prints
                        the training step time of each over the first's, from steps of the
                        configurations taken in turn (R rounds, default \(defaults.alternatingRounds)): the cost of more experts
                        at equal compute (GLaM's thesis); and below each of more experts, its memory floor: the
                        first's step plus the extra expert weights read 4 times and written twice
                        at memory's rates timed in the run (what a step must move at least)
          --threads T   worker threads (1...256)
          --scaling     times every mode on 1 thread and on T threads (default: all CPUs)
                        alternately, run by run, so that a noisy neighbour slows both alike, and
                        prints the speed-up: the best time on 1 thread over the best on T, and the
                        median of the R paired ratios (default R = \(defaults.alternatingRounds))
          --repeats R   timed repetitions (1...1000)
          --json        one JSON object per mode and expert count
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Benchmarking.arguments(
            arguments, benchmark: name, options: ["config", "batch", "length", "experts", "threads", "repeats"], flags: ["scaling"])
        let name = parsed.value("config") ?? defaults.config
        guard let named = ModelConfiguration.named(name) else {
            throw UsageError("bench model: unknown configuration '\(name)' (see 'glam params')")
        }
        let b = try parsed.integer("batch", in: 1...4096) ?? defaults.batch
        let t = try parsed.integer("length", in: 1...65536) ?? defaults.length
        guard (b * t) % named.numGroups == 0 else { throw UsageError("bench model: B·T must be divisible by num_groups") }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let expertCounts = try parsed.distinctIntegerList("experts", in: 1...1024) ?? [named.numExperts]
        if named.numExperts == 0 && parsed.value("experts") != nil {
            throw UsageError("bench model: --experts needs an MoE configuration; '\(name)' is dense")
        }
        let configurations = expertCounts.map { experts in
            var configuration = named
            configuration.numExperts = experts
            return configuration
        }
        for configuration in configurations {
            let estimate = MemoryEstimate(configuration: configuration, batchSize: b, length: t)
            guard estimate.fits() else {
                throw UsageError(
                    "bench: \(name) (E = \(configuration.numExperts)) with B = \(b), T = \(t) needs about \(MemoryEstimate.describe(estimate.totalBytes)) to train, more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory))"
                )
            }
        }
        let json = parsed.has("json"), scaling = parsed.has("scaling")
        let threads = Parallelism.threadCount
        if scaling && threads < 2 {
            throw UsageError("bench model: --scaling compares 1 thread with T > 1; this machine has 1 CPU, or --threads was 1")
        }
        // The GEMM peak of this run: the best of square products at n = 1024 on the same threads.
        let peak = scaling ? 0 : BenchGEMM.measure(n: 1024, threads: threads, repeats: nil).best * 1e9
        if !json && !scaling {
            output.line(
                "GEMM peak in this run: \(Benchmarking.rounded(peak / 1e9)) GFLOP/s (n = 1024, \(Parallelism.threadCount) threads, tile \(GEMMTile.selected.rawValue)); MFU = model FLOPs/s over it"
            )
        }
        var trainSteps: [() throws -> Double] = []  // one timed training step per configuration
        for configuration in configurations {
            let parameters = try ModelParameters(configuration: configuration, seed: 1)
            var generator = SeededGenerator(seed: 2)
            let tokens = (0..<(b * t)).map { _ in Int(generator.next() % UInt64(configuration.vocabSize)) }
            let targets = (0..<(b * t)).map { _ in Int(generator.next() % UInt64(configuration.vocabSize)) }
            let batch = TokenBatch(batchSize: b, length: t, tokens: tokens, targets: targets)
            let constants = parameters.constants
            var optimizer = Adafactor()
            var trained = parameters
            let forwardFLOPs = configuration.forwardFLOPsPerToken(length: t)
            // Forward and backward in their own scope, as in `Trainer`: the tape is released before
            // the update, which then changes the weights in place.
            func gradients() throws -> ModelParameters {
                let tape = Tape<Float>()
                let variables = trained.variables(on: tape)
                let out: DecoderOutput<Float> = try variables(batch)
                return variables.gradients(from: tape.gradients(of: out.loss!))
            }
            for mode in ["forward", "forward+backward", "train step"] {
                func once() throws -> Double {
                    let start = DispatchTime.now().uptimeNanoseconds
                    if mode == "forward" {
                        let _: DecoderOutput<Float> = try constants(batch)
                    } else {
                        let gradients = try gradients()
                        if mode == "train step" {
                            optimizer.update(&trained, gradients: gradients, step: 0, learningRate: 0.01)
                        }
                    }
                    return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                }
                let experts = configuration.numExperts
                let label = "\(name)\(configurations.count > 1 ? " E=\(experts)" : "") B=\(b) T=\(t) \(mode)"
                if scaling {
                    let timed = try Benchmarking.alternate(oneThreadAnd: threads, rounds: repeats ?? defaults.alternatingRounds, once)
                    let one = timed.oneThread, many = timed.threads
                    let paired = zip(one, many).map { $0 / $1 }
                    let (speedUp, medianSpeedUp) = (one.min()! / many.min()!, Benchmarking.minimumAndMedian(paired).median)
                    if json {
                        output.line(
                            JSONText.line(
                                [
                                    "config": name, "experts": experts, "batch": b, "length": t, "mode": mode, "threads": threads,
                                    "tokens_per_second_1_thread": (Double(b * t) / one.min()!).rounded(),
                                    "tokens_per_second": (Double(b * t) / many.min()!).rounded(),
                                    "speed_up": (speedUp * 1000).rounded() / 1000,
                                    "median_speed_up": (medianSpeedUp * 1000).rounded() / 1000, "repeats": one.count,
                                ] as [String: Any])
                        )
                    } else {
                        output.line(
                            "\(label): best \(Int((Double(b * t) / one.min()!).rounded())) tokens/s on 1 thread, \(Int((Double(b * t) / many.min()!).rounded())) on \(threads); speed-up \(String(format: "%.2f", speedUp)) (median of \(one.count) paired runs \(String(format: "%.2f", medianSpeedUp)))"
                        )
                    }
                    continue
                }
                let seconds = try Benchmarking.timings(
                    repeats: repeats, minimumSeconds: timing.minimumSeconds, maximumRuns: timing.maximumRuns, once
                )
                let fastest = Benchmarking.minimumAndMedian(seconds)
                let (best, median) = (Double(b * t) / fastest.minimum, Double(b * t) / fastest.median)
                if mode == "train step" { trainSteps.append(once) }
                let mfu = best * forwardFLOPs * (mode == "forward" ? 1 : 3) / peak
                if json {
                    output.line(
                        JSONText.line(
                            [
                                "config": name, "experts": experts, "batch": b, "length": t, "mode": mode,
                                "threads": Parallelism.threadCount, "tokens_per_second": best.rounded(),
                                "median_tokens_per_second": median.rounded(), "repeats": seconds.count,
                                "mfu": (mfu * 1000).rounded() / 1000, "gemm_peak_gflops": Benchmarking.rounded(peak / 1e9),
                            ] as [String: Any])
                    )
                } else {
                    output.line(
                        "\(label): best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) over \(seconds.count) runs, MFU \(String(format: "%.1f", mfu * 100))%"
                    )
                }
            }
        }
        if configurations.count > 1 && !json && !scaling {
            // The ratios from training steps timed in turn, one configuration after the other, so
            // that a noisy neighbour slows them alike.
            let seconds = try Benchmarking.alternate(count: configurations.count, rounds: repeats ?? defaults.alternatingRounds) {
                try trainSteps[$0]()
            }
            let rates = memoryRates(
                forBytes: configurations.map(expertWeightBytes).max()! - expertWeightBytes(configurations[0]), threads: threads)
            let first = seconds[0].min()!
            for (index, configuration) in configurations.enumerated().dropFirst() {
                let paired = zip(seconds[index], seconds[0]).map { $0 / $1 }
                output.line(
                    "train step time at E = \(configuration.numExperts) over E = \(configurations[0].numExperts) (same activated compute): \(String(format: "%.2f", seconds[index].min()! / first)) (best of \(paired.count) runs each, taken in turn; median of the paired ratios \(String(format: "%.2f", Benchmarking.minimumAndMedian(paired).median)))"
                )
                // A floor bounds the cost of more experts only; fewer experts have none to print.
                let extra = expertWeightBytes(configuration) - expertWeightBytes(configurations[0])
                guard extra > 0 else { continue }
                let floor = memoryFloor(extraBytes: extra, firstStep: first, read: rates.read, write: rates.write)
                output.line(
                    "  its memory floor: \(String(format: "%.2f", floor)) (the \(String(format: "%.1f", Double(extra) / 1e6)) MB more expert weights read 4 times and written twice, as few as a step can: \(String(format: "%.1f", (floor - 1) * first * 1e3)) ms at this run's \(String(format: "%.1f", rates.read / 1e9)) GB/s read and \(String(format: "%.1f", rates.write / 1e9)) GB/s written from memory, over the E = \(configurations[0].numExperts) step's \(String(format: "%.1f", first * 1e3)) ms)"
                )
            }
        }
        return 0
    }

    /// The bytes of a configuration's expert weights (every MoE layer's wi and wo, all E experts).
    static func expertWeightBytes(_ c: ModelConfiguration) -> Int {
        ParameterPath.all(in: c).filter(\.isExpertWeight).reduce(0) { $0 + 4 * $1.shape(in: c).reduce(1, *) }
    }

    /// The least a training step with `extraBytes` more weights can take, over `firstStep` seconds:
    /// each extra weight is read by the forward pass and by the backward pass, its gradient is
    /// written, and the optimizer reads the gradient and the weight and writes the weight, none of
    /// them in cache when they outgrow it: 4 reads and 2 writes, at `read` and `write` bytes/s.
    static func memoryFloor(extraBytes: Int, firstStep: Double, read: Double, write: Double) -> Double {
        (firstStep + Double(extraBytes) * (4 / read + 2 / write)) / firstStep
    }

    /// Memory's read and write rates in bytes/s on `threads` threads, timed now on a buffer of
    /// `bytes` (between 1 MiB and 256 MiB), each read or write after other data has pushed the
    /// buffer out of the caches.
    static func memoryRates(forBytes bytes: Int, threads: Int) -> (read: Double, write: Double) {
        let floats = min(max(bytes, 1 << 20), 256 << 20) / 4
        let evicting = [Float](repeating: 1, count: MemoryTraffic.evictionBytes() / 4)
        var buffer = [Float](repeating: 1, count: floats)
        let read = MemoryTraffic.coldReadSeconds(of: [(buffer, 0..<floats)], evicting: evicting, threads: threads, passes: 5)
        let write = MemoryTraffic.coldWriteSeconds(into: &buffer, evicting: evicting, threads: threads)
        return (Double(4 * floats) / read.seconds, Double(4 * floats) / write)
    }
}
