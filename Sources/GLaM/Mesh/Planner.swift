// A planner: what one training step of a configuration costs on a data × mdl mesh of TPU-v4 chips,
// under a stated cost model, with its arithmetic shown. Checked against the paper: glam-64b-64e
// needs about 180 GFLOPs per token for inference (Table 1) and trained on 1,024 chips.
//
// The model (all assumptions named here):
// - Sharding: expert weights [E, M, H] split E over `data` and H over `mdl` (GLaM's 2D sharding);
//   every other weight split over `mdl` and replicated over `data`. Weights and Adafactor
//   statistics in float32; activations in bfloat16 (2 bytes).
// - FLOPs per token, forward: 2 × (activated matrix parameters outside the embedding lookup, plus
//   the V·M output projection) + 4·T·N·D per layer (attention scores and values over T keys).
//   Training: 3 × forward.
// - Communication per step and core: `stepCommunication` (CommunicationModel.swift) with a
//   simplification of praxis' layout (`CommunicationAssumptions.tpu`): one group per data core; each MoE layer's dispatch and return all-to-alls over `data`
//   (forward and backward) of bf16 activations split over `mdl` along M; the H-split experts'
//   partial sums over `mdl` (reduce-scatter + all-gather, the bytes of an all-reduce); the fp32
//   gradients of data-replicated weights (split over m) all-reduced over `data` as a ring.
// - Time: compute at peak bf16 FLOP/s, the weights and statistics read once from HBM, and the
//   communication over ICI, added without overlap (an upper bound of the three).

/// TPU v4 figures the planner assumes (public specifications).
public enum TPUv4 {
    /// Peak bfloat16 FLOP/s per chip.
    public static let peakFLOPs = 275e12
    /// HBM bandwidth per chip, bytes/s.
    public static let hbmBandwidth = 1.2e12
    /// HBM capacity per chip, bytes (32 GiB).
    public static let hbmBytes = 32.0 * 1_073_741_824
    /// Inter-chip interconnect bandwidth per chip, bytes/s (6 links × 50 GB/s).
    public static let iciBandwidth = 300e9
}

/// The cost of one training step on a mesh, with the arithmetic behind each figure.
public struct StepPlan: Sendable {
    /// Inference FLOPs per token (forward).
    public let inferenceFLOPsPerToken: Double
    /// Training FLOPs per token (3 × forward).
    public let trainingFLOPsPerToken: Double
    /// Parameter bytes per core (float32).
    public let parameterBytesPerCore: Double
    /// Adafactor statistics bytes per core (float32).
    public let optimizerBytesPerCore: Double
    /// All-to-all bytes each core sends per training step.
    public let allToAllBytesPerCore: Double
    /// All-reduce bytes each core sends per training step (gradients, expert partial sums, optimizer sums).
    public let allReduceBytesPerCore: Double
    /// Estimated step time, seconds (compute + HBM + ICI, no overlap).
    public let stepSeconds: Double
    /// Each figure's derivation, one line each.
    public let explanation: [String]
}

/// Plans a training step of `configuration` on a `data × mdl` mesh with `tokensPerStep` tokens of
/// sequences of `length`.
public func planTrainingStep(
    _ c: ModelConfiguration, dataCores d: Int, modelCores m: Int, tokensPerStep: Int = 1 << 20, length: Int = 1024
) throws(MeshError) -> StepPlan {
    guard d >= 1, m >= 1 else { throw MeshError("mesh axes must have at least one core") }
    guard tokensPerStep >= 1, length >= 1 else { throw MeshError("a step needs at least one token and a length of at least 1") }
    try MeshLayout.checkExperts(c, dataCores: d, modelCores: m)
    guard tokensPerStep % length == 0, (tokensPerStep / length) % d == 0 else {
        throw MeshError("the data axis (\(d) cores) does not divide the \(tokensPerStep / length) sequences of a step")
    }
    let count = ParameterCount(c)
    var expertParameters = 0, expertStatistics = 0, otherStatistics = 0
    let adafactor = AdafactorConfiguration()
    for path in ParameterPath.all(in: c) {
        let shape = path.shape(in: c)
        let statistics =
            adafactor.isFactored(shape)
            ? shape.dropLast(2).reduce(1, *) * (shape[shape.count - 2] + shape[shape.count - 1]) : shape.reduce(1, *)
        if path.isExpertWeight {
            expertParameters += shape.reduce(1, *)
            expertStatistics += statistics
        } else {
            otherStatistics += statistics
        }
    }
    let otherParameters = count.total - expertParameters
    let cores = Double(d * m)
    let parameterBytes = 4 * (Double(expertParameters) / cores + Double(otherParameters) / Double(m))
    let optimizerBytes = 4 * (Double(expertStatistics) / cores + Double(otherStatistics) / Double(m))

    let matrix = Double(count.activated - count.embedding) + Double(c.vocabSize * c.modelDim)
    let attention = Double(c.numLayers * 4 * length * c.numHeads * c.headDim)
    let forward = 2 * matrix + attention
    let training = 3 * forward

    let moeLayers = c.moeLayers.count
    let communication = try stepCommunication(
        c, batchSize: tokensPerStep / length, length: length, groups: d, dataCores: d, modelCores: m, assumptions: .tpu)
    let capacity = c.isMoE ? (try? c.gating.capacity(groupSize: tokensPerStep / d)) ?? 0 : 0
    let allToAll = Double(communication.allToAll)
    let allReduce = Double(
        communication.gradientAllReduce + communication.expertAllReduce + communication.optimizerData + communication.optimizerModel)
    let computeSeconds = training * Double(tokensPerStep) / (cores * TPUv4.peakFLOPs)
    let memorySeconds = (parameterBytes + optimizerBytes) / TPUv4.hbmBandwidth
    let networkSeconds = (allToAll + allReduce) / TPUv4.iciBandwidth
    func g(_ x: Double) -> String { String(format: "%.4g", x) }
    let explanation = [
        "mesh: \(d) data × \(m) mdl = \(d * m) chips; \(tokensPerStep) tokens per step, T = \(length)",
        "activated matrix parameters outside the embedding lookup: \(count.activated - count.embedding) + output projection V·M \(c.vocabSize * c.modelDim) = \(g(matrix))",
        "inference FLOPs/token = 2 × \(g(matrix)) + attention 4·T·N·D·L \(g(attention)) = \(g(forward / 1e9)) GFLOP",
        "training FLOPs/token = 3 × forward = \(g(training / 1e9)) GFLOP",
        "parameters per chip: experts \(expertParameters)/\(d * m) + others \(otherParameters)/\(m) → \(g(parameterBytes / 1e9)) GB (fp32)",
        "Adafactor statistics per chip: experts \(expertStatistics)/\(d * m) + others \(otherStatistics)/\(m) → \(g(optimizerBytes / 1e9)) GB",
        "all-to-all per chip: \(moeLayers) MoE layers × 4 × [E, G/d, C, M/m] = [\(c.numExperts), 1, \(capacity), \(c.modelDim / m)] × 2 B × (d−1)/d = \(g(allToAll / 1e9)) GB",
        "all-reduce per chip: gradients 2(d−1)/d × 4 B × \(otherParameters)/\(m) = \(g(Double(communication.gradientAllReduce) / 1e9)) GB; expert partial sums over mdl \(moeLayers) × 2 × 2(m−1)/m × [E/d, G·C, M] × 2 B = \(g(Double(communication.expertAllReduce) / 1e9)) GB; optimizer sums \(communication.optimizerData + communication.optimizerModel) B",
        "step time ≤ compute \(g(computeSeconds)) s (peak \(g(TPUv4.peakFLOPs / 1e12)) TFLOP/s) + HBM \(g(memorySeconds)) s + ICI \(g(networkSeconds)) s = \(g(computeSeconds + memorySeconds + networkSeconds)) s",
        "memory per chip: \(g((parameterBytes + optimizerBytes) / 1e9)) GB of \(g(TPUv4.hbmBytes / 1e9)) GB HBM before activations",
    ]
    return StepPlan(
        inferenceFLOPsPerToken: forward, trainingFLOPsPerToken: training, parameterBytesPerCore: parameterBytes,
        optimizerBytesPerCore: optimizerBytes, allToAllBytesPerCore: allToAll, allReduceBytesPerCore: allReduce,
        stepSeconds: computeSeconds + memorySeconds + networkSeconds, explanation: explanation)
}
