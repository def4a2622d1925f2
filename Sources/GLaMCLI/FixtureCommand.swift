// `glam fixture`: golden fixtures at a user's own sizes, computed by this implementation (its
// `source` says so), for shapes the committed fixtures do not cover. The package's own tests keep
// using independent references only (Fixtures/); these files are for checking other code.

import Foundation
import GLaM

enum FixtureCommand: Subcommand {
    static let name = "fixture"
    static let summary = "Write a golden fixture at your own sizes, computed by this implementation."
    static let help = """
        USAGE: glam fixture --kind top2_gating [--experts E] [--groups G] [--group-size S] [GATING] --out FILE
               glam fixture --kind moe_layer [--experts E] [--groups G] [--batch B] [--length T] [--model-dim M]
                            [--hidden H] [--activation gelu_tanh|relu] [GATING] --out FILE
               glam fixture --kind glam_lm [--config NAME] [--batch B] [--length T] [--groups G] --out FILE
        GATING: [--capacity-factor F|none] [--expert-capacity C] [--legacy true|false] [--logit-cap X]
        COMMON: [--padding P] [--logit-scale X] [--seed N]

        Writes a golden fixture (the "Golden fixtures" article) whose inputs and parameters are drawn
        from --seed and whose expected tensors are computed by this glam, with every tensor the kind
        defines (top2_gating: combine, dispatch, aux_loss, over_capacity; moe_layer: y, aux_loss and
        the gradients of Σ(y ⊙ dy) + aux_loss; glam_lm: logits, the four losses and every parameter's
        gradient). Its source names glam and its version: it is a regression reference for other
        implementations at sizes the committed fixtures (from praxis and JAX) do not reach, not an
        independent check of glam. Read it with Fixtures/kit/glam_fixtures.py or `glam verify`.

        Inputs: logits (top2_gating) ~ N(0, X²) with X = --logit-scale; x and dy (moe_layer) ~ N(0, 1),
        router, wi and wo initialised as in the model (the router scaled by X); glam_lm: the model's
        initialisation from the seed and uniform token ids. --padding P marks each position as padding
        with probability P (glam_lm: a tail of each row, so that padding stays at the end).

        Defaults: E \(defaults.experts), G \(defaults.groups) (glam_lm: the configuration's), S \(defaults.groupSize), B \(defaults.batch), T \(defaults.length), M \(defaults.modelDim), H \(defaults.hidden),
        \(defaults.activation), capacity factor \(defaults.capacityFactor) (GLaM's), legacy \(defaults.legacy), logit cap \(defaults.logitCap) (off),
        padding \(defaults.padding), logit scale \(defaults.logitScale), seed \(defaults.seed), config \(defaults.config). Sizes are bounded so that
        the fixture stays under 1 GiB; larger requests are refused (exit 2).
        Example: glam fixture --kind top2_gating --experts 64 --group-size 4096 --capacity-factor 1.25 --out e64.safetensors
        """

    /// Every option's default, stated once: used by `run` and printed by `help`.
    static let defaults = (
        experts: 8, groups: 1, groupSize: 64, batch: 2, length: 32, modelDim: 32, hidden: 64, activation: "gelu_tanh",
        capacityFactor: 2.0, legacy: true, logitCap: 0.0, padding: 0.0, logitScale: 1.0, seed: 0, config: "tiny"
    )
    static let gatingOptions = ["experts", "capacity-factor", "expert-capacity", "legacy", "logit-cap"]
    static let commonOptions = ["kind", "out", "padding", "logit-scale", "seed", "groups"]
    /// The largest tensor a fixture may hold, in elements (1 GiB of float32).
    static let maximumElements = 1 << 28

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "fixture",
            options: Set(commonOptions + gatingOptions + ["group-size", "batch", "length", "model-dim", "hidden", "activation", "config"]),
            flags: [])
        guard parsed.positionals.isEmpty else { throw UsageError("fixture: unexpected argument '\(parsed.positionals[0])'") }
        guard let kind = parsed.value("kind") else { throw UsageError("fixture: --kind top2_gating|moe_layer|glam_lm is required") }
        guard let outURL = try parsed.outputFile("out") else { throw UsageError("fixture: --out FILE is required") }
        let out = parsed.value("out")!  // as given, for messages
        let allowed: [String: [String]] = [
            "top2_gating": commonOptions + gatingOptions + ["group-size"],
            "moe_layer": commonOptions + gatingOptions + ["batch", "length", "model-dim", "hidden", "activation"],
            "glam_lm": commonOptions + ["config", "batch", "length"],
        ]
        guard let options = allowed[kind] else {
            throw UsageError(
                "fixture: unknown --kind '\(kind)' (top2_gating, moe_layer or glam_lm; adafactor_step fixtures come from optax)")
        }
        if let stray = parsed.options.keys.sorted().first(where: { !options.contains($0) }) {
            throw UsageError("fixture: --\(stray) does not apply to --kind \(kind)")
        }
        let seed = UInt64(try parsed.integer("seed", in: 0...Int(Int32.max)) ?? defaults.seed)
        let padding = try number(parsed, "padding", in: 0...1) ?? defaults.padding
        let scale = try number(parsed, "logit-scale", in: 0...1000) ?? defaults.logitScale
        var generator = SeededGenerator(seed: seed)
        var tensors: [String: SafeTensor] = [:]
        let config: [String: Any]
        switch kind {
        case "top2_gating":
            let gating = try gatingConfig(parsed)
            let g: Int = try parsed.integer("groups", in: 1...1 << 20) ?? defaults.groups
            let s: Int = try parsed.integer("group-size", in: 1...1 << 20) ?? defaults.groupSize
            let e = gating["num_experts"] as! Int
            try checkSize(g, s, e, capacity: capacity(gating, groupSize: s))
            tensors["input.logits"] = SafeTensor(
                Tensor.randomNormal(shape: [g, s, e], standardDeviation: Float(scale), generator: &generator))
            if padding > 0 { tensors["input.paddings"] = SafeTensor(paddings([g, s], padding, &generator)) }
            config = gating
        case "moe_layer":
            var layer = try gatingConfig(parsed)
            let e = layer["num_experts"] as! Int
            let b: Int = try parsed.integer("batch", in: 1...1 << 16) ?? defaults.batch
            let t: Int = try parsed.integer("length", in: 1...1 << 16) ?? defaults.length
            let m: Int = try parsed.integer("model-dim", in: 1...1 << 14) ?? defaults.modelDim
            let h: Int = try parsed.integer("hidden", in: 1...1 << 16) ?? defaults.hidden
            let g: Int = try parsed.integer("groups", in: 1...1 << 20) ?? defaults.groups
            guard (b * t) % g == 0 else { throw UsageError("fixture: --groups \(g) must divide the \(b)·\(t) tokens") }
            let activation = parsed.value("activation") ?? defaults.activation
            guard activation == "gelu_tanh" || activation == "relu" else {
                throw UsageError("fixture: --activation must be gelu_tanh or relu, got '\(activation)'")
            }
            try checkSize(g, b * t / g, e, capacity: capacity(layer, groupSize: b * t / g))
            try checkLayerSize(experts: e, modelDim: m, hidden: h, tokens: b * t)
            layer["num_groups"] = g
            layer["activation"] = activation
            let bound = (3.0 / Float(m)).squareRoot()
            tensors["input.x"] = SafeTensor(Tensor.randomNormal(shape: [b, t, m], generator: &generator))
            tensors["input.dy"] = SafeTensor(Tensor.randomNormal(shape: [b, t, m], generator: &generator))
            tensors["param.gate"] = SafeTensor(Tensor.randomUniform(shape: [m, e], bound: bound * Float(scale), generator: &generator))
            tensors["param.wi"] = SafeTensor(Tensor.randomUniform(shape: [e, m, h], bound: bound, generator: &generator))
            tensors["param.wo"] = SafeTensor(
                Tensor.randomUniform(shape: [e, h, m], bound: (3.0 / Float(h)).squareRoot(), generator: &generator))
            if padding > 0 { tensors["input.paddings"] = SafeTensor(paddings([b, t], padding, &generator)) }
            config = layer
        default:  // glam_lm
            let name = parsed.value("config") ?? defaults.config
            guard var configuration = ModelConfiguration.named(name) else {
                throw UsageError("fixture: unknown configuration '\(name)' (see 'glam params')")
            }
            let b: Int = try parsed.integer("batch", in: 1...1 << 12) ?? defaults.batch
            let t: Int = try parsed.integer("length", in: 1...1 << 14) ?? defaults.length
            if let g: Int = try parsed.integer("groups", in: 1...1 << 20) { configuration.numGroups = g }
            guard (b * t) % configuration.numGroups == 0 else {
                throw UsageError("fixture: \(configuration.numGroups) groups must divide the \(b)·\(t) tokens")
            }
            let parameterCount = CheckedSize.sum(
                ParameterPath.all(in: configuration).map { CheckedSize.product($0.shape(in: configuration)) })
            guard parameterCount <= maximumElements / 4, CheckedSize.product([b, t, configuration.vocabSize]) <= maximumElements else {
                throw UsageError("fixture: \(name) with B·T = \(b * t) is too large for a fixture (parameters or logits over the limit)")
            }
            let parameters = try ModelParameters(configuration: configuration, seed: seed)
            for (path, weight) in parameters.weights { tensors["param." + path.name] = SafeTensor(weight) }
            var tokens: [Int32] = [], targets: [Int32] = []
            for _ in 0..<(b * t) {
                tokens.append(Int32(generator.next() % UInt64(configuration.vocabSize)))
                targets.append(Int32(generator.next() % UInt64(configuration.vocabSize)))
            }
            tensors["input.tokens"] = SafeTensor(int32: tokens, shape: [b, t])
            tensors["input.targets"] = SafeTensor(int32: targets, shape: [b, t])
            if padding > 0 {
                var mask = [Float](repeating: 0, count: b * t)
                for row in 0..<b {
                    let padded = Int((Double(t) * padding).rounded(.down))
                    for column in (t - padded)..<t { mask[row * t + column] = 1 }
                }
                tensors["input.paddings"] = SafeTensor(Tensor(shape: [b, t], scalars: mask))
            }
            config = try modelConfigJSON(configuration)
        }
        var shown: [String] = []  // the command without --out FILE, which says nothing about the contents
        var index = 0
        while index < arguments.count {
            if arguments[index] == "--out" {
                index += 2
                continue
            }
            if !arguments[index].hasPrefix("--out=") { shown.append(arguments[index]) }
            index += 1
        }
        let command = (["glam", "fixture"] + shown).joined(separator: " ")
        var file = SafeTensorsFile(
            tensors: tensors,
            metadata: [
                "format": "glam-fixture", "version": "1", "kind": kind, "config": JSONText.line(config),
                "source": "glam \(glamVersion), this implementation (not an independent reference): \(command)",
            ])
        let fixture = try GoldenFixture(file, name: out)
        for (name, tensor) in try fixture.computedExpectations() { file.tensors[name] = SafeTensor(tensor) }
        try file.write(to: outURL)
        let expected = file.tensors.keys.filter { $0.hasPrefix("expected.") }.count
        output.line("wrote \(out): \(kind), \(file.tensors.count) tensors (\(expected) expected), computed by glam \(glamVersion)")
        return 0
    }

    /// The gating keys of a top2_gating or moe_layer config from the options.
    static func gatingConfig(_ parsed: Arguments) throws -> [String: Any] {
        let e: Int = try parsed.integer("experts", in: 1...4096) ?? defaults.experts
        let capacityText = parsed.value("capacity-factor")
        let factor: Any =
            capacityText == "none" ? NSNull() : (try number(parsed, "capacity-factor", in: 0.000_001...1000) ?? defaults.capacityFactor)
        let given: Any = try parsed.integer("expert-capacity", in: 1...1 << 20) ?? NSNull()
        guard !(factor is NSNull && given is NSNull) else {
            throw UsageError("fixture: --capacity-factor none needs --expert-capacity C")
        }
        let legacyText = parsed.value("legacy") ?? String(defaults.legacy)
        guard legacyText == "true" || legacyText == "false" else { throw UsageError("fixture: --legacy must be true or false") }
        return [
            "num_experts": e, "expert_capacity": given, "capacity_factor": factor, "second_expert_policy": "all",
            "legacy_mtf_behavior": legacyText == "true",
            "gating_logit_cap": try number(parsed, "logit-cap", in: 0...1000) ?? defaults.logitCap,
        ]
    }

    /// C for a gating config and group size (praxis' rule).
    static func capacity(_ gating: [String: Any], groupSize: Int) throws -> Int {
        let configuration = Top2GatingConfiguration(
            numExperts: gating["num_experts"] as! Int, expertCapacity: gating["expert_capacity"] as? Int,
            capacityFactor: gating["capacity_factor"] as? Double)
        do {
            return try configuration.capacity(groupSize: groupSize)
        } catch {
            throw UsageError("fixture: \(error.description)")
        }
    }

    /// Refuses a combine tensor [G, S, E, C] over the element limit.
    static func checkSize(_ g: Int, _ s: Int, _ e: Int, capacity c: Int) throws {
        guard CheckedSize.product([g, s, e, max(c, 1)]) <= maximumElements else {
            throw UsageError(
                "fixture: the combine tensor [G, S, E, C] = [\(g), \(s), \(e), \(c)] is over the \(maximumElements)-element limit")
        }
    }

    /// Refuses a moe_layer whose expert weights [E, M, H] or activations [B·T, max(M, H)] hold more
    /// than `maximumElements` elements; a layer at the limit is accepted.
    static func checkLayerSize(experts e: Int, modelDim m: Int, hidden h: Int, tokens: Int) throws {
        let (weights, activations) = (CheckedSize.product([e, m, h]), CheckedSize.product([tokens, max(m, h)]))
        guard weights <= maximumElements, activations <= maximumElements else {
            throw UsageError(
                "fixture: E·M·H = \(e)·\(m)·\(h) or B·T·max(M, H) = \(tokens)·\(max(m, h)) is over the \(maximumElements)-element limit")
        }
    }

    static func paddings(_ shape: [Int], _ probability: Double, _ generator: inout SeededGenerator) -> Tensor<Float> {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Double(generator.nextUniform()) < probability ? 1 : 0 })
    }

    static func number(_ parsed: Arguments, _ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let text = parsed.value(name) else { return nil }
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            throw UsageError("fixture: --\(name) must be a number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    /// All eighteen model keys, unset optional ones as null (a glam_lm fixture must give every key).
    static func modelConfigJSON(_ configuration: ModelConfiguration) throws -> [String: Any] {
        guard var object = try JSONSerialization.jsonObject(with: Data(configuration.jsonString().utf8)) as? [String: Any] else {
            throw UsageError("fixture: cannot serialise the configuration")
        }
        for key in ModelConfiguration.jsonKeys where object[key] == nil { object[key] = NSNull() }
        return object
    }
}
