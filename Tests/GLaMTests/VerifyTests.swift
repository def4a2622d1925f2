// `glam verify`: the committed fixtures pass; mutated copies fail (exit 1); malformed fixtures and
// unknown kinds are refused (exit 2) with the file and the reason.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

/// A scratch directory removed at the end of the test.
final class ScratchDirectory {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("glam-test-\(UUID())")
    init() { try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// `corpus.txt` here, holding the first `bytes` of the Jargon File cut at a paragraph.
    func corpus(bytes: Int = 30_000) throws -> URL {
        let corpus = path("corpus.txt")
        try Data(try corpusSample(bytes: bytes).utf8).write(to: corpus)
        return corpus
    }

    /// A run directory `run` here for `tiny` on `corpus.txt`, and the `glam train` options naming
    /// them (batch 2, length 32) that every train and resume of the run repeats.
    func tinyRun() throws -> (directory: URL, options: [String]) {
        let directory = path("run")
        return (
            directory, ["--config", "tiny", "--corpus", try corpus().path, "--output", directory.path, "--batch", "2", "--length", "32"]
        )
    }
}

/// The steps of the training records (those with a `ce`) in a run's metrics.jsonl, in file order.
func loggedSteps(_ metrics: URL) throws -> [Int] {
    try String(contentsOf: metrics, encoding: .utf8).split(separator: "\n").compactMap {
        (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]).flatMap { $0["ce"] != nil ? $0["step"] as? Int : nil }
    }
}

struct VerifyTests {
    @Test("a glam_lm fixture's inputs in another shape are refused by name, even with the right number of elements")
    func glamLMInputShapes() throws {
        let url = fixturesDirectory.appendingPathComponent("model/glam_lm_moe.safetensors")
        for name in ["input.paddings", "input.targets"] {
            var file = try SafeTensorsFile(contentsOf: url)
            let tensor = try #require(file.tensors[name])
            // [B, T] = [2, 8] read as [8, 2]: the same 16 elements in another layout.
            file.tensors[name] = try SafeTensor(dtype: tensor.dtype, shape: [tensor.shape[1], tensor.shape[0]], bytes: tensor.bytes)
            do {
                let result = try GoldenFixture(file, name: "reshaped").run()
                Issue.record("\(name) as [8, 2] was read: \(result.comparisons.map(\.name))")
            } catch {
                #expect("\(error)".contains("\(name) has shape [8, 2], expected [2, 8]"), "\(error)")
            }
        }
    }

    @Test("every optimizer state and gradient of the adafactor fixtures, one element longer on its last axis, is refused by name")
    func adafactorStateShapes() throws {
        let directory = fixturesDirectory.appendingPathComponent("optimizer")
        var checked = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where file.hasSuffix(".safetensors") {
            let original = try SafeTensorsFile(contentsOf: directory.appendingPathComponent(file))
            for name in original.tensors.keys.sorted() where name.hasPrefix("input.state.") || name.hasPrefix("input.grad.") {
                var changed = original
                let tensor = try #require(original.tensors[name]).floatTensor()
                let shape = Array(tensor.shape.dropLast() + [tensor.shape.last! + 1])
                changed.tensors[name] = SafeTensor(Tensor<Float>(repeating: 0.5, shape: shape))
                do {
                    let result = try GoldenFixture(changed, name: "reshaped").run()
                    Issue.record("\(file): \(name) as \(shape) was read: \(result.comparisons.map(\.name))")
                } catch {
                    let shown = name.split(separator: ".").prefix(3).joined(separator: ".")  // input.state.NAME or input.grad.NAME
                    #expect("\(error)".contains(shown) && "\(error)".contains("\(shape)"), "\(file): \(name): \(error)")
                }
                checked += 1
            }
        }
        #expect(checked >= 20)
    }

    @Test("a moe_layer fixture's dy or parameters in a shape that does not fit x are refused by name")
    func moeLayerShapes() throws {
        let url = fixturesDirectory.appendingPathComponent("moe/moe_layer_gelu.safetensors")
        let original = try SafeTensorsFile(contentsOf: url)
        for (name, shown) in [("input.dy", "input.dy"), ("param.gate", "gate"), ("param.wi", "wi"), ("param.wo", "wo")] {
            var file = original
            let tensor = try #require(file.tensors[name]).floatTensor()
            // One more along the last axis: as many dimensions, a shape no other tensor agrees with.
            let shape = tensor.shape.dropLast() + [tensor.shape.last! + 1]
            file.tensors[name] = SafeTensor(Tensor<Float>(repeating: 0.5, shape: Array(shape)))
            do {
                let result = try GoldenFixture(file, name: "reshaped").run()
                Issue.record("\(name) as \(Array(shape)) was read: \(result.comparisons.map(\.name))")
            } catch {
                #expect("\(error)".contains(shown) && "\(error)".contains("\(Array(shape))"), "\(name): \(error)")
            }
        }
    }

    static let moeFixtures = fixturesDirectory.appendingPathComponent("moe")

    /// Every golden fixture, as a path relative to Fixtures/.
    static var fixtureNames: [String] {
        ["moe", "model", "optimizer"].flatMap { folder in
            ((try? FileManager.default.contentsOfDirectory(atPath: fixturesDirectory.appendingPathComponent(folder).path)) ?? [])
                .filter { $0.hasSuffix(".safetensors") }.sorted().map { "\(folder)/\($0)" }
        }
    }

    @Test("glam verify Fixtures/ passes every committed fixture")
    func committedFixturesPass() {
        let result = runGlam(["verify", fixturesDirectory.path])
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out.contains("0 failed"))
        #expect(!result.out.contains("FAIL"))
        // Both kinds are present and every fixture contributed lines.
        for name in Self.fixtureNames { #expect(result.out.contains(name), "\(name) not reported") }
        for kind in GoldenFixture.knownKinds { #expect(Self.fixtureNames.contains { $0.contains("/\(kind)_") }, "no \(kind) fixture") }
    }

    @Test("a mutated copy of every fixture fails, naming the tensor", arguments: fixtureNames)
    func mutatedFixtureFails(name: String) throws {
        let scratch = ScratchDirectory()
        var file = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent(name))
        for tensorName in file.tensors.keys.sorted() where tensorName.hasPrefix("expected.") {
            var mutated = file
            var values = try #require(mutated.tensors[tensorName]).floatTensor()
            let index = values.scalarCount / 2
            values.scalars[index] += 0.01 + 0.01 * abs(values.scalars[index])
            mutated.tensors[tensorName] = SafeTensor(values)
            let url = scratch.path("mutated.safetensors")
            try mutated.write(to: url)
            let result = runGlam(["verify", url.path])
            #expect(result.status == 1, "\(name): mutating \(tensorName) was not caught")
            #expect(result.out.contains("FAIL  \(url.path)  \(tensorName)"), "\(name) \(tensorName)")
        }
        // Changing an input instead of an expected value also fails.
        let inputName = try #require(
            file.tensors.keys.sorted().first {
                $0 == "input.x" || $0 == "input.logits" || $0 == "param.embedding" || $0 == "input.grad.matrix"
            })
        var input = try #require(file.tensors[inputName]).floatTensor()
        input.scalars = input.scalars.map { $0 * 1.5 }
        file.tensors[inputName] = SafeTensor(input)
        try file.write(to: scratch.path("input.safetensors"))
        #expect(runGlam(["verify", scratch.path("input.safetensors").path]).status == 1)
    }

    @Test("malformed fixtures and unknown kinds exit 2 naming the file and the problem")
    func malformedFixtures() throws {
        let scratch = ScratchDirectory()
        let good = try SafeTensorsFile(contentsOf: Self.moeFixtures.appendingPathComponent("top2_gating_spec_cf1.safetensors"))
        func check(_ file: SafeTensorsFile, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let url = scratch.path("bad.safetensors")
            try file.write(to: url)
            let result = runGlam(["verify", url.path])
            #expect(result.status == 2, sourceLocation: sourceLocation)
            #expect(result.err.contains(url.path) && result.err.contains(fragment), "stderr: \(result.err)", sourceLocation: sourceLocation)
        }
        var unknown = good
        unknown.metadata["kind"] = "conv2d"
        try check(unknown, "unknown fixture kind 'conv2d'")
        var version = good
        version.metadata["version"] = "7"
        try check(version, "unsupported fixture version 7")
        var missing = good
        missing.tensors["input.logits"] = nil
        try check(missing, "missing tensor input.logits")
        var badConfig = good
        badConfig.metadata["config"] = #"{"num_experts": "four"}"#
        try check(badConfig, "config \"num_experts\" must be an integer")
        var notJSON = good
        notJSON.metadata["config"] = "{"
        try check(notJSON, "config is not a JSON object")
        var random = good
        random.metadata["config"] = try #require(good.metadata["config"]).replacingOccurrences(of: "\"all\"", with: "\"random\"")
        try check(random, "second_expert_policy 'random'")
        var wrongExperts = good
        wrongExperts.metadata["config"] = try #require(good.metadata["config"]).replacingOccurrences(
            of: "\"num_experts\": 4", with: "\"num_experts\": 5")
        try check(wrongExperts, "config num_experts is 5")
        var badTolerance = good
        badTolerance.metadata["tolerance"] = #"{"expected.combine": [1e-5]}"#
        try check(badTolerance, "tolerance for expected.combine")
        try check(SafeTensorsFile(tensors: [:], metadata: ["format": "other"]), "not a golden fixture")
        // Not a safetensors file at all.
        try Data("hello".utf8).write(to: scratch.path("garbage.safetensors"))
        let garbage = runGlam(["verify", scratch.path("garbage.safetensors").path])
        #expect(garbage.status == 2 && garbage.err.contains("garbage.safetensors"))
        // Bad usage.
        #expect(runGlam(["verify"]).status == 2)
        #expect(runGlam(["verify", "/nonexistent/dir"]).err.contains("no such file"))
    }

    @Test("a fixture's own tolerance overrides the default, per tensor")
    func perTensorTolerance() throws {
        let scratch = ScratchDirectory()
        var file = try SafeTensorsFile(contentsOf: Self.moeFixtures.appendingPathComponent("moe_layer_gelu.safetensors"))
        var y = try #require(file.tensors["expected.y"]).floatTensor()
        y.scalars[0] += 0.001
        file.tensors["expected.y"] = SafeTensor(y)
        try file.write(to: scratch.path("loose.safetensors"))
        #expect(runGlam(["verify", scratch.path("loose.safetensors").path]).status == 1)
        file.metadata["tolerance"] = #"{"expected.y": [0.002, 0]}"#
        try file.write(to: scratch.path("loose.safetensors"))
        let result = runGlam(["verify", scratch.path("loose.safetensors").path])
        #expect(result.status == 0 && result.out.contains("atol 0.002"))
    }

    @Test(
        "every config key of every fixture kind is required and typed: without it, or with an array for it, verify refuses naming the key")
    func everyConfigKeyIsChecked() throws {
        let scratch = ScratchDirectory()
        for name in [
            "moe/top2_gating_spec_cf1", "moe/moe_layer_gelu", "optimizer/adafactor_step_first", "model/glam_lm_dense",
        ] {
            let good = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent(name + ".safetensors"))
            let text = try #require(good.metadata["config"])
            let config = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            try #require(runGlam(["verify", fixturesDirectory.appendingPathComponent(name + ".safetensors").path]).status == 0)
            for key in config.keys.sorted() {
                for replacement in [nil, [1] as Any] {
                    var changed = config
                    changed[key] = replacement
                    var file = good
                    file.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: changed), as: UTF8.self)
                    let url = scratch.path("\(key).safetensors")
                    try file.write(to: url)
                    let result = runGlam(["verify", url.path])
                    let fragment = replacement == nil ? "config has no \"\(key)\"" : "config \"\(key)\" must be"
                    #expect(result.status == 2 && result.err.contains(fragment), "\(name) \(key): \(result.err)")
                }
            }
        }
    }

    @Test("strict: a misspelt tensor name or a missing config key is an error naming it; an empty directory exits 2")
    func strictness() throws {
        let scratch = ScratchDirectory()
        let good = try SafeTensorsFile(contentsOf: Self.moeFixtures.appendingPathComponent("top2_gating_spec_cf1.safetensors"))
        func refused(_ file: SafeTensorsFile, _ fragment: String) throws {
            let url = scratch.path("strict-\(UUID()).safetensors")
            try file.write(to: url)
            let result = runGlam(["verify", url.path])
            #expect(result.status == 2 && result.err.contains(fragment), "\(fragment): \(result.err)")
        }
        var misspelt = good
        misspelt.tensors["expected.combined"] = misspelt.tensors["expected.combine"]
        misspelt.tensors["expected.combine"] = nil
        try refused(misspelt, "tensor expected.combined is not one a top2_gating fixture has")
        var extraInput = good
        extraInput.tensors["input.logit_scale"] = SafeTensor(Tensor<Float>(1))
        try refused(extraInput, "input.logit_scale")
        for key in ["legacy_mtf_behavior", "expert_capacity", "gating_logit_cap"] {
            var missing = good
            let text = try #require(good.metadata["config"])
            var config = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            config[key] = nil
            missing.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
            try refused(missing, "config has no \"\(key)\"")
        }
        let lm = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent("model/glam_lm_dense.safetensors"))
        var noWeight = lm
        let lmText = try #require(lm.metadata["config"])
        var config = try #require(try JSONSerialization.jsonObject(with: Data(lmText.utf8)) as? [String: Any])
        config["z_loss_weight"] = nil
        noWeight.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        try refused(noWeight, "config has no \"z_loss_weight\"")
        // A directory without fixtures, and one whose files are none of ours.
        let empty = scratch.path("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let nothing = runGlam(["verify", empty.path])
        #expect(nothing.status == 2 && nothing.err.contains("no .safetensors files"))
        try SafeTensorsFile(tensors: ["w": SafeTensor(Tensor<Float>([1]))]).write(to: empty.appendingPathComponent("w.safetensors"))
        let notOurs = runGlam(["verify", empty.path])
        #expect(notOurs.status == 2 && notOurs.err.contains("no glam fixtures"))
    }

    @Test("a computed NaN or infinity never passes, whatever the tolerance")
    func nonFiniteNeverPasses() {
        let loose = Tolerance(absolute: 1e30, relative: 1e30)
        for bad: Float in [.nan, .infinity, -.infinity] {
            let comparison = TensorComparison(name: "expected.y", actual: Tensor([1, bad]), expected: Tensor([1, 2]), tolerance: loose)
            #expect(!comparison.passed, "\(bad) passed")
        }
        #expect(TensorComparison(name: "expected.y", actual: Tensor([1, 2.5]), expected: Tensor([1, 2]), tolerance: loose).passed)
    }

    @Test("a mismatch names the multi-dimensional index of the first element out of tolerance")
    func mismatchIndex() throws {
        let scratch = ScratchDirectory()
        var file = try SafeTensorsFile(contentsOf: Self.moeFixtures.appendingPathComponent("moe_layer_gelu.safetensors"))
        var y = try #require(file.tensors["expected.y"]).floatTensor()  // [B, T, M]
        let (t, m) = (y.shape[1], y.shape[2])
        y.scalars[(1 * t + 2) * m + 3] += 1
        file.tensors["expected.y"] = SafeTensor(y)
        try file.write(to: scratch.path("index.safetensors"))
        let result = runGlam(["verify", scratch.path("index.safetensors").path])
        #expect(result.status == 1 && result.out.contains("first mismatch at [1, 2, 3]"), "\(result.out)")
        #expect(TensorComparison.index(23, in: [2, 3, 4]) == [1, 2, 3] && TensorComparison.index(0, in: []) == [])
    }
}
