// `glam bench moe`: the routing half of an MoE layer, timed with the layer's own route and combine
// steps (the "The glam command line" article). The same computation in JAX, measured in the same
// run, is Scripts/bench_moe.py.

import Dispatch
import GLaM

/// `glam bench moe`.
enum BenchMoE: Benchmark {
    static let name = "moe"
    static let usage =
        "glam bench moe [--groups G] [--group-size S] [--experts E] [--model-dim M] [--capacity-factor F] [--threads T] [--repeats R] [--json]"
    /// The sizes when no option is given.
    static let defaults = (groups: 8, groupSize: 1024, experts: 64, modelDim: 512, capacityFactor: "2")
    /// Without --repeats: runs until this many seconds (and 3 runs), at most this many runs.
    static let timing = (minimumSeconds: 1.0, maximumRuns: 50)
    static let help = """
        USAGE: \(usage)

        Times the routing half of an MoE layer, forward only: router logits x·W_g, GShard top-2
        gating, dispatch to [E, G·C, M], and combine back to [G, S, M] (experts are the identity).
        Defaults: G = \(defaults.groups), S = \(defaults.groupSize), E = \(defaults.experts), M = \(defaults.modelDim), capacity factor \(defaults.capacityFactor).
        Reported: best and median tokens/s (G·S tokens per run; each case runs once to warm up,
        then R times, default until \(timing.minimumSeconds) s and at least 3, at most \(timing.maximumRuns)).

        OPTIONS:
          --groups G, --group-size S, --experts E, --model-dim M   the sizes (1...4096, 1...65536,
                        1...4096, 1...65536)
          --capacity-factor F  a positive number
          --threads T   worker threads (1...256)
          --repeats R   timed repetitions (1...1000)
          --json        one JSON object: groups, group_size, experts, model_dim, capacity_factor,
                        threads, tokens_per_second, median_tokens_per_second, repeats
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Benchmarking.arguments(
            arguments, benchmark: name, options: ["groups", "group-size", "experts", "model-dim", "capacity-factor", "threads", "repeats"])
        let g = try parsed.integer("groups", in: 1...4096) ?? defaults.groups
        let s = try parsed.integer("group-size", in: 1...65536) ?? defaults.groupSize
        let e = try parsed.integer("experts", in: 1...4096) ?? defaults.experts
        let m = try parsed.integer("model-dim", in: 1...65536) ?? defaults.modelDim
        let factorText = parsed.value("capacity-factor") ?? defaults.capacityFactor
        guard let factor = Double(factorText), factor > 0, factor.isFinite else {
            throw UsageError("bench moe: --capacity-factor must be a positive number, got '\(factorText)'")
        }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let repeats = try parsed.integer("repeats", in: 1...1000)
        let configuration = Top2GatingConfiguration(numExperts: e, capacityFactor: factor)
        let capacity: Int
        do { capacity = try configuration.capacity(groupSize: s) } catch { throw UsageError("bench moe: \(error.description)") }
        // x, its router logits and gates, the dispatched tokens and the experts' outputs [G, E, C, M]
        // and the result, in float32.
        let floats = CheckedSize.sum([
            CheckedSize.product([3, g, s, m]), CheckedSize.product([4, g, s, e]), CheckedSize.product([2, g, e, capacity, m]),
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
        // The MoE layer's own route and combine steps, with identity experts (wi, wo are not read).
        let layer = MixtureOfExperts(gate: router, wi: router, wo: router)
        let layerConfiguration = MoELayerConfiguration(gating: configuration, numGroups: g, activation: .geluTanh)
        func once() throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            let routed = try layer.route(x, paddings: nil, configuration: layerConfiguration)  // x·W_g, top-2 gating, dispatch
            let y = layer.combine(routed.returning(routed.expertInput), like: x, paddings: nil)  // [G, S, M]
            precondition(y.shape == [g, s, m])
            return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        }
        let seconds = try Benchmarking.timings(
            repeats: repeats, minimumSeconds: timing.minimumSeconds, maximumRuns: timing.maximumRuns, once)
        let fastest = Benchmarking.minimumAndMedian(seconds)
        let tokens = Double(g * s)
        let (best, median) = (tokens / fastest.minimum, tokens / fastest.median)
        if parsed.has("json") {
            output.line(
                JSONText.line(
                    [
                        "groups": g, "group_size": s, "experts": e, "model_dim": m, "capacity_factor": factor,
                        "threads": Parallelism.threadCount, "tokens_per_second": best.rounded(),
                        "median_tokens_per_second": median.rounded(), "repeats": seconds.count,
                    ] as [String: Any])
            )
        } else {
            output.line(
                "MoE routing (x·W_g, top-2 gating, dispatch, combine), G=\(g) S=\(s) E=\(e) M=\(m) cf=\(factor)")
            output.line("best \(Int(best.rounded())) tokens/s, median \(Int(median.rounded())) tokens/s over \(seconds.count) runs")
        }
        return 0
    }
}
