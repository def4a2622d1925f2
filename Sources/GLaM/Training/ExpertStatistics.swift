// How evenly one training step spread its tokens over each MoE layer's experts, and how many
// assignments capacity dropped: the figures `glam train` prints and logs per MoE layer. Loads are
// counted per layer (summing expert e of layer 0 with the unrelated expert e of layer 2 would say
// nothing), before capacity (what the router asked for) and after (what the experts computed).

/// One MoE layer's expert loads in one step.
public struct ExpertLayerStatistics: Sendable, Equatable {
    /// The decoder layer's index.
    public let layer: Int
    /// Per expert, the assignments the router made (real tokens' top-1 choices and their chosen
    /// top-2 choices), before capacity.
    public let requested: [Int]
    /// Per expert, the assignments kept within capacity (the tokens the expert computed).
    public let kept: [Int]
    /// The mean entropy −Σ p log p of the router distribution over real tokens (nats; log E when
    /// the router is uniform).
    public let routerEntropy: Double

    /// The statistics of layer `layer` from its gating on each share of the batch (one per `data`
    /// core on a mesh; one on a single device), summed.
    public init(layer: Int, gatings: [Top2GatingResult<Float>]) {
        let e = gatings.first?.routing.numExperts ?? 0
        var requested = [Int](repeating: 0, count: e), kept = [Int](repeating: 0, count: e)
        var entropy = 0.0, tokens = 0
        for gating in gatings {
            let r = gating.routing
            for t in r.isReal.indices where r.isReal[t] {
                requested[r.firstExpert[t]] += 1
                if r.secondChosen[t] && r.secondExpert[t] != r.firstExpert[t] { requested[r.secondExpert[t]] += 1 }
                tokens += 1
            }
            for (expert, count) in r.expertLoad.enumerated() { kept[expert] += count }
            entropy += Double(gating.routerEntropy) * Double(r.isReal.filter { $0 }.count)
        }
        self.layer = layer
        self.requested = requested
        self.kept = kept
        routerEntropy = tokens > 0 ? entropy / Double(tokens) : 0
    }

    /// Statistics given directly (tests and summaries).
    init(layer: Int, requested: [Int], kept: [Int], routerEntropy: Double) {
        self.layer = layer
        self.requested = requested
        self.kept = kept
        self.routerEntropy = routerEntropy
    }

    /// The share of requested assignments that capacity dropped.
    public var droppedFraction: Double {
        let total = requested.reduce(0, +)
        return total > 0 ? Double(total - kept.reduce(0, +)) / Double(total) : 0
    }

    /// The busiest expert's requested load over the mean (1 = perfectly balanced).
    public var requestedImbalance: Double { Self.imbalance(requested) }

    /// The busiest expert's kept load over the mean kept load (capacity caps it).
    public var keptImbalance: Double { Self.imbalance(kept) }

    /// The quietest expert's requested load over the mean (1 = perfectly balanced, 0 = an expert
    /// no token chose).
    public var requestedMinimumShare: Double {
        let mean = Double(requested.reduce(0, +)) / Double(max(requested.count, 1))
        return mean > 0 ? Double(requested.min()!) / mean : 1
    }

    static func imbalance(_ load: [Int]) -> Double {
        let mean = Double(load.reduce(0, +)) / Double(max(load.count, 1))
        return mean > 0 ? Double(load.max()!) / mean : 1
    }
}
