// Training: bitwise-identical resume, NaN/Inf skipping, corrupt and interrupted checkpoints, and
// the train/generate commands end to end on a tiny model.

import Foundation
import Synchronization
import Testing

@testable import GLaM
@testable import GLaMCLI

/// A tiny run on a corpus sample: 512-id tokenizer, rows of 32.
func tinyTrainer(steps: Int = 6, seed: UInt64 = 3) throws -> Trainer {
    let sample = try corpusSample(bytes: 30_000)
    let configuration = try namedConfiguration("tiny")
    let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: sample), vocabularySize: configuration.vocabSize)
    var options = TrainingOptions()
    options.batchSize = 4
    options.sequenceLength = 32
    options.steps = steps
    options.seed = seed
    options.evaluationBatches = 2
    return try Trainer(
        configuration: configuration, options: options, tokenizer: tokenizer,
        dataset: TextDataset(text: sample, tokenizer: tokenizer, length: 32))
}

struct TrainingTests {
    @Test("a run whose validation batch the routing groups do not divide is refused before any step, naming that batch")
    func validationBatchMustSplitIntoGroups() throws {
        let sample = try corpusSample(bytes: 30_000)
        var configuration = try namedConfiguration("tiny")
        let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: sample), vocabularySize: configuration.vocabSize)
        let dataset = TextDataset(text: sample, tokenizer: tokenizer, length: 32)
        var options = TrainingOptions()
        options.batchSize = 32
        options.sequenceLength = 32
        let validationRows = min(options.batchSize, dataset.validation.count)
        try #require(dataset.training.count >= 32 && validationRows < 32 && validationRows > 0)
        // G = B·T: a training batch is one group per token row set, the validation batch is not.
        configuration.numGroups = options.batchSize * options.sequenceLength
        #expect((validationRows * 32) % configuration.numGroups != 0)
        do {
            _ = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
            Issue.record("a validation batch of \(validationRows)·32 tokens in \(configuration.numGroups) groups was accepted")
        } catch {
            #expect(error.description.contains("validation batch of \(validationRows)·32 tokens"), "\(error.description)")
        }
        // A G that divides both batches is accepted.
        configuration.numGroups = 32
        _ = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
    }

    @Test("a validation loss over data with no validation rows is refused by name, not divided by zero")
    func noValidationRows() throws {
        // Three documents: every 20th is held out, so none is.
        let dataset = TextDataset(tokenDocuments: [[1, 2, 3], [4, 5], [6]], endOfText: 256, length: 8)
        #expect(dataset.validation.count == 0 && dataset.training.count > 0)
        let parameters = try ModelParameters(configuration: try namedConfiguration("tiny"), seed: 0)
        var options = TrainingOptions()
        options.batchSize = 2
        options.sequenceLength = 8
        #expect {
            _ = try Trainer.validationLoss(parameters: parameters, options: options, dataset: dataset)
        } throws: { ($0 as? ModelError)?.description.contains("no validation rows") == true }
    }

    @Test("an interrupted and resumed run gives bitwise the same losses and parameters as an uninterrupted one")
    func resumeIsBitwiseIdentical() throws {
        let straight = try tinyTrainer()
        var expected: [UInt32] = []
        for _ in 0..<6 { expected.append(try straight.trainStep().loss.bitPattern) }

        let first = try tinyTrainer()
        var losses: [UInt32] = []
        for _ in 0..<3 { losses.append(try first.trainStep().loss.bitPattern) }
        let scratch = ScratchDirectory()
        let url = scratch.path("checkpoint.safetensors")
        try first.checkpoint.write(to: url)
        let loaded = try TrainingCheckpoint(contentsOf: url)
        #expect(loaded == first.checkpoint)
        let resumed = try Trainer(resuming: loaded, dataset: first.dataset)
        for _ in 0..<3 { losses.append(try resumed.trainStep().loss.bitPattern) }
        #expect(losses == expected)
        #expect(resumed.parameters == straight.parameters)
        // And training did something: the loss falls.
        #expect(Float(bitPattern: expected[5]) < Float(bitPattern: expected[0]))
    }

    @Test("resume across a skipped step is bitwise: the step counter counts skipped steps too")
    func resumeAcrossASkippedStep() throws {
        /// Steps 0…5 of a tiny run whose step 1 is skipped (a weight made NaN for it, then restored).
        func run(resumeAt: Int?) throws -> (losses: [UInt32], trainer: Trainer, resumedStep: Int?) {
            var trainer = try tinyTrainer(steps: 6)
            var losses: [UInt32] = []
            var resumedStep: Int? = nil
            for step in 0..<6 {
                if step == resumeAt {
                    let scratch = ScratchDirectory()
                    try trainer.checkpoint.write(to: scratch.path("c.safetensors"))
                    let checkpoint = try TrainingCheckpoint(contentsOf: scratch.path("c.safetensors"))
                    trainer = try Trainer(resuming: checkpoint, dataset: trainer.dataset)
                    resumedStep = trainer.step
                }
                if step == 1 {
                    let saved = trainer.parameters.embedding
                    trainer.parameters.embedding.scalars[0] = .nan
                    let report = try trainer.trainStep()
                    #expect(!report.applied && trainer.skippedSteps == 1)
                    trainer.parameters.embedding = saved
                    losses.append(report.loss.bitPattern)
                } else {
                    losses.append(try trainer.trainStep().loss.bitPattern)
                }
            }
            return (losses, trainer, resumedStep)
        }
        let straight = try run(resumeAt: nil)
        let resumed = try run(resumeAt: 3)
        #expect(resumed.resumedStep == 3, "the resumed step is the checkpoint's, skipped steps included")
        #expect(resumed.losses == straight.losses)
        #expect(resumed.trainer.parameters == straight.trainer.parameters && resumed.trainer.skippedSteps == 1)
        #expect(resumed.trainer.step == 6)
    }

    @Test("results do not depend on the thread count")
    func threadCountIndependence() throws {
        let one = try tinyTrainer(steps: 2)
        let a = try withThreadCount(1) { [try one.trainStep().loss, try one.trainStep().loss].map(\.bitPattern) }
        let three = try tinyTrainer(steps: 2)
        let b = try withThreadCount(3) { [try three.trainStep().loss, try three.trainStep().loss].map(\.bitPattern) }
        #expect(a == b && one.parameters == three.parameters)
    }

    @Test("an update whose gradient holds NaN or Inf is skipped and counted")
    func nonFiniteGradientsAreSkipped() throws {
        let trainer = try tinyTrainer()
        let before = trainer.parameters
        var gradients = before.map { Tensor<Float>(repeating: 0.1, shape: $1.shape) }
        gradients[.layer(1, .ffnOutput)].scalars[3] = .nan
        #expect(!trainer.apply(gradients: gradients, loss: 1, learningRate: 0.01))
        gradients[.layer(1, .ffnOutput)].scalars[3] = .infinity
        #expect(!trainer.apply(gradients: gradients, loss: 1, learningRate: 0.01))
        #expect(trainer.skippedSteps == 2 && trainer.parameters == before)
        // A whole step with a poisoned weight: the loss is NaN, nothing is applied, training goes on.
        var poisoned = trainer.parameters
        poisoned.embedding.scalars[0] = .nan
        trainer.parameters = poisoned
        let report = try trainer.trainStep()
        #expect(!report.applied && trainer.skippedSteps == 3 && trainer.step == 1)
        #expect(trainer.parameters == poisoned)
        // Finite gradients are applied.
        gradients[.layer(1, .ffnOutput)].scalars[3] = 0
        #expect(trainer.apply(gradients: gradients, loss: 1, learningRate: 0.01))
    }

    @Test("a corrupt or truncated checkpoint is refused with the reason")
    func corruptCheckpoints() throws {
        let trainer = try tinyTrainer()
        _ = try trainer.trainStep()
        let scratch = ScratchDirectory()
        let url = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: url)
        var bytes = try Data(contentsOf: url)
        bytes[bytes.count - 100] ^= 0x40  // a bit flip in the tensor data
        try bytes.write(to: scratch.path("flipped.safetensors"))
        do {
            _ = try TrainingCheckpoint(contentsOf: scratch.path("flipped.safetensors"))
            Issue.record("accepted a corrupt checkpoint")
        } catch {
            #expect(error.description.contains("checksum mismatch"))
        }
        try bytes.prefix(bytes.count / 2).write(to: scratch.path("truncated.safetensors"))
        #expect(throws: ModelError.self) { try TrainingCheckpoint(contentsOf: scratch.path("truncated.safetensors")) }
        let parametersOnly = scratch.path("parameters.safetensors")
        try trainer.parameters.write(to: parametersOnly)
        do {
            _ = try TrainingCheckpoint(contentsOf: parametersOnly)
            Issue.record("accepted a parameters-only file as a training checkpoint")
        } catch {
            #expect(error.description.contains("a model file without training state"), "\(error)")
        }
    }

    @Test("a crash during a checkpoint write leaves the previous checkpoint intact")
    func crashDuringWrite() throws {
        struct Crash: Error {}
        let trainer = try tinyTrainer()
        let scratch = ScratchDirectory()
        let url = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: url)
        let previous = trainer.checkpoint
        _ = try trainer.trainStep()
        #expect(throws: Crash.self) { try trainer.checkpoint.write(to: url, beforeRename: { throw Crash() }) }
        #expect(try TrainingCheckpoint(contentsOf: url) == previous)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path) == ["checkpoint.safetensors"])
        try trainer.checkpoint.write(to: url)
        #expect(try TrainingCheckpoint(contentsOf: url).step == 1)
    }
    @Test("chart ticks are round values labelled with the decimals their spacing needs")
    func chartTickLabels() {
        #expect(chartTicks(from: 4.57, to: 9.65, logarithmic: false).map(\.label) == ["5", "6", "7", "8", "9"])
        #expect(chartTicks(from: 1, to: 300, logarithmic: false).map(\.label) == ["50", "100", "150", "200", "250", "300"])
        #expect(chartTicks(from: 4.42, to: 5.1, logarithmic: false).map(\.label) == ["4.5", "4.6", "4.7", "4.8", "4.9", "5.0", "5.1"])
        #expect(chartTicks(from: 0, to: 1.05e13, logarithmic: false).map(\.label) == ["0", "2e+12", "4e+12", "6e+12", "8e+12", "1e+13"])
        #expect(chartTicks(from: 0.8, to: 60.8, logarithmic: false).map(\.label) == ["10", "20", "30", "40", "50", "60"])
        #expect(chartTicks(from: 9, to: 12, logarithmic: true).map(\.label) == ["1e+09", "1e+10", "1e+11", "1e+12"])
        #expect(chartTicks(from: 3, to: 3, logarithmic: false).isEmpty)
    }
}

/// Serialises the tests that change the process-wide thread count, so that two of them running
/// in parallel cannot undo each other's setting.
private let threadCountLock = Mutex(())

/// Runs `body` with `Parallelism.threadCount` set to `threads`, restoring it afterwards.
func withThreadCount<R>(_ threads: Int, _ body: () throws -> R) throws -> R {
    try threadCountLock.withLock { _ in
        let saved = Parallelism.threadCount
        defer { Parallelism.threadCount = saved }
        Parallelism.threadCount = threads
        return try body()
    }

}
