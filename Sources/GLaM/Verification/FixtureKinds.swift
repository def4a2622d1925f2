// Running golden fixtures: one function per kind (see the "Golden fixtures" article), each computing the
// expected tensors it knows from the fixture's inputs and comparing them. Default tolerances:
//
// | kind        | tensors                          | default (atol, rtol) |
// |-------------|----------------------------------|----------------------|
// | top2_gating | combine, dispatch, over_capacity | 1e-5, 0              |
// | top2_gating | aux_loss                         | 1e-5, 0              |
// | moe_layer   | y, aux_loss                      | 1e-5, 1e-4           |
// | moe_layer   | grad.x, grad.gate, grad.wi, grad.wo | 1e-4, 1e-4        |
// | glam_lm     | logits                           | 1e-4, 1e-4           |
// | glam_lm     | ce_loss, z_loss, aux_loss, loss  | 1e-5, 1e-5           |
// | glam_lm     | grad.<every parameter>           | 1e-4, 1e-3           |
// | adafactor_step | param.<name>                  | 1e-6, 1e-5           |
// | adafactor_step | state.<name>.{vr, vc, v}      | 1e-12, 1e-5          |
//
// A fixture may override any of them with its `tolerance` metadata.

import Foundation

/// The outcome of running one fixture.
public struct FixtureResult: Sendable {
    /// The fixture file.
    public let file: String
    /// Its kind.
    public let kind: String
    /// One comparison per expected tensor the kind knows.
    public let comparisons: [TensorComparison]

    /// Whether every comparison passed.
    public var passed: Bool { comparisons.allSatisfy(\.passed) }
}

extension GoldenFixture {
    /// The kinds this version of glam can run.
    public static let knownKinds = ["top2_gating", "moe_layer", "glam_lm", "adafactor_step"]

    /// Computes and compares every expected tensor this kind knows.
    ///
    /// - Throws: `FixtureError` for an unknown kind, a bad config or missing/ill-shaped inputs.
    public func run() throws(FixtureError) -> FixtureResult {
        let comparisons = try runKind()
        guard !comparisons.isEmpty else { throw fail("no expected tensor of kind \(kind) to check") }
        if let unknown = tensors.keys.sorted().first(where: { !reads.names.contains($0) }) {
            let known = reads.names.sorted().joined(separator: ", ")
            throw fail("tensor \(unknown) is not one a \(kind) fixture has (misspelt?); this one reads \(known)")
        }
        return FixtureResult(file: file, kind: kind, comparisons: comparisons)
    }

    /// Every expected tensor this kind computes from the fixture's inputs and parameters, by its
    /// `expected.` name, whether the file holds it or not: what `glam fixture` writes. The inputs
    /// and config are validated as for `run()`.
    ///
    /// - Throws: `FixtureError` for an unknown kind, a bad config or missing/ill-shaped inputs.
    public func computedExpectations() throws(FixtureError) -> [String: Tensor<Float>] {
        _ = try runKind()
        return computed.tensors
    }

    /// The comparisons of this fixture's kind.
    func runKind() throws(FixtureError) -> [TensorComparison] {
        switch kind {
        case "top2_gating": return try runTop2Gating()
        case "moe_layer": return try runMoELayer()
        case "glam_lm": return try runLanguageModel()
        case "adafactor_step": return try runAdafactorStep()
        default:
            throw fail("unknown fixture kind '\(kind)' (this glam knows \(GoldenFixture.knownKinds.joined(separator: ", ")))")
        }
    }

    /// The gating settings of a `top2_gating` or `moe_layer` config.
    func gatingConfiguration() throws(FixtureError) -> Top2GatingConfiguration {
        let numExperts = try int("num_experts")
        let policy = try string("second_expert_policy")
        guard policy == "all" else {
            throw fail(
                "second_expert_policy '\(policy)' cannot be checked against another implementation's random numbers; fixtures use 'all'")
        }
        let configuration = Top2GatingConfiguration(
            numExperts: numExperts, expertCapacity: try optionalInt("expert_capacity"),
            capacityFactor: try optionalDouble("capacity_factor"), secondExpertPolicy: .all,
            legacyMTFBehavior: try bool("legacy_mtf_behavior"), gatingLogitCap: Float(try optionalDouble("gating_logit_cap") ?? 0))
        guard configuration.numExperts >= 1 else { throw fail("config \"num_experts\" must be at least 1") }
        return configuration
    }

    func runTop2Gating() throws(FixtureError) -> [TensorComparison] {
        let configuration = try gatingConfiguration()
        let logits = try tensor("input.logits", rank: 3)  // [G, S, E]
        guard logits.shape[2] == configuration.numExperts else {
            throw fail("input.logits has \(logits.shape[2]) experts, config num_experts is \(configuration.numExperts)")
        }
        let paddings = optionalTensor("input.paddings")  // [G, S]
        if let paddings, paddings.shape != Array(logits.shape.prefix(2)) {
            throw fail("input.paddings has shape \(paddings.shape), expected \(Array(logits.shape.prefix(2)))")
        }
        let result: Top2GatingResult<Float>
        do {
            result = try top2Gating(logits: Variable(constant: logits), paddings: paddings, configuration: configuration)
        } catch {
            throw fail(error.description)
        }
        let gating = Tolerance(absolute: 1e-5, relative: 0)
        let overCapacity = Tensor<Float>(result.routing.overCapacity.map { Float($0) })
        return [
            compare("expected.combine", result.combineTensor(), default: gating),
            compare("expected.dispatch", result.dispatchTensor(), default: gating),
            compare("expected.aux_loss", result.auxLoss.value, default: gating),
            compare("expected.over_capacity", overCapacity, default: gating),
        ].compactMap { $0 }
    }

    func runMoELayer() throws(FixtureError) -> [TensorComparison] {
        let gatingConfiguration = try gatingConfiguration()
        let activationName = try string("activation")
        guard let activation = ExpertActivation(rawValue: activationName) else {
            throw fail("config \"activation\" is '\(activationName)', expected gelu_tanh or relu")
        }
        let configuration = MoELayerConfiguration(gating: gatingConfiguration, numGroups: try int("num_groups"), activation: activation)
        let x = try tensor("input.x", rank: 3)  // [B, T, M]
        let dy = try tensor("input.dy", rank: 3)  // [B, T, M]
        guard dy.shape == x.shape else { throw fail("input.dy has shape \(dy.shape), input.x has \(x.shape)") }
        let paddings = optionalTensor("input.paddings")  // [B, T]
        let (m, e) = (x.shape[2], configuration.gating.numExperts)
        let gate = try tensor("param.gate", rank: 2)  // [M, E]
        let wi = try tensor("param.wi", rank: 3)  // [E, M, H]
        let wo = try tensor("param.wo", rank: 3)  // [E, H, M]
        guard gate.shape == [m, e], wi.shape[0] == e, wi.shape[1] == m, wo.shape == [e, wi.shape[2], m] else {
            throw fail("parameter shapes gate \(gate.shape), wi \(wi.shape), wo \(wo.shape) do not fit M = \(m), E = \(e)")
        }
        let tape = Tape<Float>()
        let (xv, gv, wiv, wov) = (tape.variable(x), tape.variable(gate), tape.variable(wi), tape.variable(wo))
        let out: MoELayerOutput<Float>
        do {
            out = try MoEWeights(gate: gv, wi: wiv, wo: wov)(xv, paddings: paddings, configuration: configuration)
        } catch {
            throw fail(error.description)
        }
        let objective = (out.output * Variable(constant: dy)).sum() + out.gating.auxLoss
        let grads = tape.gradients(of: objective)
        let value = Tolerance(absolute: 1e-5, relative: 1e-4)
        let gradient = Tolerance(absolute: 1e-4, relative: 1e-4)
        return [
            compare("expected.y", out.output.value, default: value),
            compare("expected.aux_loss", out.gating.auxLoss.value, default: value),
            compare("expected.grad.x", grads[xv] ?? Tensor(zeros: x.shape), default: gradient),
            compare("expected.grad.gate", grads[gv] ?? Tensor(zeros: gate.shape), default: gradient),
            compare("expected.grad.wi", grads[wiv] ?? Tensor(zeros: wi.shape), default: gradient),
            compare("expected.grad.wo", grads[wov] ?? Tensor(zeros: wo.shape), default: gradient),
        ].compactMap { $0 }
    }

    /// What is wrong with a glam_lm config, naming its key: of the wrong type, or not a value the
    /// key takes.
    static func configProblem(_ error: DecodingError) -> String {
        func key(_ context: DecodingError.Context) -> String { context.codingPath.last?.stringValue ?? "?" }
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let kind =
                type == Int.self ? "an integer" : type == Bool.self ? "true or false" : type == String.self ? "a string" : "a number"
            return "config \"\(key(context))\" must be \(kind)"
        case .keyNotFound(let missing, _):
            return "config has no \"\(missing.stringValue)\""
        case .dataCorrupted(let context):
            return "config \"\(key(context))\" is not a value it takes (\(context.debugDescription))"
        @unknown default:
            return "config is not a glam_lm configuration (see the \"Golden fixtures\" article)"
        }
    }

    func runLanguageModel() throws(FixtureError) -> [TensorComparison] {
        for key in ModelConfiguration.CodingKeys.allCases { try require(key.rawValue) }
        let configuration: ModelConfiguration
        do {
            let configText = try JSONSerialization.data(withJSONObject: config)
            configuration = try ModelConfiguration.fromJSON(String(decoding: configText, as: UTF8.self))
        } catch let error as DecodingError {
            throw fail(Self.configProblem(error))
        } catch {
            throw fail("config is not a glam_lm configuration (see the \"Golden fixtures\" article)")
        }
        if let problem = configuration.problem { throw fail("config: \(problem)") }
        let tokens = try integerTensor("input.tokens")
        guard tokens.shape.count == 2 else { throw fail("input.tokens has shape \(tokens.shape), expected [B, T]") }
        let (b, t) = (tokens.shape[0], tokens.shape[1])
        let targets = try integerTensor("input.targets")
        guard targets.shape == tokens.shape else { throw fail("input.targets has shape \(targets.shape), expected [\(b), \(t)]") }
        let paddings = optionalTensor("input.paddings")
        if let paddings, paddings.shape != [b, t] { throw fail("input.paddings has shape \(paddings.shape), expected [\(b), \(t)]") }
        var segments: [Int]? = nil
        if tensors["input.segment_ids"] != nil {
            let ids = try integerTensor("input.segment_ids")
            guard ids.shape == [b, t] else { throw fail("input.segment_ids has shape \(ids.shape), expected [\(b), \(t)]") }
            segments = ids.values
        }
        var named: [ParameterPath: Tensor<Float>] = [:]
        for path in ParameterPath.all(in: configuration) { named[path] = try tensor("param." + path.name) }
        let parameters: ModelParameters
        do {
            parameters = try ModelParameters(configuration: configuration, tensors: named)
        } catch {
            throw fail(error.description)
        }
        let tape = Tape<Float>()
        let variables = parameters.variables(on: tape)
        let batch = TokenBatch(
            batchSize: b, length: t, tokens: tokens.values, targets: targets.values, paddings: paddings?.scalars, segmentIDs: segments)
        let output: DecoderOutput<Float>
        do {
            output = try variables(batch)
        } catch {
            throw fail(error.description)
        }
        let gradients = tape.gradients(of: output.loss!)
        let logitTolerance = Tolerance(absolute: 1e-4, relative: 1e-4)
        let lossTolerance = Tolerance(absolute: 1e-5, relative: 1e-5)
        let gradientTolerance = Tolerance(absolute: 1e-4, relative: 1e-3)
        var comparisons = [
            compare("expected.logits", output.logits.value, default: logitTolerance),
            compare("expected.ce_loss", output.crossEntropy!.value, default: lossTolerance),
            compare("expected.z_loss", output.zLoss!.value, default: lossTolerance),
            compare("expected.aux_loss", output.auxLoss.value, default: lossTolerance),
            compare("expected.loss", output.loss!.value, default: lossTolerance),
        ]
        for (path, gradient) in variables.gradients(from: gradients).weights {
            comparisons.append(compare("expected.grad." + path.name, gradient, default: gradientTolerance))
        }
        return comparisons.compactMap { $0 }
    }

    func runAdafactorStep() throws(FixtureError) -> [TensorComparison] {
        var configuration = AdafactorConfiguration()
        let step = try int("step")
        guard step >= 0 else { throw fail("config \"step\" must be ≥ 0") }
        let learningRate = Float(try double("learning_rate"))
        configuration.decayExponent = try double("decay_pow")
        configuration.clippingThreshold = Float(try double("clipping_threshold"))
        configuration.multiplyByParameterScale = try bool("multiply_by_parameter_scale")
        configuration.epsilon1 = Float(try double("epsilon1"))
        configuration.epsilon2 = Float(try double("epsilon2"))
        configuration.factored = try bool("factored")
        configuration.minDimSizeToFactor = try int("min_dim_size_to_factor")
        let optimizer = Adafactor(configuration: configuration)
        let names = tensors.keys.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst("param.".count)) }.sorted()
        guard !names.isEmpty else { throw fail("no param.<name> tensors") }
        var comparisons: [TensorComparison?] = []
        for name in names {
            var weight = try tensor("param." + name)
            let gradient = try tensor("input.grad." + name)
            guard gradient.shape == weight.shape else {
                throw fail("input.grad.\(name) has shape \(gradient.shape), param has \(weight.shape)")
            }
            let factored = configuration.isFactored(weight.shape)
            var slot: AdafactorSlot? = nil
            if factored, let vr = optionalTensor("input.state.\(name).vr"), let vc = optionalTensor("input.state.\(name).vc") {
                let leading = Array(weight.shape.dropLast(2))
                guard vr.shape == leading + [weight.shape[weight.rank - 2]], vc.shape == leading + [weight.shape[weight.rank - 1]] else {
                    throw fail("input.state.\(name).vr/vc have shapes \(vr.shape)/\(vc.shape), which do not fit \(weight.shape)")
                }
                slot = .factored(vr: vr, vc: vc)
            } else if !factored, let v = optionalTensor("input.state.\(name).v") {
                guard v.shape == weight.shape else { throw fail("input.state.\(name).v has shape \(v.shape), param has \(weight.shape)") }
                slot = .full(v: v)
            } else if step > 0 && tensors.keys.contains(where: { $0.hasPrefix("input.state.\(name).") }) {
                throw fail("input.state.\(name) does not match whether \(weight.shape) is factored under this config")
            }
            optimizer.update(weight: &weight, gradient: gradient, slot: &slot, step: step, learningRate: learningRate)
            comparisons.append(compare("expected.param." + name, weight, default: Tolerance(absolute: 1e-6, relative: 1e-5)))
            let stateTolerance = Tolerance(absolute: 1e-12, relative: 1e-5)
            switch slot {
            case .factored(let vr, let vc)?:
                comparisons.append(compare("expected.state.\(name).vr", vr, default: stateTolerance))
                comparisons.append(compare("expected.state.\(name).vc", vc, default: stateTolerance))
                if optionalTensor("expected.state.\(name).v") != nil {
                    comparisons.append(
                        TensorComparison(
                            name: "expected.state.\(name).v",
                            failure: "the fixture expects a full statistic; glam factored \(weight.shape)",
                            tolerance: stateTolerance))
                }
            case .full(let v)?:
                comparisons.append(compare("expected.state.\(name).v", v, default: stateTolerance))
                if optionalTensor("expected.state.\(name).vr") != nil {
                    comparisons.append(
                        TensorComparison(
                            name: "expected.state.\(name).vr", failure: "the fixture expects factored statistics; glam kept a full one",
                            tolerance: stateTolerance))
                }
            case nil:
                preconditionFailure("Adafactor.update always leaves statistics")
            }
        }
        return comparisons.compactMap { $0 }
    }
}
