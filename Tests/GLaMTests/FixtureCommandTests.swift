// `glam fixture`: fixtures at a user's own sizes, computed by this implementation. These tests check
// the command (inputs from the seed, every expected tensor of the kind, the envelope, refusals); that
// glam's values at such sizes are right is checked against praxis by Fixtures/kit (CI runs it on a
// 64-expert, 4,096-token fixture).

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct FixtureCommandTests {
    @Test("each kind writes a well-formed fixture with every expected tensor, its source naming glam and its version")
    func everyKind() throws {
        let scratch = ScratchDirectory()
        let cases: [(kind: String, options: [String], expected: Set<String>)] = [
            (
                "top2_gating", ["--experts", "16", "--groups", "2", "--group-size", "96", "--capacity-factor", "1.25", "--padding", "0.1"],
                ["expected.combine", "expected.dispatch", "expected.aux_loss", "expected.over_capacity"]
            ),
            (
                "moe_layer",
                ["--experts", "4", "--batch", "2", "--length", "8", "--model-dim", "8", "--hidden", "12", "--legacy", "false"],
                ["expected.y", "expected.aux_loss", "expected.grad.x", "expected.grad.gate", "expected.grad.wi", "expected.grad.wo"]
            ),
            ("glam_lm", ["--config", "tiny", "--batch", "1", "--length", "8", "--padding", "0.25"], []),
        ]
        for (kind, options, expected) in cases {
            let out = scratch.path("\(kind).safetensors").path
            let result = runGlam(["fixture", "--kind", kind] + options + ["--out", out])
            #expect(result.status == 0, "\(kind): \(result.err)")
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: out))
            let fixture = try GoldenFixture(file, name: out)
            #expect(fixture.kind == kind)
            #expect(fixture.source.hasPrefix("glam \(glamVersion), this implementation"))
            #expect(!fixture.source.contains(out))
            // The source records the command as given, every argument but --out FILE.
            #expect(fixture.source.hasSuffix(": glam fixture " + (["--kind", kind] + options).joined(separator: " ")), "\(fixture.source)")
            let names = Set(file.tensors.keys.filter { $0.hasPrefix("expected.") })
            if kind == "glam_lm" {
                let configuration = try #require(ModelConfiguration.named("tiny"))
                #expect(names.count == 5 + ParameterPath.all(in: configuration).count)
                let config = try #require(
                    try JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "").utf8)) as? [String: Any])
                #expect(config.count == ModelConfiguration.CodingKeys.allCases.count)
                #expect(file.tensors["input.paddings"]?.floatTensor().scalars == [0, 0, 0, 0, 0, 0, 1, 1])
            } else {
                #expect(names == expected)
            }
            let verified = runGlam(["verify", out])
            #expect(verified.status == 0 && verified.out.contains("0 failed"), "\(kind)")
        }
        let gating = try SafeTensorsFile(contentsOf: scratch.path("top2_gating.safetensors"))
        #expect(gating.tensors["expected.combine"]?.shape == [2, 96, 16, 8])  // C = 4·ceil(⌊96·1.25/16⌋ / 4) = 4·ceil(7/4)
        #expect(gating.tensors["input.paddings"]?.floatTensor().scalars.contains(1) == true)
    }

    @Test("a moe_layer fixture's parameters are initialised as in the model: U(±√(3/M)) for the router (times X) and wi, U(±√(3/H)) for wo")
    func moeLayerInitialisation() throws {
        let scratch = ScratchDirectory()
        let out = scratch.path("layer.safetensors").path
        let (m, h, scale) = (32.0, 48.0, 2.0)
        let result = runGlam([
            "fixture", "--kind", "moe_layer", "--experts", "8", "--model-dim", "32", "--hidden", "48", "--logit-scale", "2", "--out", out,
        ])
        try #require(result.status == 0, "\(result.err)")
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: out))
        for (name, bound) in [
            ("param.gate", (3 / m).squareRoot() * scale), ("param.wi", (3 / m).squareRoot()), ("param.wo", (3 / h).squareRoot()),
        ] {
            let values = try #require(file.tensors[name]).floatTensor().scalars.map { abs(Double($0)) }
            // Uniform on (−bound, bound): none beyond it, and with 256 or more draws some within 10% of it.
            let largest = values.max() ?? 0
            #expect(largest <= bound * (1 + 1e-6) && largest > 0.9 * bound, "\(name): largest |w| \(largest), bound \(bound)")
        }
    }

    @Test("every option of glam fixture changes what its help says it changes, and nothing is ignored")
    func everyOptionTakesEffect() throws {
        let scratch = ScratchDirectory()
        func written(_ kind: String, _ options: [String]) throws -> (file: SafeTensorsFile, config: [String: Any]) {
            let out = scratch.path("option.safetensors").path
            let result = runGlam(["fixture", "--kind", kind] + options + ["--out", out])
            try #require(result.status == 0, "\(kind) \(options): \(result.err)")
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: out))
            let config = try #require(try JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "").utf8)) as? [String: Any])
            return (file, config)
        }
        let gating = ["--experts", "4", "--group-size", "64"]
        let base = try written("top2_gating", gating)
        #expect(base.file.tensors["input.logits"]?.shape == [1, 64, 4])
        #expect(try written("top2_gating", gating + ["--experts", "6"]).file.tensors["input.logits"]?.shape == [1, 64, 6])
        #expect(try written("top2_gating", gating + ["--groups", "3"]).file.tensors["input.logits"]?.shape == [3, 64, 4])
        #expect(try written("top2_gating", gating + ["--group-size", "20"]).file.tensors["input.logits"]?.shape == [1, 20, 4])
        #expect(try written("top2_gating", gating + ["--capacity-factor", "1.5"]).config["capacity_factor"] as? Double == 1.5)
        let fixedCapacity = try written("top2_gating", gating + ["--capacity-factor", "none", "--expert-capacity", "3"])
        #expect(fixedCapacity.config["expert_capacity"] as? Int == 3 && fixedCapacity.config["capacity_factor"] is NSNull)
        #expect(fixedCapacity.file.tensors["expected.combine"]?.shape == [1, 64, 4, 3])
        #expect(try written("top2_gating", gating + ["--legacy", "false"]).config["legacy_mtf_behavior"] as? Bool == false)
        #expect(base.config["legacy_mtf_behavior"] as? Bool == true)
        #expect(try written("top2_gating", gating + ["--logit-cap", "5"]).config["gating_logit_cap"] as? Double == 5)
        let padded = try #require(try written("top2_gating", gating + ["--padding", "0.5"]).file.tensors["input.paddings"])
        let share = Double(padded.floatTensor().scalars.filter { $0 == 1 }.count) / 64
        #expect(share > 0.25 && share < 0.75, "padding share \(share)")
        func spread(_ file: SafeTensorsFile) throws -> Double {
            let x = try #require(file.tensors["input.logits"]).floatTensor().scalars.map(Double.init)
            return (x.map { $0 * $0 }.reduce(0, +) / Double(x.count)).squareRoot()
        }
        let scaled = try spread(try written("top2_gating", gating + ["--logit-scale", "3"]).file) / spread(base.file)
        #expect(scaled > 2.4 && scaled < 3.6, "logit scale 3 gave a spread ratio of \(scaled)")

        let layer = ["--experts", "4", "--batch", "2", "--length", "4", "--model-dim", "6", "--hidden", "10"]
        let moe = try written("moe_layer", layer)
        #expect(moe.file.tensors["input.x"]?.shape == [2, 4, 6] && moe.file.tensors["param.wi"]?.shape == [4, 6, 10])
        #expect(try written("moe_layer", layer + ["--batch", "3"]).file.tensors["input.x"]?.shape == [3, 4, 6])
        #expect(try written("moe_layer", layer + ["--length", "5"]).file.tensors["input.x"]?.shape == [2, 5, 6])
        #expect(try written("moe_layer", layer + ["--model-dim", "8"]).file.tensors["param.gate"]?.shape == [8, 4])
        #expect(try written("moe_layer", layer + ["--hidden", "12"]).file.tensors["param.wo"]?.shape == [4, 12, 6])
        #expect(try written("moe_layer", layer + ["--activation", "relu"]).config["activation"] as? String == "relu")
        #expect(try written("moe_layer", layer + ["--groups", "2"]).config["num_groups"] as? Int == 2)

        let model = try written("glam_lm", ["--batch", "2", "--length", "4"])
        #expect(model.file.tensors["input.tokens"]?.shape == [2, 4] && model.config["num_groups"] as? Int == 1)
        #expect(try written("glam_lm", ["--batch", "2", "--length", "4", "--groups", "2"]).config["num_groups"] as? Int == 2)
        let dense = try written("glam_lm", ["--config", "small-dense", "--batch", "1", "--length", "2"])
        #expect(dense.config["num_experts"] as? Int == 0 && dense.config["model_dim"] as? Int == 256)
    }

    @Test("the seed decides the inputs: the same seed gives the same bytes, another seed other inputs")
    func seeded() throws {
        let scratch = ScratchDirectory()
        let paths = ["a", "b", "c"].map { scratch.path("\($0).safetensors").path }
        for (path, seed) in zip(paths, ["1", "1", "2"]) {
            #expect(
                runGlam(["fixture", "--kind", "top2_gating", "--experts", "4", "--group-size", "16", "--seed", seed, "--out", path]).status
                    == 0)
        }
        let bytes = try paths.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        #expect(bytes[0] == bytes[1])
        #expect(bytes[0] != bytes[2])
    }

    @Test("bad requests are refused with exit status 2 and a message naming the problem")
    func refusals() {
        let scratch = ScratchDirectory()
        let out = scratch.path("x.safetensors").path
        let cases: [([String], String)] = [
            (["--kind", "adafactor_step", "--out", out], "unknown --kind"),
            (["--kind", "top2_gating"], "--out FILE is required"),
            (["--out", out], "--kind"),
            (["--kind", "top2_gating", "--batch", "2", "--out", out], "does not apply"),
            (["--kind", "top2_gating", "--experts", "4096", "--group-size", "1048576", "--out", out], "over the"),
            (["--kind", "top2_gating", "--capacity-factor", "none", "--out", out], "needs --expert-capacity"),
            (["--kind", "moe_layer", "--groups", "3", "--out", out], "must divide"),
            (["--kind", "glam_lm", "--config", "glam-64b-64e", "--out", out], "too large"),
            (["--kind", "glam_lm", "--config", "nope", "--out", out], "unknown configuration"),
            (["--kind", "top2_gating", "--padding", "2", "--out", out], "--padding"),
        ]
        for (arguments, message) in cases {
            let result = runGlam(["fixture"] + arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.err.contains(message), "\(arguments): \(result.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

extension FixtureCommandTests {
    @Test("a moe_layer at exactly the element limit is accepted and one element over is refused, for weights and activations")
    func layerSizeLimit() {
        let limit = FixtureCommand.maximumElements  // 2^28
        func accepted(_ e: Int, _ m: Int, _ h: Int, tokens: Int) -> Bool {
            (try? FixtureCommand.checkLayerSize(experts: e, modelDim: m, hidden: h, tokens: tokens)) != nil
        }
        // Weights E·M·H.
        #expect(accepted(1 << 8, 1 << 10, 1 << 10, tokens: 1))
        #expect(!accepted(1 << 8, 1 << 10, (1 << 10) + 1, tokens: 1))
        // Activations B·T·max(M, H), whichever of M and H is larger.
        #expect(accepted(1, 1 << 12, 1, tokens: limit >> 12))
        #expect(!accepted(1, 1 << 12, 1, tokens: (limit >> 12) + 1))
        #expect(accepted(1, 1, 1 << 12, tokens: limit >> 12))
        #expect(!accepted(1, 1, (1 << 12) + 1, tokens: limit >> 12))
        #expect(accepted(8, 32, 64, tokens: 64))
    }

    @Test("fixture and plan accept both ends of each size option's range and refuse just outside, with a message")
    func optionRanges() {
        let scratch = ScratchDirectory()
        let out = scratch.path("f.safetensors").path
        let gating = ["fixture", "--kind", "top2_gating", "--group-size", "8", "--out", out]
        for (arguments, accepted) in [
            (gating + ["--experts", "4096"], true), (gating + ["--experts", "4097"], false),
            (gating + ["--experts", "0"], false), (gating + ["--experts", "2", "--groups", "0"], false),
            // A plan's step holds 1…2^32 tokens (--tokens is checked against that with --length).
            (["plan", "--config", "glam-64b-64e", "--tokens", "1", "--length", "1"], true),
            (["plan", "--config", "glam-64b-64e", "--tokens", "0", "--length", "1"], false),
            (["plan", "--config", "glam-64b-64e", "--tokens", "4294967296"], true),
            (["plan", "--config", "glam-64b-64e", "--tokens", "4294967297", "--length", "1"], false),
        ] {
            let result = runGlam(arguments)
            #expect(result.status == (accepted ? 0 : 2), "\(arguments): \(result.err)")
            if !accepted {
                #expect(
                    result.err.split(separator: "\n").count == 1 && (result.err.contains("must be") || result.err.contains("must have")))
            }
        }
    }

    @Test("the groups of a moe_layer or glam_lm fixture must split its B·T tokens evenly: divisors accepted, others refused")
    func groupsDivideTheTokens() {
        let scratch = ScratchDirectory()
        let out = scratch.path("g.safetensors").path
        // B·T = 2·6 = 12 tokens.
        for kind in ["moe_layer", "glam_lm"] {
            let base =
                ["fixture", "--kind", kind, "--batch", "2", "--length", "6", "--out", out]
                + (kind == "glam_lm" ? ["--config", "tiny"] : [])
            for groups in 1...13 {
                let result = runGlam(base + ["--groups", "\(groups)"])
                if 12 % groups == 0 {
                    #expect(result.status == 0, "\(kind) --groups \(groups): \(result.err)")
                } else {
                    #expect(
                        result.status == 2 && result.err.contains("must divide the 2·6 tokens"), "\(kind) --groups \(groups): \(result.err)"
                    )
                }
            }
        }
    }

    @Test("a fixture whose combine tensor is over the limit is refused naming [G, S, E, C] as they are")
    func combineTensorNamed() {
        let scratch = ScratchDirectory()
        let out = scratch.path("c.safetensors").path
        // top2_gating: S given; moe_layer: S = B·T / G. C as given. Each product is 2^29 or more.
        let cases: [([String], [Int])] = [
            (
                [
                    "--kind", "top2_gating", "--groups", "2", "--group-size", "4096", "--experts", "64", "--capacity-factor", "none",
                    "--expert-capacity", "1024",
                ], [2, 4096, 64, 1024]
            ),
            (
                [
                    "--kind", "moe_layer", "--groups", "2", "--batch", "4", "--length", "8192", "--experts", "32", "--capacity-factor",
                    "none", "--expert-capacity", "2048",
                ], [2, 16384, 32, 2048]
            ),
        ]
        for (arguments, shape) in cases {
            #expect(shape.reduce(1, *) > FixtureCommand.maximumElements)
            let result = runGlam(["fixture"] + arguments + ["--out", out])
            #expect(
                result.status == 2 && result.err.contains("the combine tensor [G, S, E, C] = \(shape) is over the"),
                "\(arguments): \(result.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("--padding P pads exactly the positions whose uniform draw is below P: a draw equal to P is not padded")
    func paddingDrawIsStrict() {
        for seed: UInt64 in [1, 2, 3] {
            var draws = SeededGenerator(seed: seed)
            let values = (0..<16).map { _ in Double(draws.nextUniform()) }
            for (index, probability) in values.enumerated() {
                var generator = SeededGenerator(seed: seed)
                let mask = FixtureCommand.paddings([2, 8], probability, &generator).scalars
                #expect(mask == values.map { $0 < probability ? 1 : 0 }, "seed \(seed), P = draw \(index)")
                #expect(mask[index] == 0)
            }
        }
    }

    @Test("each number option of glam fixture accepts both ends of its range and refuses just outside them, naming the range")
    func numberOptionRanges() {
        let scratch = ScratchDirectory()
        let out = scratch.path("n.safetensors").path
        let base = ["fixture", "--kind", "top2_gating", "--experts", "2", "--group-size", "8", "--out", out]
        for (option, low, high) in [
            ("padding", 0.0, 1.0), ("logit-scale", 0.0, 1000.0), ("capacity-factor", 0.000_001, 1000.0), ("logit-cap", 0.0, 1000.0),
        ] {
            for value in [low, high] {
                let result = runGlam(base + ["--\(option)", "\(value)"])
                #expect(result.status == 0, "--\(option) \(value): \(result.err)")
            }
            for value in [low - max(low, 1e-9) * 0.5 - 1e-12, high * (1 + 1e-9)] {
                let result = runGlam(base + ["--\(option)", "\(value)"])
                #expect(
                    result.status == 2 && result.err.contains("--\(option) must be a number in \(low)...\(high), got '\(value)'"),
                    "--\(option) \(value): \(result.err)")
            }
        }
    }
}
