// What one training step sends between cores on a `data × mdl` mesh, collective by collective, as
// `MeshTrainer` moves it — so `glam train --mesh` can print the ledger beside this prediction, and
// the TPU planner uses the same arithmetic with bfloat16 activations. For a group of n cores and a
// tensor of b bytes, every core sends (n−1)/n·b in an all-to-all and 2(n−1)/n·b in an all-reduce
// (a ring: reduce-scatter then all-gather), as the ledger counts them (Collectives.swift).
//
//   all-to-all over data   per MoE layer: dispatch and return forward, their reverses backward:
//                          4 × [E, G/d, C, M]
//   all-reduce over mdl    per MoE layer: the expert output (forward) and the expert input's gradient
//                          (backward) are partial sums over H/m: 2 × [E/d, G·C, M]
//   all-reduce over data   the gradients of every weight replicated over data (all but the experts)
//   optimizer sums         per expert weight: Σu² and ΣW² (two Doubles) over mdl then data, and, when
//                          H is split and the statistics are factored, over mdl: the row sums of
//                          g² of `wi` [E/d, M], or the column sums of `wo` [E/d, M] and its Σvr [E/d]

/// The bytes each core sends in one training step, by collective.
public struct StepCommunication: Sendable, Equatable {
    /// MoE dispatch and return all-to-alls over `data`, forward and backward.
    public var allToAll = 0
    /// Expert partial sums over H all-reduced over `mdl`, forward and backward.
    public var expertAllReduce = 0
    /// Gradients of the weights replicated over `data`, all-reduced over `data`.
    public var gradientAllReduce = 0
    /// Adafactor's sums across expert-weight shards, over `data`.
    public var optimizerData = 0
    /// Adafactor's sums across expert-weight shards, over `mdl`.
    public var optimizerModel = 0

    /// Everything sent along `data`.
    public var data: Int { allToAll + gradientAllReduce + optimizerData }
    /// Everything sent along `mdl`.
    public var model: Int { expertAllReduce + optimizerModel }

    /// The bytes of a step whose update was skipped (non-finite gradients): no optimizer sums.
    public var withoutOptimizer: StepCommunication {
        var out = self
        (out.optimizerData, out.optimizerModel) = (0, 0)
        return out
    }
}

/// How tensors travel: element sizes and what is split over `mdl`.
public struct CommunicationAssumptions: Sendable, Equatable {
    /// Bytes per activation element (4: float32, 2: bfloat16).
    public var activationBytes: Int
    /// Whether activations are split over `mdl` along M (praxis' training layout) instead of replicated.
    public var activationsSplitOverModel: Bool
    /// Whether the weights replicated over `data` are split over `mdl` (their gradients then too).
    public var replicatedWeightsSplitOverModel: Bool

    /// Assumptions as named.
    public init(activationBytes: Int, activationsSplitOverModel: Bool, replicatedWeightsSplitOverModel: Bool) {
        self.activationBytes = activationBytes
        self.activationsSplitOverModel = activationsSplitOverModel
        self.replicatedWeightsSplitOverModel = replicatedWeightsSplitOverModel
    }

    /// The virtual mesh of `MeshTrainer`: float32, activations and non-expert weights replicated over `mdl`.
    public static let virtualMesh = CommunicationAssumptions(
        activationBytes: 4, activationsSplitOverModel: false, replicatedWeightsSplitOverModel: false)
    /// The planner's TPU layout, a simplification of praxis': bfloat16 activations split over `mdl`
    /// along M, non-expert weights split over `mdl` (praxis also splits some over `data`; not
    /// modelled), optimizer sums of the weights split over `mdl` not counted (a few MB).
    public static let tpu = CommunicationAssumptions(
        activationBytes: 2, activationsSplitOverModel: true, replicatedWeightsSplitOverModel: true)
}

/// The bytes each core sends in one training step of `c` on batches of `batchSize` rows of
/// `length` tokens in `groups` groups (the configuration's `numGroups` by default), on a mesh of
/// `dataCores × modelCores`.
public func stepCommunication(
    _ c: ModelConfiguration, batchSize: Int, length: Int, groups: Int? = nil, dataCores d: Int, modelCores m: Int,
    assumptions: CommunicationAssumptions = .virtualMesh
) throws(MeshError) -> StepCommunication {
    let g = groups ?? c.numGroups
    // Bounds that keep every byte count within Int (up to 4,096 cores per axis, 2^32 tokens, M ≤ 65,536).
    guard (1...4096).contains(d), (1...4096).contains(m) else { throw MeshError("mesh axes must have 1…4096 cores, got \(d) × \(m)") }
    guard batchSize >= 1, length >= 1, batchSize * length <= 1 << 32, c.modelDim <= 1 << 16 else {
        throw MeshError("a step must have 1…2^32 tokens, got \(batchSize) × \(length)")
    }
    guard g >= 1, (batchSize * length) % g == 0, !c.isMoE || g % d == 0 else {
        throw MeshError("\(g) groups must split the \(batchSize)·\(length) tokens and divide over the \(d) data cores")
    }
    try MeshLayout.checkExperts(c, dataCores: d, modelCores: m)
    guard !assumptions.activationsSplitOverModel || c.modelDim % m == 0 else {
        throw MeshError("the \(m) mdl cores do not divide the model dimension \(c.modelDim)")
    }
    func allToAll(_ n: Int, _ bytes: Int) -> Int { n > 1 ? (n - 1) * bytes / n : 0 }
    func allReduce(_ n: Int, _ bytes: Int) -> Int { n > 1 ? 2 * (n - 1) * bytes / n : 0 }
    var out = StepCommunication()
    let moeLayers = c.moeLayers.count
    if moeLayers > 0 {
        let (e, mDim) = (c.numExperts, c.modelDim)
        let capacity: Int
        do { capacity = try c.gating.capacity(groupSize: batchSize * length / g) } catch { throw MeshError(error.description) }
        let slice = assumptions.activationsSplitOverModel ? m : 1
        let dispatched = e * (g / d) * capacity * mDim / slice * assumptions.activationBytes
        out.allToAll = moeLayers * 4 * allToAll(d, dispatched)
        out.expertAllReduce = moeLayers * 2 * allReduce(m, e / d * g * capacity * mDim * assumptions.activationBytes)
    }
    let adafactor = AdafactorConfiguration()
    for path in ParameterPath.all(in: c) {
        let shape = path.shape(in: c)
        let count = shape.reduce(1, *)
        if path.isExpertWeight {
            // Split over mdl and factored: wi's row sums [E/d, M]; wo's column sums [E/d, M] and Σvr [E/d].
            if m > 1 && adafactor.isFactored(shape) {
                let local = c.numExperts / d
                out.optimizerModel += allReduce(m, local * c.modelDim * 4) + (path.expertHiddenAxis == 1 ? allReduce(m, local * 4) : 0)
            }
            // Σu² and ΣW² as two Doubles, over mdl and then data.
            out.optimizerModel += allReduce(m, 16)
            out.optimizerData += allReduce(d, 16)
        } else {
            out.gradientAllReduce += allReduce(d, count * 4 / (assumptions.replicatedWeightsSplitOverModel ? m : 1))
        }
    }
    return out
}
