// One checkpoint format: a model written by the library runs in every command that runs a model,
// as a training checkpoint of the same weights does, and what a file lacks is named where it is
// needed.

import Foundation
import Testing

@testable import GLaM

struct ModelFileTests {
    @Test("a model file with its tokenizer runs in generate, trace and eval exactly as the training checkpoint of the same weights")
    func modelFileRunsEverywhere() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 2)
        _ = try trainer.trainStep()
        let checkpoint = scratch.path("checkpoint.safetensors"), model = scratch.path("model.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        try trainer.parameters.write(to: model, tokenizer: trainer.tokenizer)
        let read = try ModelFile(contentsOf: model)
        #expect(read.parameters == trainer.parameters && read.tokenizer == trainer.tokenizer && read.checkpoint == nil && read.step == nil)
        let fromCheckpoint = try ModelFile(contentsOf: checkpoint)
        #expect(fromCheckpoint.checkpoint == trainer.checkpoint && fromCheckpoint.step == 1)
        let requests = scratch.path("requests.jsonl")
        try Data(#"{"request": "loglikelihood", "context": "The", "continuation": " hacker"}"#.utf8 + [10]).write(to: requests)
        for command in [
            ["generate", "--prompt", "The hacker", "--tokens", "8", "--greedy"], ["trace", "--prompt", "The hacker", "--json"],
            ["eval", "--requests", requests.path],
        ] {
            let (a, b) = (runGlam(command + ["--checkpoint", checkpoint.path]), runGlam(command + ["--checkpoint", model.path]))
            #expect(a.status == 0 && b.status == 0, "\(command): \(a.err) \(b.err)")
            // The trace names its source (and the checkpoint's step); everything else is the same.
            let strip = { (text: String) in
                text.replacingOccurrences(of: checkpoint.path + " (step 1)", with: "F").replacingOccurrences(of: model.path, with: "F")
            }
            #expect(strip(a.out) == strip(b.out) && !a.out.isEmpty, "\(command)")
        }
    }

    @Test("what a file lacks is named where it is needed: a tokenizer to run on text, training state to resume")
    func missingPartsAreNamed() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let bare = scratch.path("bare.safetensors")
        try trainer.parameters.write(to: bare)
        #expect(try ModelFile(contentsOf: bare).tokenizer == nil)
        for command in [["generate", "--prompt", "x"], ["trace", "--prompt", "x"]] {
            let result = runGlam(command + ["--checkpoint", bare.path])
            #expect(result.status == 2 && result.err.contains("a model file without a tokenizer; \(command[0]) needs one"), "\(result.err)")
        }
        // Resuming needs the training state a model file does not have.
        let run = scratch.path("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try trainer.parameters.write(to: run.appendingPathComponent("checkpoint.safetensors"), tokenizer: trainer.tokenizer)
        let sample = scratch.path("corpus.txt")
        try Data(try corpusSample(bytes: 30_000).utf8).write(to: sample)
        let resumed = runGlam(["train", "--output", run.path, "--resume", "--config", "tiny", "--corpus", sample.path, "--steps", "2"])
        #expect(resumed.status == 2 && resumed.err.contains("a model file without training state"), "\(resumed.err)")
    }

    @Test("a tokenizer that does not fit the model is refused when the file is made, not when it is read back")
    func mismatchedTokenizerIsRefusedOnWrite() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let other = try BytePairTokenizer(merges: [])  // 257 ids; tiny's vocabulary is larger
        try #require(other.vocabularySize != trainer.configuration.vocabSize)
        let url = scratch.path("model.safetensors")
        #expect(throws: ModelError.self) { try trainer.parameters.write(to: url, tokenizer: other) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(
            throws: ModelError(
                "the tokenizer has \(other.vocabularySize) ids but the model's vocabulary is \(trainer.configuration.vocabSize)")
        ) {
            _ = try TrainingCheckpoint(
                parameters: trainer.parameters, optimizer: trainer.optimizer, step: 0, skippedSteps: 0, options: trainer.options,
                tokenizer: other)
        }
        #expect(throws: ModelError.self) {
            _ = try TrainingCheckpoint(
                parameters: trainer.parameters, optimizer: trainer.optimizer, step: 1, skippedSteps: 2, options: trainer.options,
                tokenizer: trainer.tokenizer)
        }
    }
}
