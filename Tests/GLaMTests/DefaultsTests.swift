// GLaM's settings as documented (the "The model", "Top-2 gating" and "Training" articles), pinned
// by plain values: the code-built defaults, every named configuration, and what JSON decoding
// fills in for an absent key must all be these numbers. (Fixtures set most of them explicitly,
// so without this a changed default would pass every fixture.)

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct DefaultsTests {
    /// The documented values of the optional model settings, with their JSON keys.
    static func expectGLaMDefaults(_ c: ModelConfiguration, _ label: String) {
        #expect(c.zLossWeight == 1e-4, "\(label): z_loss_weight")
        #expect(c.auxLossWeight == 0.01, "\(label): aux_loss_weight")
        #expect(c.rmsNormEpsilon == 1e-6, "\(label): rmsnorm_epsilon")
        #expect(c.relativeBuckets == 32 && c.relativeMaxDistance == 128, "\(label): relative buckets")
        #expect(c.attentionExtraLogit, "\(label): attention_extra_logit")
        #expect(c.moeActivation == .geluTanh, "\(label): moe_activation")
        #expect(c.expertCapacity == nil, "\(label): expert_capacity")
        #expect(!c.isMoE || c.capacityFactor == 2.0, "\(label): capacity_factor")
    }

    @Test("model settings: the initialiser, every named configuration and JSON without the keys give the documented values")
    func modelDefaults() throws {
        let built = ModelConfiguration(vocabSize: 11, modelDim: 4, numLayers: 2, numHeads: 1, headDim: 4, ffDim: 8, numExperts: 4)
        Self.expectGLaMDefaults(built, "init")
        #expect(built.numGroups == 1 && built.moeHiddenDim == 8)
        for named in ModelConfiguration.named { Self.expectGLaMDefaults(named.configuration, named.name) }
        let minimal = #"{"vocab_size": 11, "model_dim": 4, "num_layers": 2, "num_heads": 1, "head_dim": 4, "ff_dim": 8, "num_experts": 4}"#
        let decoded = try ModelConfiguration.fromJSON(minimal)
        Self.expectGLaMDefaults(decoded.with(capacityFactor: 2.0), "JSON")
        // An absent capacity_factor in JSON means none (the key is how fixtures say "no factor").
        #expect(decoded.capacityFactor == nil)
        #expect(decoded.numGroups == 1 && decoded.moeHiddenDim == 8)
    }

    @Test("a configuration's JSON is canonical: keys sorted, the same configuration the same bytes, read back equal")
    func configurationJSONIsCanonical() throws {
        for named in ModelConfiguration.named {
            let text = named.configuration.jsonString()
            let keys = text.matches(of: /"([a-z_]+)":/).map { String($0.output.1) }
            #expect(!keys.isEmpty && keys == keys.sorted(), "\(named.name): \(keys)")
            #expect(try ModelConfiguration.fromJSON(text) == named.configuration && named.configuration.jsonString() == text)
        }
    }

    @Test("MoE layers are the even ones (0, 2, …) of an MoE model, and none of a dense one")
    func moeLayerPlacement() throws {
        let small = try #require(ModelConfiguration.named("small"))
        #expect((0..<6).map(small.isMoELayer) == [true, false, true, false, true, false])
        let dense = try #require(ModelConfiguration.named("small-dense"))
        #expect((0..<4).map(dense.isMoELayer) == [false, false, false, false])
        #expect(ParameterPath.all(in: small).contains(.layer(0, .router)) && !ParameterPath.all(in: small).contains(.layer(1, .router)))
    }

    @Test("gating, Adafactor, schedule and training defaults are GLaM's")
    func trainingDefaults() {
        let gating = Top2GatingConfiguration(numExperts: 8)
        #expect(gating.capacityFactor == 2.0 && gating.expertCapacity == nil && gating.legacyMTFBehavior)
        #expect(gating.secondExpertPolicy == .all && gating.gatingLogitCap == 0 && gating.auxiliaryLoss == .gshard)
        let adafactor = AdafactorConfiguration()
        #expect(adafactor.decayExponent == 0.8 && adafactor.clippingThreshold == 1 && adafactor.multiplyByParameterScale)
        #expect(adafactor.epsilon1 == 1e-30 && adafactor.epsilon2 == 1e-3 && adafactor.factored && adafactor.minDimSizeToFactor == 128)
        let schedule = LearningRateSchedule()
        #expect(schedule.peak == 0.01 && schedule.constantSteps == 10_000)
        let options = TrainingOptions()
        #expect(options.batchSize == 8 && options.sequenceLength == 128 && options.steps == 300 && options.seed == 0)
        #expect(options.evaluateEvery == 50 && options.evaluationBatches == 8 && options.checkpointEvery == 100)
        #expect(options.adafactor == adafactor && options.schedule == schedule)
    }
}

extension ModelConfiguration {
    /// A copy with `capacityFactor` set.
    func with(capacityFactor: Double?) -> ModelConfiguration {
        var copy = self
        copy.capacityFactor = capacityFactor
        return copy
    }
}

/// The "command line" article states each command's defaults in a sentence; those must be the
/// values the commands use (and the README's speed figures were measured at the benchmarks').
struct CommandDefaultsTests {
    @Test("every Defaults: sentence of the command-line article is the code's defaults")
    func articleDefaultsAreTheCode() throws {
        let article = try String(
            contentsOf: fixturesDirectory.deletingLastPathComponent().appendingPathComponent("Sources/GLaM/GLaM.docc/CommandLine.md"),
            encoding: .utf8
        ).replacingOccurrences(of: "\n", with: " ")
        func numbers(after pattern: String) throws -> [Double] {
            let start = try #require(article.range(of: pattern), "the article has no \"\(pattern)\"")
            let sentence = article[start.upperBound...].prefix(160)
            let cut = sentence.range(of: ". ").map { sentence[..<$0.lowerBound] } ?? sentence
            return cut.replacingOccurrences(of: ",", with: "").matches(of: /[0-9]+(\.[0-9]+)?/).map { Double($0.output.0)! }
        }
        let generate = GenerateCommand.defaults
        #expect(
            try numbers(after: "an end-of-text token. Defaults:")
                == [Double(generate.tokens), Double("\(generate.temperature)")!, Double(generate.topK), 0, Double(generate.seed)])
        let eval = EvalCommand.defaults
        #expect(
            try numbers(after: "Defaults: seed")
                == [Double(eval.seed), Double(eval.batch), Double(eval.maximumLength), Double(eval.maximumTokens)])
        let moe = BenchMoE.defaults
        #expect(
            try numbers(after: "combine steps. Defaults:")
                == [Double(moe.groups), Double(moe.groupSize), Double(moe.experts), Double(moe.modelDim), Double(moe.capacityFactor)!])
        #expect(
            try numbers(after: "in tokens/s. Defaults: `small`,") == [
                Double(BenchModel.defaults.batch), Double(BenchModel.defaults.length),
            ])
        #expect(BenchModel.defaults.config == "small" && BenchDecode.defaults.config == "small")
        #expect(try numbers(after: "rounds after a warm-up (default R =") == [Double(BenchModel.defaults.alternatingRounds)])
        let decode = BenchDecode.defaults
        #expect(
            try numbers(after: "feed one token per row. Defaults: `small`,")
                == decode.batches.map(Double.init) + [Double(decode.prompt), Double(decode.tokens)])
        // How long each benchmark runs without --repeats: one sentence names the minimum seconds of
        // gemm, moe and decode, and model, then the most runs in the same order.
        let timing = try numbers(after: "until it has run at least 3 times for at least")
        #expect(
            timing == [
                BenchGEMM.timing.minimumSeconds, BenchMoE.timing.minimumSeconds, BenchModel.timing.minimumSeconds,
                Double(BenchGEMM.timing.maximumRuns), Double(BenchMoE.timing.maximumRuns), Double(BenchModel.timing.maximumRuns),
                Double(BenchDecode.timing.maximumRuns),
            ] && BenchDecode.timing.minimumSeconds == BenchMoE.timing.minimumSeconds, "\(timing)")
        let plan = PlanCommand.defaults
        let planned = try numbers(after: "Defaults: mesh 1x1,")
        #expect(plan.mesh == "1x1" && planned == [Double(plan.tokens), Double(plan.length)])
    }
}
