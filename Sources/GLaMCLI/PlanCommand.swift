// `glam plan`: the cost of a training step on a TPU-v4 mesh, with its arithmetic; with --virtual,
// the bytes each core of the virtual mesh sends per training step (the communication model that
// `glam train --mesh` checks, and Scripts/gspmd/check.py compares with XLA's collectives).

import Foundation
import GLaM

enum PlanCommand: Subcommand {
    static let name = "plan"
    static let summary = "Per-chip memory, FLOPs, communication and step time on a TPU-v4 mesh."
    static let help = """
        USAGE: glam plan --config NAME --mesh DxM [--tokens N] [--length T]
                         [--train-tokens N [--utilisation U] [--chip-watts W] [--pue P]] [--against NAME]
               glam plan --virtual --config NAME --mesh DxM [--batch B] [--length T] [--groups G] [--json]

        Plans one training step of a named configuration on a mesh of D data × M mdl TPU-v4 chips:
        per-chip parameter and Adafactor memory, inference and training FLOPs per token, all-to-all
        and all-reduce bytes per chip and step, and a step-time estimate, each with its arithmetic.
        The cost model (sharding, byte counts, TPU-v4 constants) is stated in
        Sources/GLaM/Mesh/Planner.swift. Defaults: mesh \(defaults.mesh), \(defaults.tokens) tokens per step (2^20, the paper's ~1M),
        T = \(defaults.length).
        Example: glam plan --config glam-64b-64e --mesh 64x16   (1,024 chips, as the paper trained it)

        --train-tokens N adds the whole run: training FLOPs = training FLOPs/token × N, chip-hours at
        utilisation U of the peak (default \(EnergyAssumptions.tpuV4.utilisation), an assumption), wall-clock time on the mesh, and
        energy = chip-hours × W watts per chip (default \(EnergyAssumptions.tpuV4.chipWatts), the paper's measured TPU-v4 mean) × PUE P
        (default \(EnergyAssumptions.tpuV4.powerUsageEffectiveness), an assumption). The paper: 64B/64E on 600e9 tokens, 456 MWh.
        --against NAME compares the inference FLOPs per token with another configuration's, counted
        the same way (the paper compares GLaM 64B/64E with dense models: --against glam-137b).

        --virtual prints instead what each core of `glam train --mesh DxM` sends in one training step
        on batches of B rows of T tokens routed in G groups (defaults \(defaults.virtualBatch), \(defaults.virtualLength) and the configuration's
        num_groups): the MoE all-to-alls, the expert partial-sum all-reduces over mdl, the gradient
        all-reduce of the replicated weights over data and Adafactor's cross-shard sums, in bytes
        (float32), as text or, with --json, one JSON object. The model is
        stepCommunication(_:batchSize:length:groups:dataCores:modelCores:assumptions:) in
        Sources/GLaM/Mesh/CommunicationModel.swift.
        """

    /// Every option's default, stated once: used by `run` and printed by `help`.
    static let defaults = (tokens: 1 << 20, length: 1024, virtualBatch: 8, virtualLength: 128, mesh: "1x1")

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "plan",
            options: [
                "config", "mesh", "tokens", "length", "batch", "groups", "train-tokens", "utilisation", "chip-watts", "pue", "against",
            ],
            flags: ["virtual", "json"])
        guard parsed.positionals.isEmpty else { throw UsageError("plan: unexpected argument '\(parsed.positionals[0])'") }
        guard let name = parsed.value("config") else { throw UsageError("plan: --config NAME is required (see 'glam params')") }
        guard let configuration = ModelConfiguration.named(name) else { throw UsageError("plan: unknown configuration '\(name)'") }
        let meshText = parsed.value("mesh") ?? defaults.mesh
        let fields = meshText.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard fields.count == 2, fields.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw UsageError("plan: --mesh must be DATAxMDL with positive integers, e.g. 64x16; got '\(meshText)'")
        }
        let parts = fields.map { $0! }
        let energyOptions = ["train-tokens", "utilisation", "chip-watts", "pue", "against"]
        if parsed.has("virtual") {
            for option in energyOptions where parsed.value(option) != nil {
                throw UsageError("plan: --\(option) applies to a TPU plan, not --virtual")
            }
            return try virtualMesh(parsed, name: name, configuration: configuration, data: parts[0], model: parts[1], output: &output)
        }
        for option in ["batch", "groups"] where parsed.value(option) != nil {
            throw UsageError("plan: --\(option) applies to --virtual only (a TPU plan takes --tokens and --length)")
        }
        if parsed.has("json") { throw UsageError("plan: --json applies to --virtual only") }
        let tokens = try parsed.integer("tokens", in: 1...Int(1) << 40) ?? defaults.tokens
        let length = try parsed.integer("length", in: 1...1 << 20) ?? defaults.length
        let plan: StepPlan
        do {
            plan = try planTrainingStep(configuration, dataCores: parts[0], modelCores: parts[1], tokensPerStep: tokens, length: length)
        } catch {
            throw UsageError("plan: \(error.description)")
        }
        output.line("\(name) on a \(meshText) TPU-v4 mesh:")
        for line in plan.explanation { output.line("  " + line) }
        if let other = parsed.value("against") {
            guard let otherConfiguration = ModelConfiguration.named(other) else {
                throw UsageError("plan: unknown configuration '\(other)'")
            }
            // The same count at one chip: FLOPs per token do not depend on the mesh.
            let otherPlan: StepPlan
            do {
                otherPlan = try planTrainingStep(otherConfiguration, dataCores: 1, modelCores: 1, tokensPerStep: length, length: length)
            } catch {
                throw UsageError("plan: \(error.description)")
            }
            output.line(
                "  inference FLOPs/token against \(other): "
                    + String(
                        format: "%.4g / %.4g GFLOP = %.3f", plan.inferenceFLOPsPerToken / 1e9, otherPlan.inferenceFLOPsPerToken / 1e9,
                        plan.inferenceFLOPsPerToken / otherPlan.inferenceFLOPsPerToken))
        }
        guard let tokensText = parsed.value("train-tokens") else {
            for option in ["utilisation", "chip-watts", "pue"] where parsed.value(option) != nil {
                throw UsageError("plan: --\(option) needs --train-tokens N")
            }
            return 0
        }
        func number(_ option: String, _ text: String?) throws -> Double? {
            guard let text else { return nil }
            guard let value = Double(text), value.isFinite else { throw UsageError("plan: --\(option) must be a number, got '\(text)'") }
            return value
        }
        var assumptions = EnergyAssumptions.tpuV4
        assumptions.utilisation = try number("utilisation", parsed.value("utilisation")) ?? assumptions.utilisation
        assumptions.chipWatts = try number("chip-watts", parsed.value("chip-watts")) ?? assumptions.chipWatts
        assumptions.powerUsageEffectiveness = try number("pue", parsed.value("pue")) ?? assumptions.powerUsageEffectiveness
        let trainTokens = try number("train-tokens", tokensText)!
        guard trainTokens >= 1, trainTokens <= 1e16 else {
            throw UsageError("plan: --train-tokens must be in 1...1e16, got '\(tokensText)'")
        }
        do {
            let energy = try TrainingEnergyEstimate(
                trainingFLOPsPerToken: plan.trainingFLOPsPerToken, tokens: trainTokens, chips: parts[0] * parts[1], assumptions: assumptions
            )
            output.line("the whole run:")
            for line in energy.explanation { output.line("  " + line) }
        } catch {
            throw UsageError("plan: \(error.description)")
        }
        return 0
    }

    /// `--virtual`: the communication model of the virtual mesh for one training step.
    static func virtualMesh(
        _ parsed: Arguments, name: String, configuration: ModelConfiguration, data: Int, model: Int, output: inout Output
    ) throws -> Int32 {
        if parsed.value("tokens") != nil { throw UsageError("plan: --virtual takes --batch and --length, not --tokens") }
        let batch = try parsed.integer("batch", in: 1...1 << 20) ?? defaults.virtualBatch
        let length = try parsed.integer("length", in: 1...1 << 20) ?? defaults.virtualLength
        let groups = try parsed.integer("groups", in: 1...1 << 30) ?? configuration.numGroups
        let step: StepCommunication
        do {
            step = try stepCommunication(
                configuration, batchSize: batch, length: length, groups: groups, dataCores: data, modelCores: model)
        } catch {
            throw UsageError("plan: \(error.description)")
        }
        let parts: KeyValuePairs<String, Int> = [
            "all_to_all": step.allToAll, "expert_all_reduce": step.expertAllReduce, "gradient_all_reduce": step.gradientAllReduce,
            "optimizer_data": step.optimizerData, "optimizer_mdl": step.optimizerModel, "data": step.data, "mdl": step.model,
        ]
        if parsed.has("json") {
            var object: [String: Any] = [
                "config": name, "mesh": [data, model], "batch": batch, "length": length, "groups": groups,
                "unit": "bytes sent per core per step",
            ]
            for (key, value) in parts { object[key] = value }
            output.line(JSONText.line(object))
            return 0
        }
        output.line(
            "\(name), one training step on a virtual \(data)x\(model) mesh (data × mdl), B = \(batch), T = \(length), G = \(groups):")
        output.line("bytes each core sends (float32):")
        output.line(
            "  over data: \(step.data)  = MoE all-to-alls \(step.allToAll) + gradient all-reduce \(step.gradientAllReduce) + Adafactor sums \(step.optimizerData)"
        )
        output.line("  over mdl:  \(step.model)  = expert partial sums \(step.expertAllReduce) + Adafactor sums \(step.optimizerModel)")
        return 0
    }
}
