// `glam plan`: the cost of a training step on a TPU-v4 mesh, with its arithmetic.

import GLaM

enum PlanCommand: Subcommand {
    static let name = "plan"
    static let summary = "Per-chip memory, FLOPs, communication and step time on a TPU-v4 mesh."
    static let help = """
        USAGE: glam plan --config NAME --mesh DxM [--tokens N] [--length T]

        Plans one training step of a named configuration on a mesh of D data × M mdl TPU-v4 chips:
        per-chip parameter and Adafactor memory, inference and training FLOPs per token, all-to-all
        and all-reduce bytes per chip and step, and a step-time estimate, each with its arithmetic.
        The cost model (sharding, byte counts, TPU-v4 constants) is stated in
        Sources/GLaM/Mesh/Planner.swift. Defaults: 1,048,576 tokens per step (the paper's ~1M), T = 1024.
        Example: glam plan --config glam-64b-64e --mesh 64x16   (1,024 chips, as the paper trained it)
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(arguments, command: "plan", options: ["config", "mesh", "tokens", "length"], flags: [])
        guard parsed.positionals.isEmpty else { throw UsageError("plan: unexpected argument '\(parsed.positionals[0])'") }
        guard let name = parsed.value("config") else { throw UsageError("plan: --config NAME is required (see 'glam params')") }
        guard let configuration = ModelConfiguration.named(name) else { throw UsageError("plan: unknown configuration '\(name)'") }
        let meshText = parsed.value("mesh") ?? "1x1"
        let parts = meshText.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 >= 1 }) else {
            throw UsageError("plan: --mesh must be DATAxMDL with positive integers, e.g. 64x16; got '\(meshText)'")
        }
        let tokens = try parsed.integer("tokens", in: 1...Int(1) << 40) ?? 1 << 20
        let length = try parsed.integer("length", in: 1...1 << 20) ?? 1024
        let plan: StepPlan
        do {
            plan = try planTrainingStep(configuration, dataCores: parts[0], modelCores: parts[1], tokensPerStep: tokens, length: length)
        } catch {
            throw UsageError("plan: \(error.description)")
        }
        output.line("\(name) on a \(meshText) TPU-v4 mesh:")
        for line in plan.explanation { output.line("  " + line) }
        return 0
    }
}
