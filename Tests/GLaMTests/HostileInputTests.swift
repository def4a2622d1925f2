// Files that parse but carry hostile values, and hostile command lines: each class found by fuzzing
// gets a clear error (a thrown error, exit status 2), never a trap, a hang or an allocation that
// exhausts memory; and nothing is lost or left behind.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct HostileInputTests {
    /// A copy of a committed glam_lm fixture with config key `key` set to `value`.
    static func lmFixture(_ key: String, _ value: Any) throws -> SafeTensorsFile {
        var file = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent("model/glam_lm_moe.safetensors"))
        let text = try #require(file.metadata["config"])
        var config = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        config[key] = value
        file.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        return file
    }

    /// A one-step tiny training checkpoint, as a file, with `change` applied (the checksum recomputed).
    static func checkpoint(in scratch: ScratchDirectory, _ change: (inout SafeTensorsFile) throws -> Void = { _ in }) throws -> URL {
        let trainer = try tinyTrainer(steps: 2)
        _ = try trainer.trainStep()
        var file = trainer.checkpoint.safeTensorsFile()
        try change(&file)
        file.metadata["checksum"] = TrainingCheckpoint.checksum(of: file)
        let url = scratch.path("checkpoint-\(UUID()).safetensors")
        try file.write(to: url)
        return url
    }

    /// `config` JSON of a checkpoint file with `key` set to `value`.
    static func setConfig(_ file: inout SafeTensorsFile, _ key: String, _ value: Any) throws {
        let text = try #require(file.metadata["config"])
        var config = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        config[key] = value
        file.metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
    }

    @Test(
        "configuration values that overflow or size unbounded work are refused by fixtures and checkpoints alike",
        arguments: [
            ("num_heads", 1 << 62, "num_heads"), ("num_layers", 1 << 31, "num_layers"), ("expert_capacity", 1 << 62, "expert_capacity"),
            ("expert_capacity", 1 << 31, "expert_capacity"), ("vocab_size", Int.max, "vocab_size"), ("head_dim", -3, "head_dim"),
        ])
    func hostileConfigurations(key: String, value: Int, fragment: String) throws {
        let scratch = ScratchDirectory()
        // A golden fixture: verify exits 2 naming the key.
        let fixture = scratch.path("fixture.safetensors")
        try Self.lmFixture(key, value).write(to: fixture)
        let verified = runGlam(["verify", fixture.path])
        #expect(verified.status == 2 && verified.err.contains(fragment), "\(verified.err)")
        // A checkpoint: the public loaders throw, and generate and trace exit 2.
        let url = try Self.checkpoint(in: scratch) { try Self.setConfig(&$0, key, value) }
        #expect(throws: ModelError.self) { try TrainingCheckpoint(contentsOf: url) }
        #expect(throws: ModelError.self) { try ModelParameters(contentsOf: url) }
        for command in [["generate", "--prompt", "x"], ["trace", "--prompt", "x"]] {
            let result = runGlam(command + ["--checkpoint", url.path])
            #expect(result.status == 2 && result.err.contains(fragment), "\(command): \(result.err)")
        }
    }

    @Test("a configuration at every limit is estimated without overflow and does not fit")
    func estimateAtTheLimits() throws {
        let l = ModelConfiguration.limits
        func limit(_ key: String) throws -> Int { try #require(l[key]) }
        let c = ModelConfiguration(
            vocabSize: try limit("vocab_size"), modelDim: try limit("model_dim"), numLayers: try limit("num_layers"),
            numHeads: try limit("num_heads"), headDim: try limit("head_dim"), ffDim: try limit("ff_dim"),
            moeHiddenDim: try limit("moe_hidden_dim"), numExperts: try limit("num_experts"))
        #expect(c.problem == nil)
        let estimate = MemoryEstimate(configuration: c, batchSize: 4096, length: 65536)
        #expect(estimate.parameterBytes == Int.max && estimate.totalBytes == Int.max && !estimate.fits())
    }

    @Test("an expert capacity within the limits but far beyond memory is refused before allocating its buffers")
    func capacityBeyondMemory() throws {
        var configuration = try namedConfiguration("tiny")
        configuration.expertCapacity = 1 << 24
        configuration.capacityFactor = nil
        #expect(configuration.problem == nil)
        let parameters = try ModelParameters(configuration: configuration, seed: 0)
        let batch = TokenBatch(batchSize: 1, length: 4, tokens: [1, 2, 3, 4])
        do {
            let _: DecoderOutput<Float> = try parameters.constants(batch)
            Issue.record("a capacity of 2^24 slots per expert should be refused")
        } catch {
            #expect(error.description.contains("expert_capacity"), "\(error.description)")
        }
    }

    @Test("a negative expert capacity is refused with or without a capacity factor, naming the value")
    func negativeExpertCapacity() {
        for factor in [nil, 0.5, 2.0] as [Double?] {
            do {
                _ = try Top2GatingConfiguration(numExperts: 4, expertCapacity: -3, capacityFactor: factor).capacity(groupSize: 64)
                Issue.record("expert capacity -3 with factor \(String(describing: factor)) was accepted")
            } catch {
                #expect(factor == nil || error.description.contains("expert_capacity must be ≥ 0, got -3"), "\(error.description)")
            }
        }
    }

    @Test("a capacity factor of 1e300 is an error, not a trap: configuration, gating and bench moe")
    func hugeCapacityFactor() throws {
        var gating = Top2GatingConfiguration(numExperts: 4, capacityFactor: 1e300)
        #expect(throws: Top2GatingConfiguration.Invalid.self) { try gating.capacity(groupSize: 8) }
        gating.capacityFactor = .infinity
        #expect(throws: Top2GatingConfiguration.Invalid.self) { try gating.capacity(groupSize: 8) }
        var configuration = try namedConfiguration("tiny")
        configuration.capacityFactor = 1e300
        #expect(configuration.problem?.contains("capacity_factor") == true)
        let bench = runGlam(["bench", "moe", "--capacity-factor", "1e300"])
        #expect(bench.status == 2, "\(bench.err)")
        let fixture = try Self.lmFixture("capacity_factor", 1e300)
        let scratch = ScratchDirectory()
        try fixture.write(to: scratch.path("f.safetensors"))
        #expect(runGlam(["verify", scratch.path("f.safetensors").path]).status == 2)
    }

    @Test("a tokenizer whose merges double a token's spelling is refused, from JSON and from a checkpoint")
    func mergeBomb() throws {
        // Merge 256+k joins the previous token with itself: 2^k bytes after k merges.
        let pairs = (0..<40).map { k in k == 0 ? "[97,97]" : "[\(255 + k),\(255 + k)]" }.joined(separator: ",")
        let json = #"{"format":"glam-bpe","version":1,"merges":[\#(pairs)]}"#
        #expect(throws: ModelError.self) { try BytePairTokenizer(json: json) }
        do { _ = try BytePairTokenizer(json: json) } catch { #expect(error.description.contains("bytes")) }
        let scratch = ScratchDirectory()
        let url = try Self.checkpoint(in: scratch) { $0.metadata["tokenizer"] = json }
        #expect(throws: ModelError.self) { try TrainingCheckpoint(contentsOf: url) }
        // Training never produces such merges: runs of one byte stop at the spelling limit.
        let tokenizer = try BytePairTokenizer.train(on: String(repeating: "a", count: 20_000), vocabularySize: 300)
        let longest = (0..<tokenizer.vocabularySize).map { tokenizer.decode([$0]).utf8.count }.max() ?? 0
        #expect(longest <= BytePairTokenizer.maximumSpellingLength && longest >= 1024, "longest token \(longest) bytes")
    }

    @Test("training options from a checkpoint are checked before they size anything", arguments: [0, 1 << 40, -1])
    func hostileTrainingOptions(length: Int) throws {
        let scratch = ScratchDirectory()
        let url = try Self.checkpoint(in: scratch) { file in
            let text = try #require(file.metadata["training"])
            var options = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            options["sequenceLength"] = length
            file.metadata["training"] = String(decoding: try JSONSerialization.data(withJSONObject: options), as: UTF8.self)
        }
        do {
            _ = try TrainingCheckpoint(contentsOf: url)
            Issue.record("sequence length \(length) was accepted")
        } catch {
            #expect(error.description.contains("sequence length"))
        }
        // The command line says so in one line, exit 2.
        let directory = scratch.path("run")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: url, to: directory.appendingPathComponent("checkpoint.safetensors"))
        let corpus = try scratch.corpus()
        let resumed = runGlam(["train", "--resume", "--output", directory.path, "--corpus", corpus.path])
        #expect(resumed.status == 2 && resumed.err.contains("sequence length"), "\(resumed.err)")
        #expect(resumed.err.split(separator: "\n").count == 1)
    }

    @Test("options with non-finite numbers round-trip through JSON instead of trapping")
    func nonFiniteOptionsJSON() throws {
        var options = TrainingOptions()
        options.schedule.peak = .nan
        let text = options.jsonString()
        #expect(text.contains("NaN"))
        #expect(try TrainingOptions.fromJSON(text).schedule.peak.isNaN)
        #expect(options.problem?.contains("peak") == true)
        var configuration = try namedConfiguration("tiny")
        configuration.zLossWeight = .infinity
        #expect(configuration.jsonString().contains("Infinity") && configuration.problem != nil)
    }

    @Test("a run whose updates overflow skips each non-finite one, never applies a null loss, and goes on to the end")
    func nonFiniteStepFromTheCommandLine() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        // A learning rate of 1e30 makes the first update's weights overflow the next forward pass.
        let run = runGlam([
            "train", "--config", "tiny", "--steps", "4", "--batch", "2", "--length", "32", "--peak-lr", "1e30", "--corpus", corpus.path,
            "--output", scratch.path("run").path,
        ])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.out.contains("update skipped") && run.out.contains("step     4/4"), "\(run.out)")
        let records = try String(contentsOf: scratch.path("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let steps = try records.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            .filter { $0["applied"] != nil }
        #expect(steps.count == 4)
        let skipped = steps.filter { $0["applied"] as? Bool == false }
        #expect(!skipped.isEmpty, "\(steps)")
        // A non-finite loss is logged as null, and such a step is never applied.
        #expect(steps.allSatisfy { !($0["loss"] is NSNull) || $0["applied"] as? Bool == false }, "\(steps)")
        #expect(steps.last?["skipped_total"] as? Int == skipped.count)
    }

    @Test("a checkpoint holding a NaN or infinite weight is refused on load, by every command, naming the parameter")
    func nonFiniteWeightsAreRefused() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        for (name, value) in [("embedding", Float.infinity), ("layers.1.attention.wq", -Float.infinity), ("layers.0.moe.wi", Float.nan)] {
            let url = try Self.checkpoint(in: scratch) { file in
                var weight = try #require(file.tensors[name]).floatTensor()
                weight.scalars[weight.scalarCount / 2] = value
                file.tensors[name] = SafeTensor(weight)
            }
            do {
                _ = try TrainingCheckpoint(contentsOf: url)
                Issue.record("a \(value) in \(name) was accepted")
            } catch {
                #expect(error.description.contains(name) && error.description.contains("non-finite"), "\(error)")
            }
            let generated = runGlam(["generate", "--checkpoint", url.path, "--prompt", "The", "--tokens", "2"])
            #expect(generated.status == 2 && generated.out.isEmpty && generated.err.contains(name), "\(generated.err)")
            let traced = runGlam(["trace", "--checkpoint", url.path, "--prompt", "The"])
            #expect(traced.status == 2 && traced.err.contains(name), "\(traced.err)")
            let directory = scratch.path("run-\(name)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: url, to: directory.appendingPathComponent("checkpoint.safetensors"))
            let resumed = runGlam(["train", "--resume", "--output", directory.path, "--corpus", corpus.path])
            #expect(resumed.status == 2 && resumed.err.contains(name) && resumed.err.split(separator: "\n").count == 1, "\(resumed.err)")
        }
    }

    @Test("Adafactor second moments that are NaN, infinite or negative are refused on resume, naming the statistic")
    func forgedOptimizerStateIsRefused() throws {
        let scratch = ScratchDirectory()
        // (The tiny model's weights are too small to factor: every statistic is a full `.v`; the
        // factored `.vr`/`.vc` go through the same check, below.)
        for (slot, value) in [
            ("optimizer.layers.0.moe.wi.v", Float.nan), ("optimizer.layers.2.moe.wo.v", -1e-3),
            ("optimizer.layers.0.attention.relative_bias.v", Float.infinity), ("optimizer.embedding.v", -0.5),
            ("optimizer.final_norm.scale.v", -Float.infinity),
        ] {
            let url = try Self.checkpoint(in: scratch) { file in
                var statistic = try #require(file.tensors[slot], "\(slot) in \(file.tensors.keys.sorted())").floatTensor()
                statistic.scalars[statistic.scalarCount - 1] = value
                file.tensors[slot] = SafeTensor(statistic)
            }
            do {
                _ = try TrainingCheckpoint(contentsOf: url)
                Issue.record("\(value) in \(slot) was accepted")
            } catch {
                #expect(error.description.contains(slot) && error.description.contains("≥ 0"), "\(error)")
            }
        }
        for value in [Float.nan, -Float.leastNonzeroMagnitude, Float.infinity] {
            let tensor = SafeTensor(Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, value]))
            #expect(throws: ModelError.self) { _ = try TrainingCheckpoint.secondMoment(tensor, "optimizer.x.vr", file: "f") }
        }
        #expect(
            try TrainingCheckpoint.secondMoment(SafeTensor(Tensor(shape: [2], scalars: [0, 5])), "optimizer.x.vc", file: "f").scalars == [
                0, 5,
            ])
        // Zero is a valid second moment (an expert that never received a token), and loads.
        let zero = try Self.checkpoint(in: scratch) { file in
            let slot = "optimizer.layers.0.moe.wi.v"
            let statistic = try #require(file.tensors[slot]).floatTensor()
            file.tensors[slot] = SafeTensor(Tensor(shape: statistic.shape, scalars: [Float](repeating: 0, count: statistic.scalarCount)))
        }
        #expect(throws: Never.self) { _ = try TrainingCheckpoint(contentsOf: zero) }
    }

    @Test("a resume whose metrics.jsonl was removed starts a new one with the steps it takes; one with nothing to cut appends in place")
    func resumeWithoutMetrics() throws {
        let scratch = ScratchDirectory()
        let (directory, common) = try scratch.tinyRun()
        #expect(runGlam(["train", "--steps", "2"] + common).status == 0)
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        try FileManager.default.removeItem(at: metricsURL)
        let resumed = runGlam(["train", "--resume", "--steps", "3"] + common)
        #expect(resumed.status == 0 && !resumed.out.contains("removed"), "\(resumed.err)")
        let steps = try loggedSteps(metricsURL)
        #expect(steps == [3])
        // With nothing to cut, a resume appends to the same file (a `tail -f` keeps following it):
        // it is not rewritten.
        func inode() throws -> UInt64 {
            try #require(try FileManager.default.attributesOfItem(atPath: metricsURL.path)[.systemFileNumber] as? UInt64)
        }
        let before = try inode()
        #expect(runGlam(["train", "--resume", "--steps", "4"] + common).status == 0)
        #expect(try inode() == before)
    }

    @Test("stale temporary checkpoints of dead processes are removed; resume cuts metrics.jsonl back to the checkpoint")
    func nothingLeftBehindNothingDuplicated() throws {
        let scratch = ScratchDirectory()
        let (directory, common) = try scratch.tinyRun()
        #expect(runGlam(["train", "--steps", "3"] + common).status == 0)
        // A kill -9 during a save leaves a temporary file; one of a live process (this one) is kept.
        var dead: Int32 = 999_999
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = directory.appendingPathComponent(".checkpoint.safetensors.tmp-\(dead)-42")
        let live = directory.appendingPathComponent(".checkpoint.safetensors.tmp-\(getpid())-43")
        try Data([1, 2, 3]).write(to: stale)
        try Data([1, 2, 3]).write(to: live)
        // Only names of the writer's own form, .NAME.tmp-PID-NUMBER, are its temporaries: a user's
        // file that merely starts the same way is kept, whoever the pid.
        let others = ["x", "42-1", "", "07x"].map { directory.appendingPathComponent(".checkpoint.safetensors.tmp-\(dead)-\($0)") }
        for other in others { try Data([4]).write(to: other) }
        // A crash after logging steps 4 and 5 but before their checkpoint.
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        var text = try String(contentsOf: metricsURL, encoding: .utf8)
        text += #"{"step": 4, "loss": 1}"# + "\n" + #"{"step": 5, "loss": 1}"# + "\n"
        try Data(text.utf8).write(to: metricsURL)
        let resumed = runGlam(["train", "--resume", "--steps", "5"] + common)
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(resumed.out.contains("removed \(stale.path)") && resumed.out.contains("removed 2 records after step 3"))
        #expect(!FileManager.default.fileExists(atPath: stale.path) && FileManager.default.fileExists(atPath: live.path))
        for other in others { #expect(FileManager.default.fileExists(atPath: other.path), "\(other.lastPathComponent) removed") }
        let steps = try loggedSteps(metricsURL)
        #expect(steps == [1, 2, 3, 4, 5])
    }

    @Test("an output path that cannot be a directory is one line naming it, exit 2")
    func unwritableOutput() throws {
        let scratch = ScratchDirectory()
        let file = scratch.path("a-file")
        try Data("x".utf8).write(to: file)
        let result = runGlam(["train", "--config", "tiny", "--output", file.appendingPathComponent("run").path])
        #expect(result.status == 2 && result.err.contains("cannot create") && result.err.contains("a-file"), "\(result.err)")
        #expect(result.err.split(separator: "\n").count == 1)
        #expect(runGlam(["train", "--mesh", "4611686018427387904x2"]).status == 2)
    }

    @Test("safetensors headers: every case the reference rejects is rejected, every case it accepts is accepted")
    func headersAsStrictAsTheReference() throws {
        let folder = fixturesDirectory.appendingPathComponent("safetensors/headers")
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("manifest.json"))) as? [String: Any])
        let cases = try #require(manifest["cases"] as? [String: [String: Any]])
        #expect(cases.count >= 40)
        for (name, verdict) in cases.sorted(by: { $0.key < $1.key }) {
            let accepted = try #require(verdict["accepted"] as? Bool)
            let url = folder.appendingPathComponent(name + ".case")
            do {
                let file = try SafeTensorsFile(contentsOf: url)
                #expect(accepted, "\(name): accepted here, rejected by the reference (\(verdict["reference_error"] ?? ""))")
                #expect(file.tensors.count == 1 && file.tensors.values.first?.floatTensor().scalars == [1.5], "\(name)")
            } catch {
                #expect(!accepted, "\(name): rejected here (\(error.reason)), accepted by the reference")
            }
        }
    }

    @Test("a header over 100 MB is refused before parsing; a tensor named __metadata__ is not written; shapes cannot overflow")
    func headerLimitsAndWriter() throws {
        var data = Data(count: 8 + 100_000_001)
        withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { data.replaceSubrange(0..<8, with: $0) }
        do {
            _ = try SafeTensorsFile(bytes: data, name: "big")
            Issue.record("a 100,000,001-byte header was accepted")
        } catch {
            #expect(error.reason.contains("100,000,000"))
        }
        let scratch = ScratchDirectory()
        let reserved = SafeTensorsFile(tensors: ["__metadata__": SafeTensor(Tensor<Float>([1]))])
        #expect(throws: SafeTensorsError.self) { try reserved.write(to: scratch.path("m.safetensors")) }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("m.safetensors").path))
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .float32, shape: [1 << 40, 1 << 40], bytes: []) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .float32, shape: [-1], bytes: []) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .float32, shape: [2], bytes: [0, 0, 0, 0]) }
    }
}
