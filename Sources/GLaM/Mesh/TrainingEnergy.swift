// The compute and energy of a whole training run (GLaM's Table 1 and §6 compare 456 MWh for
// 64B/64E over 600B tokens with GPT-3's 1,287 MWh), from the planner's FLOPs per token and
// assumptions that are stated, not measured here:
//
//   FLOPs        = training FLOPs per token · tokens
//   chip-seconds = FLOPs / (peak FLOP/s · utilisation)           (utilisation: the share of peak achieved)
//   energy       = chip-seconds · chip power · PUE               (PUE: the datacentre's overhead over the chips)
//
// and, for a mesh of `chips`, the wall-clock time chip-seconds / chips.

/// What a training-energy estimate assumes.
public struct EnergyAssumptions: Sendable, Equatable {
    /// The share of the chip's peak FLOP/s the run achieves (model FLOPs utilisation), in (0, 1].
    public var utilisation: Double
    /// Mean power of one chip while training, watts.
    public var chipWatts: Double
    /// Power usage effectiveness: the datacentre's energy over the chips' (≥ 1).
    public var powerUsageEffectiveness: Double

    /// Assumptions for TPU v4: 326 W per chip, the mean the GLaM paper reports measuring; a
    /// utilisation of 30% and a PUE of 1.1 are assumptions of this estimate (the paper states
    /// neither).
    public static let tpuV4 = EnergyAssumptions(utilisation: 0.3, chipWatts: 326, powerUsageEffectiveness: 1.1)

    /// Assumptions with these values.
    public init(utilisation: Double, chipWatts: Double, powerUsageEffectiveness: Double) {
        self.utilisation = utilisation
        self.chipWatts = chipWatts
        self.powerUsageEffectiveness = powerUsageEffectiveness
    }
}

/// The compute and energy of training on `tokens` tokens, with its arithmetic.
public struct TrainingEnergyEstimate: Sendable, Equatable {
    /// Training FLOPs of the whole run.
    public let flops: Double
    /// Chip-seconds at the assumed utilisation of TPU v4's peak.
    public let chipSeconds: Double
    /// Wall-clock hours on the plan's chips.
    public let hours: Double
    /// Energy, megawatt-hours (chips × PUE).
    public let megawattHours: Double
    /// Each figure's derivation, one line each.
    public let explanation: [String]

    /// The estimate for `tokens` training tokens at `trainingFLOPsPerToken` on `chips` chips.
    ///
    /// - Throws: `MeshError` when a count or an assumption is out of its range.
    public init(
        trainingFLOPsPerToken: Double, tokens: Double, chips: Int, assumptions: EnergyAssumptions = .tpuV4
    ) throws(MeshError) {
        guard trainingFLOPsPerToken > 0, trainingFLOPsPerToken.isFinite, tokens > 0, tokens.isFinite, chips >= 1 else {
            throw MeshError("an energy estimate needs positive FLOPs per token, tokens and chips")
        }
        guard assumptions.utilisation > 0, assumptions.utilisation <= 1 else {
            throw MeshError("utilisation must be in (0, 1], got \(assumptions.utilisation)")
        }
        guard assumptions.chipWatts > 0, assumptions.chipWatts.isFinite, assumptions.powerUsageEffectiveness >= 1,
            assumptions.powerUsageEffectiveness.isFinite
        else {
            throw MeshError("chip power must be positive and the PUE at least 1")
        }
        flops = trainingFLOPsPerToken * tokens
        chipSeconds = flops / (TPUv4.peakFLOPs * assumptions.utilisation)
        hours = chipSeconds / Double(chips) / 3600
        megawattHours = chipSeconds * assumptions.chipWatts * assumptions.powerUsageEffectiveness / 3.6e9
        let g = { (x: Double) in String(format: "%.4g", x) }
        explanation = [
            "training FLOPs = \(g(trainingFLOPsPerToken / 1e9)) GFLOP/token × \(g(tokens)) tokens = \(g(flops)) FLOP",
            "chip-hours = FLOPs / (\(g(TPUv4.peakFLOPs / 1e12)) TFLOP/s peak × \(g(assumptions.utilisation)) utilisation) = \(g(chipSeconds / 3600)); on \(chips) chips \(g(hours)) h (\(g(hours / 24)) days)",
            "energy = chip-hours × \(g(assumptions.chipWatts)) W × PUE \(g(assumptions.powerUsageEffectiveness)) = \(g(megawattHours)) MWh",
        ]
    }
}
