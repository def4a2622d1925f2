// `glam bench gemm`: square SGEMM timing (the "The glam command line" article). The comparison with numpy's
// OpenBLAS, measured in the same run, is Scripts/bench_gemm.py.

import Dispatch
import GLaM

enum BenchCommand: Subcommand {
    static let name = "bench"
    static let summary = "Time kernels: 'glam bench gemm' (GFLOP/s), 'bench moe' (routing), 'bench model' (tokens/s, MFU), 'bench decode'."
    static let help = """
        USAGE: glam bench gemm [--size N | --shape M,N,K[,BATCH] [--layout nn|tn|nt|tt]] [--threads T]
                               [--repeats R] [--tile 6x16|12x32] [--json]
               glam bench moe [--groups G] [--group-size S] [--experts E] [--model-dim M]
                              [--capacity-factor F] [--implementation indexed|dense] [--threads T]
                              [--repeats R] [--json]
               glam bench model [--config NAME] [--batch B] [--length T] [--experts E1,E2,...]
                                [--threads T] [--scaling] [--repeats R] [--json]
               glam bench decode [--config NAME] [--batch B1,B2,...] [--prompt P] [--tokens N]
                                 [--threads T] [--repeats R] [--json]

        bench model times the whole decoder on random tokens: forward only (inference, nothing
        recorded), forward + backward (loss and every parameter's gradient), and a training step
        (forward + backward + Adafactor update). Defaults: the 'small' configuration, B = 8, T = 128.
        Reported: best and median tokens/s (B·T per run) and model-FLOP utilisation: model FLOPs per
        second (3 × forward for training; see ModelConfiguration.trainingFLOPsPerToken) over the
        best GEMM speed measured at the start of the same run (n = 1024, same threads).
        --experts 8,64 runs the configuration once per expert count with the expert size unchanged,
        so every run has the same activated compute per token, and prints the training step time of
        each over the first's, from steps of the configurations taken in turn (R rounds, default 5):
        the cost of more experts at equal compute (GLaM's thesis).
        --scaling times every mode on 1 thread and on T threads (default: all CPUs) alternately, run
        by run, so that a noisy neighbour slows both alike, and prints the speed-up: the best time
        on 1 thread over the best on T, and the median of the R paired ratios (default R = 5).

        bench decode times cached incremental decoding: a P-token prompt is prefilled (untimed),
        then N steps each feed one token per row. Defaults: 'small', B = 1 and 8, P = 64, N = 64.
        Reported: best and median generated tokens/s (B·N per run).

        bench moe times the routing half of an MoE layer, forward only: router logits x·W_g,
        GShard top-2 gating, dispatch to [E, G·C, M], and combine back to [G, S, M] (experts are the
        identity). Defaults: G = 8, S = 1024, E = 64, M = 512, capacity factor 2, indexed dispatch.
        Reported: best and median tokens/s (G·S tokens per run). Scripts/bench_moe.py runs the same
        computation in JAX (jit, CPU) in the same run.

        bench gemm times C = A·B for square n × n Float matrices with the packed multithreaded GEMM.
        Without --size: n = 256, 512, 1024, 2048. Without --threads: 1 and all CPUs.
        Each case runs once to warm up, then R times (default: until 0.5 s, at least 3, at most 5,000);
        reported are the best and the median GFLOP/s (2n³ floating-point operations per product).

        OPTIONS:
          --size N      matrix size (1...8192)
          --shape M,N,K[,BATCH]  one product C = op(A)·op(B) instead, op(A) [M, K], op(B) [K, N],
                        BATCH of them; --layout tn reads A transposed, nt B, tt both (the model's
                        backward layouts)
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --tile MRxNR  the register tile (default: the one timed fastest on this CPU; see GEMMTile)
          --json        one JSON object per line: m, n, k, threads, gflops (best), median_gflops,
                        repeats, fma (whether built with -DGLAM_FMA), tile
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let options: Set = [
            "size", "threads", "repeats", "groups", "group-size", "experts", "model-dim", "capacity-factor", "implementation",
            "config", "batch", "length", "tile", "prompt", "tokens", "shape", "layout",
        ]
        let parsed = try Arguments(arguments, command: "bench", options: options, flags: ["json", "scaling"])
        if parsed.has("scaling") && parsed.positionals != ["model"] {
            throw UsageError("bench: --scaling is an option of 'glam bench model' only")
        }
        switch parsed.positionals {
        case ["gemm"]: return try gemm(parsed, output: &output)
        case ["moe"]: return try moe(parsed, output: &output)
        case ["model"]: return try model(parsed, output: &output)
        case ["decode"]: return try decode(parsed, output: &output)
        default:
            throw UsageError(
                "bench: expected 'glam bench gemm', 'glam bench moe', 'glam bench model' or 'glam bench decode', got '\(parsed.positionals.joined(separator: " "))'"
            )
        }
    }

    static func gemm(_ parsed: Arguments, output: inout Output) throws -> Int32 {
        var products = (try parsed.integer("size", in: 1...8192).map { [$0] } ?? [256, 512, 1024, 2048]).map {
            Product(m: $0, n: $0, k: $0)
        }
        if let shape = try parsed.integerList("shape", in: 1...65536) {
            guard parsed.value("size") == nil else { throw UsageError("bench: --size and --shape cannot be combined (--shape sets M, N and K)") }
            guard shape.count == 3 || shape.count == 4 else {
                throw UsageError("bench: --shape must be M,N,K or M,N,K,BATCH, got '\(parsed.value("shape")!)'")
            }
            let layout = parsed.value("layout") ?? "nn"
            guard ["nn", "tn", "nt", "tt"].contains(layout) else {
                throw UsageError("bench: --layout must be nn, tn, nt or tt, got '\(layout)'")
            }
            let product = Product(m: shape[0], n: shape[1], k: shape[2], batch: shape.count == 4 ? shape[3] : 1, layout: layout)
            let operands = [[product.m, product.k], [product.k, product.n], [product.m, product.n]].map {
                CheckedSize.product([product.batch] + $0)
            }
            guard operands.allSatisfy({ $0 <= 1 << 28 }) else {
                throw UsageError("bench: --shape \(parsed.value("shape")!) is larger than 2^28 elements in A, B or C")
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
                throw UsageError("bench: --tile must be one of \(GEMMTile.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
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
            let kernels = GEMMTile.timeKernels().map { "\($0.tile.rawValue) \(rounded(block / $0.seconds / 1e9))" }
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
                        #"{"m": \#(product.m), "n": \#(product.n), "k": \#(product.k), "batch": \#(product.batch), "layout": "\#(product.layout)", "threads": \#(threads), "gflops": \#(rounded(result.best)), "median_gflops": \#(rounded(result.median)), "repeats": \#(result.repeats), "fma": \#(GEMM.isFused), "tile": "\#(tile.rawValue)"}"#
                    )
                } else {
                    output.line(
                        "\(pad(label, 5))  \(pad(threads, 7))  \(pad(rounded(result.best), 12))  \(pad(rounded(result.median), 14))  \(pad(result.repeats, 7))"
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
                    _ = once()
                    var total = 0.0
                    while true {
                        let t = once()
                        seconds.append(t)
                        total += t
                        if let repeats {
                            if seconds.count >= repeats { break }
                        } else if (total >= 0.5 && seconds.count >= 3) || seconds.count >= 5000 {
                            break
                        }
                    }
                }
            }
        }
        let sorted = seconds.sorted()
        return (product.flops / sorted[0] / 1e9, product.flops / sorted[sorted.count / 2] / 1e9, seconds.count)
    }

    static func moe(_ parsed: Arguments, output: inout Output) throws -> Int32 {
        let g = try parsed.integer("groups", in: 1...4096) ?? 8
        let s = try parsed.integer("group-size", in: 1...65536) ?? 1024
        let e = try parsed.integer("experts", in: 1...4096) ?? 64
        let m = try parsed.integer("model-dim", in: 1...65536) ?? 512
        let factorText = parsed.value("capacity-factor") ?? "2"
        guard let factor = Double(factorText), factor > 0, factor.isFinite else {
            throw UsageError("bench: --capacity-factor must be a positive number, got '\(factorText)'")
        }
        let implementationName = parsed.value("implementation") ?? "indexed"
        let implementation: DispatchImplementation
        switch implementationName {
        case "indexed": implementation = .indexed
        case "dense": implementation = .dense
        default: throw UsageError("bench: --implementation must be indexed or dense, got '\(implementationName)'")
        }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let configuration = Top2GatingConfiguration(numExperts: e, capacityFactor: factor)
        let capacity: Int
        do { capacity = try configuration.capacity(groupSize: s) } catch { throw UsageError("bench: \(error.description)") }
        // x, its router logits and gates, the dispatched tokens and the experts' outputs [G, E, C, M]
        // and the result, in float32; the dense implementation adds the dispatch and combine
        // tensors [G, S, E, C].
        let floats = CheckedSize.sum([
            CheckedSize.product([3, g, s, m]), CheckedSize.product([4, g, s, e]), CheckedSize.product([2, g, e, capacity, m]),
            implementation == .dense ? CheckedSize.product([2, g, s, e, capacity]) : 0,
        ])
        let bytes = CheckedSize.product([4, floats])
        guard MemoryEstimate.fits(bytes) else {
            throw UsageError(
                "bench: G=\(g) S=\(s) E=\(e) M=\(m) (capacity \(capacity)) needs about \(MemoryEstimate.describe(bytes)), more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory))"
            )
        }
        var generator = SeededGenerator(seed: 2021)
        let x = Variable(constant: Tensor<Float>.randomNormal(shape: [g, s, m], generator: &generator))  // [G, S, M]
        let router = Variable(
            constant: Tensor<Float>.randomUniform(shape: [m, e], bound: (3 / Float(m)).squareRoot(), generator: &generator))
        func once() throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            let logits = matmul(x, router)  // [G, S, E]
            let gating = try top2Gating(logits: logits, paddings: nil, configuration: configuration)
            let y = dispatchThroughExperts(x, gating: gating, implementation: implementation) { $0 }  // [G, S, M]
            precondition(y.shape == [g, s, m])
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        let seconds = try timings(repeats: repeats, minimumSeconds: 1, maximumRuns: 50, once)
        let sorted = seconds.sorted()
        let tokens = Double(g * s)
        let (best, median) = (tokens / sorted[0], tokens / sorted[sorted.count / 2])
        if parsed.has("json") {
            output.line(
                #"{"groups": \#(g), "group_size": \#(s), "experts": \#(e), "model_dim": \#(m), "capacity_factor": \#(factor), "implementation": "\#(implementationName)", "threads": \#(Parallelism.threadCount), "tokens_per_second": \#(best.rounded()), "median_tokens_per_second": \#(median.rounded()), "repeats": \#(seconds.count)}"#
            )
        } else {
            output.line(
                "MoE routing (x·W_g, top-2 gating, dispatch, combine), G=\(g) S=\(s) E=\(e) M=\(m) cf=\(factor), \(implementationName)")
            output.line("best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) tokens/s over \(seconds.count) runs")
        }
        return 0
    }

    static func model(_ parsed: Arguments, output: inout Output) throws -> Int32 {
        let name = parsed.value("config") ?? "small"
        guard let named = ModelConfiguration.named(name) else {
            throw UsageError("bench: unknown configuration '\(name)' (see 'glam params')")
        }
        let b = try parsed.integer("batch", in: 1...4096) ?? 8
        let t = try parsed.integer("length", in: 1...65536) ?? 128
        guard (b * t) % named.numGroups == 0 else { throw UsageError("bench: B·T must be divisible by num_groups") }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let expertCounts = try parsed.distinctIntegerList("experts", in: 1...1024) ?? [named.numExperts]
        if named.numExperts == 0 && parsed.value("experts") != nil {
            throw UsageError("bench: --experts needs an MoE configuration; '\(name)' is dense")
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
            throw UsageError("bench: --scaling compares 1 thread with T > 1; this machine has 1 CPU, or --threads was 1")
        }
        // The GEMM peak of this run: the best of square products at n = 1024 on the same threads.
        let peak = scaling ? 0 : measure(n: 1024, threads: threads, repeats: nil).best * 1e9
        if !json && !scaling {
            output.line(
                "GEMM peak in this run: \(rounded(peak / 1e9)) GFLOP/s (n = 1024, \(Parallelism.threadCount) threads, tile \(GEMMTile.selected.rawValue)); MFU = model FLOPs/s over it"
            )
        }
        var trainSteps: [() throws -> Double] = []  // one timed training step per configuration
        for configuration in configurations {
            let parameters = ModelParameters(configuration: configuration, seed: 1)
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
                    let result = try alternate(threads: [1, threads], rounds: repeats ?? 5, once)
                    let (one, many) = (result[0], result[1])
                    let paired = zip(one, many).map { $0 / $1 }.sorted()
                    let (speedUp, medianSpeedUp) = (one.min()! / many.min()!, paired[paired.count / 2])
                    if json {
                        output.line(
                            #"{"config": "\#(name)", "experts": \#(experts), "batch": \#(b), "length": \#(t), "mode": "\#(mode)", "threads": \#(threads), "tokens_per_second_1_thread": \#((Double(b * t) / one.min()!).rounded()), "tokens_per_second": \#((Double(b * t) / many.min()!).rounded()), "speed_up": \#((speedUp * 1000).rounded() / 1000), "median_speed_up": \#((medianSpeedUp * 1000).rounded() / 1000), "repeats": \#(one.count)}"#
                        )
                    } else {
                        output.line(
                            "\(label): best \(Int((Double(b * t) / one.min()!).rounded())) tokens/s on 1 thread, \(Int((Double(b * t) / many.min()!).rounded())) on \(threads); speed-up \(String(format: "%.2f", speedUp)) (median of \(one.count) paired runs \(String(format: "%.2f", medianSpeedUp)))"
                        )
                    }
                    continue
                }
                let seconds = try timings(repeats: repeats, minimumSeconds: 2, maximumRuns: 30, once).sorted()
                let (best, median) = (Double(b * t) / seconds[0], Double(b * t) / seconds[seconds.count / 2])
                if mode == "train step" { trainSteps.append(once) }
                let mfu = best * forwardFLOPs * (mode == "forward" ? 1 : 3) / peak
                if json {
                    output.line(
                        #"{"config": "\#(name)", "experts": \#(experts), "batch": \#(b), "length": \#(t), "mode": "\#(mode)", "threads": \#(Parallelism.threadCount), "tokens_per_second": \#(best.rounded()), "median_tokens_per_second": \#(median.rounded()), "repeats": \#(seconds.count), "mfu": \#((mfu * 1000).rounded() / 1000), "gemm_peak_gflops": \#(rounded(peak / 1e9))}"#
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
            let seconds = try alternate(count: configurations.count, rounds: repeats ?? 5) { try trainSteps[$0]() }
            for (index, configuration) in configurations.enumerated().dropFirst() {
                let paired = zip(seconds[index], seconds[0]).map { $0 / $1 }.sorted()
                output.line(
                    "train step time at E = \(configuration.numExperts) over E = \(configurations[0].numExperts) (same activated compute): \(String(format: "%.2f", seconds[index].min()! / seconds[0].min()!)) (best of \(paired.count) runs each, taken in turn; median of the paired ratios \(String(format: "%.2f", paired[paired.count / 2])))"
                )
            }
        }
        return 0
    }

    /// `glam bench decode`: tokens per second of cached incremental decoding.
    static func decode(_ parsed: Arguments, output: inout Output) throws -> Int32 {
        let name = parsed.value("config") ?? "small"
        guard let configuration = ModelConfiguration.named(name) else {
            throw UsageError("bench: unknown configuration '\(name)' (see 'glam params')")
        }
        let batches = try parsed.distinctIntegerList("batch", in: 1...1024) ?? [1, 8]
        let prompt = try parsed.integer("prompt", in: 1...65536) ?? 64
        let count = try parsed.integer("tokens", in: 1...65536) ?? 64
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
        let parameters = ModelParameters(configuration: configuration, seed: 1)
        for b in batches {
            var generator = SeededGenerator(seed: 3)
            let promptTokens = (0..<(b * prompt)).map { _ in Int(generator.next() % UInt64(configuration.vocabSize)) }
            let steps = (0..<count).map { _ in (0..<b).map { _ in Int(generator.next() % UInt64(configuration.vocabSize)) } }
            func once() throws -> Double {
                var decoder = IncrementalDecoder(parameters: parameters, batchSize: b)
                _ = try decoder.prefill(promptTokens)
                let start = DispatchTime.now().uptimeNanoseconds
                for tokens in steps { _ = try decoder.step(tokens) }
                return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            }
            let seconds = try timings(repeats: repeats, minimumSeconds: 1, maximumRuns: 20, once).sorted()
            let (best, median) = (Double(b * count) / seconds[0], Double(b * count) / seconds[seconds.count / 2])
            if parsed.has("json") {
                output.line(
                    #"{"config": "\#(name)", "batch": \#(b), "prompt": \#(prompt), "tokens": \#(count), "threads": \#(Parallelism.threadCount), "tokens_per_second": \#(best.rounded()), "median_tokens_per_second": \#(median.rounded()), "repeats": \#(seconds.count)}"#
                )
            } else {
                output.line(
                    "\(name) decode B=\(b), \(count) tokens after a \(prompt)-token prompt (KV cache): best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) over \(seconds.count) runs"
                )
            }
        }
        return 0
    }

    /// Runs `once` once to warm up, then `repeats` times, or (without `repeats`) until at least
    /// `minimumSeconds` and 3 runs, at most `maximumRuns`; returns each timed run's seconds.
    static func timings(repeats: Int?, minimumSeconds: Double, maximumRuns: Int, _ once: () throws -> Double) rethrows -> [Double] {
        _ = try once()
        var seconds: [Double] = []
        while true {
            seconds.append(try once())
            if let repeats {
                if seconds.count >= repeats { break }
            } else if (seconds.reduce(0, +) >= minimumSeconds && seconds.count >= 3) || seconds.count >= maximumRuns {
                break
            }
        }
        return seconds
    }

    /// Times `once` on each thread count in turn, `rounds` times after one warm-up run each, and
    /// returns the seconds per thread count (in the order given). Leaves `Parallelism.threadCount`
    /// at its last value.
    static func alternate(threads counts: [Int], rounds: Int, _ once: () throws -> Double) rethrows -> [[Double]] {
        try alternate(count: counts.count, rounds: rounds) { index in
            Parallelism.threadCount = counts[index]
            return try once()
        }
    }

    /// Runs `once(0)`, `once(1)`, … `once(count − 1)` in turn, `rounds` times after one warm-up
    /// round, and returns each one's seconds.
    static func alternate(count: Int, rounds: Int, _ once: (Int) throws -> Double) rethrows -> [[Double]] {
        var seconds = [[Double]](repeating: [], count: count)
        for round in 0...rounds {
            for index in 0..<count {
                let time = try once(index)
                if round > 0 { seconds[index].append(time) }
            }
        }
        return seconds
    }

    static func rounded(_ x: Double) -> Double { (x * 10).rounded() / 10 }

    static func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
        let text = value.description
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
