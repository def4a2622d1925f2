// The training loop (see the "Training" article): loss = CE + 1e-4·z + 0.01·Σ aux, gradients by
// the tape, an Adafactor update, and — as the paper did — an update whose gradients (or loss) hold
// NaN or Inf is skipped and counted instead of applied.

import Foundation

/// The settings of a training run (stored in checkpoints as JSON).
public struct TrainingOptions: Codable, Sendable, Equatable {
    /// Rows per batch (B).
    public var batchSize: Int = 8
    /// Positions per row (T).
    public var sequenceLength: Int = 128
    /// Total updates to run.
    public var steps: Int = 300
    /// Seed of the parameters, the data order and any routing randomness.
    public var seed: UInt64 = 0
    /// The learning-rate schedule.
    public var schedule = LearningRateSchedule()
    /// Validate every this many steps (0: only at the end).
    public var evaluateEvery: Int = 50
    /// Validation batches per evaluation (0: all).
    public var evaluationBatches: Int = 8
    /// Save a checkpoint every this many steps (0: only at the end).
    public var checkpointEvery: Int = 100

    /// Adafactor's settings (GLaM's).
    public var adafactor: AdafactorConfiguration { AdafactorConfiguration() }

    /// Default options.
    public init() {}

    /// Why the options cannot run, or nil: B in 1…4096, T in 2…65,536, counts ≥ 0, a finite
    /// positive peak learning rate, at least one constant step.
    public var problem: String? {
        if !(1...4096).contains(batchSize) { return "batch size must be in 1...4096, got \(batchSize)" }
        if !(2...65536).contains(sequenceLength) { return "sequence length must be in 2...65536, got \(sequenceLength)" }
        for (name, value) in [
            ("steps", steps), ("evaluate_every", evaluateEvery), ("evaluation_batches", evaluationBatches),
            ("checkpoint_every", checkpointEvery),
        ] where value < 0 {
            return "\(name) must be ≥ 0, got \(value)"
        }
        if !(schedule.peak > 0 && schedule.peak.isFinite) {
            return "the peak learning rate must be a finite number > 0, got \(schedule.peak)"
        }
        if schedule.constantSteps < 1 { return "constant steps must be at least 1, got \(schedule.constantSteps)" }
        return nil
    }

    /// The JSON coders of the options: non-finite numbers as the strings "NaN", "Infinity" and
    /// "-Infinity", so that encoding never fails.
    static let nonFinite = (positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

    /// The options as JSON.
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: Self.nonFinite.positiveInfinity, negativeInfinity: Self.nonFinite.negativeInfinity, nan: Self.nonFinite.nan)
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Options from `jsonString()`.
    public static func fromJSON(_ text: String) throws -> TrainingOptions {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: nonFinite.positiveInfinity, negativeInfinity: nonFinite.negativeInfinity, nan: nonFinite.nan)
        return try decoder.decode(TrainingOptions.self, from: Data(text.utf8))
    }
}

/// What one training step did.
public struct StepReport: Sendable {
    /// The 0-based step.
    public let step: Int
    /// The total loss, cross-entropy, z-loss and summed aux loss of the batch.
    public let loss, crossEntropy, zLoss, auxLoss: Float
    /// Whether the update was applied (false: skipped for a non-finite gradient).
    public internal(set) var applied: Bool
    /// The learning rate used.
    public let learningRate: Float
    /// Real (non-padding) tokens in the batch.
    public let tokens: Int
    /// Per MoE layer, the experts' loads before and after capacity (empty for a dense model).
    public let experts: [ExpertLayerStatistics]
}

/// Trains a GLaM model with Adafactor on a dataset of packed token rows (from text or from token
/// ids of your own): the schedule, the skip of non-finite steps, validation and checkpoints.
///
/// ```swift
/// let tokenizer = try BytePairTokenizer(merges: [])  // byte level
/// var configuration = ModelConfiguration.named("tiny")!
/// configuration.vocabSize = tokenizer.vocabularySize
/// var options = TrainingOptions()
/// (options.batchSize, options.sequenceLength) = (4, 16)
/// let documents = (0..<200).map { d in (0..<20).map { (d + 3 * $0) % 100 } }  // ids of your own
/// let dataset = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: 16)
/// let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
/// let report = try trainer.trainStep()  // loss terms, learning rate, expert loads; skipped if not finite
/// print(report.loss, report.applied, try trainer.validationLoss())
/// ```
public final class Trainer: TrainingSession {
    /// The model's parameters (settable within the module for tests that inject faults).
    public internal(set) var parameters: ModelParameters
    /// The optimizer and its statistics.
    public private(set) var optimizer: Adafactor
    /// The next step's 0-based index.
    public private(set) var step: Int
    /// Steps skipped for non-finite gradients.
    public private(set) var skippedSteps: Int
    /// The run's settings.
    public let options: TrainingOptions
    /// The tokenizer.
    public let tokenizer: BytePairTokenizer
    /// The data.
    public let dataset: TextDataset
    /// The model's configuration.
    public var configuration: ModelConfiguration { parameters.configuration }

    /// A fresh run: parameters initialised from `options.seed`.
    public convenience init(configuration: ModelConfiguration, options: TrainingOptions, tokenizer: BytePairTokenizer, dataset: TextDataset)
        throws(ModelError)
    {
        try self.init(
            resuming: Self.start(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset), dataset: dataset)
    }

    /// The state of a run before its first step (parameters initialised from `options.seed`, no
    /// optimizer statistics yet), the start of every run on one device or a mesh.
    static func start(configuration: ModelConfiguration, options: TrainingOptions, tokenizer: BytePairTokenizer, dataset: TextDataset)
        throws(ModelError) -> TrainingCheckpoint
    {
        if let problem = configuration.problem { throw ModelError("invalid configuration: \(problem)") }
        guard configuration.vocabSize == tokenizer.vocabularySize else {
            throw ModelError(
                "the model's vocabulary (\(configuration.vocabSize)) differs from the tokenizer's (\(tokenizer.vocabularySize))")
        }
        try validate(options: options, configuration: configuration, dataset: dataset)
        return try TrainingCheckpoint(
            parameters: try ModelParameters(configuration: configuration, seed: options.seed),
            optimizer: Adafactor(configuration: options.adafactor),
            step: 0, skippedSteps: 0, options: options, tokenizer: tokenizer, dataFingerprint: dataset.fingerprint)
    }

    /// Continues a run from a checkpoint (with the dataset rebuilt from the same corpus).
    ///
    /// In a debug build (no `-c release`) the first trainer of the process prints a one-line note
    /// to standard error: such a build trains hundreds of times slower.
    ///
    /// - Throws: `ModelError` when the options do not fit the data, or when `dataset` is not the data
    ///   the checkpoint recorded (its fingerprint differs).
    public init(resuming checkpoint: TrainingCheckpoint, dataset: TextDataset) throws(ModelError) {
        DebugBuildNote.printOnce()
        try Self.validate(options: checkpoint.options, configuration: checkpoint.parameters.configuration, dataset: dataset)
        try Self.checkSameData(checkpoint, dataset)
        parameters = checkpoint.parameters
        optimizer = checkpoint.optimizer
        step = checkpoint.step
        skippedSteps = checkpoint.skippedSteps
        options = checkpoint.options
        tokenizer = checkpoint.tokenizer
        self.dataset = dataset
    }

    /// Checks that `configuration`'s num_groups G divides a batch's B·T tokens (the MoE routing
    /// groups), before any data is prepared.
    public static func checkGroups(options: TrainingOptions, configuration: ModelConfiguration) throws(ModelError) {
        guard (options.batchSize * options.sequenceLength) % configuration.numGroups == 0 else {
            throw ModelError("num_groups \(configuration.numGroups) does not divide B·T = \(options.batchSize * options.sequenceLength)")
        }
    }

    /// Throws unless `dataset` is the data `checkpoint` was trained on (when it recorded it).
    static func checkSameData(_ checkpoint: TrainingCheckpoint, _ dataset: TextDataset) throws(ModelError) {
        if let recorded = checkpoint.dataFingerprint, recorded != dataset.fingerprint {
            throw ModelError(
                "the data is not the run's: its packed rows have fingerprint \(dataset.fingerprint), the checkpoint recorded \(recorded) (another corpus, or the same corpus edited)"
            )
        }
    }

    static func validate(options: TrainingOptions, configuration: ModelConfiguration, dataset: TextDataset) throws(ModelError) {
        if let problem = options.problem { throw ModelError("training options: \(problem)") }
        guard dataset.training.length == options.sequenceLength else {
            throw ModelError("the dataset is packed in rows of \(dataset.training.length), the run uses \(options.sequenceLength)")
        }
        guard dataset.training.count >= options.batchSize else {
            throw ModelError("the corpus gives \(dataset.training.count) training rows, fewer than one batch of \(options.batchSize)")
        }
        try checkGroups(options: options, configuration: configuration)
        // Every id must be one of the model's (token documents come from anywhere): refused before
        // any step, not at the step whose batch holds it.
        let v = configuration.vocabSize
        for (split, rows) in [("training", dataset.training), ("validation", dataset.validation)] {
            if let bad = (rows.tokens + rows.targets).first(where: { $0 < 0 || $0 >= v }) {
                throw ModelError("the \(split) data has token id \(bad), outside the model's vocabulary 0..<\(v)")
            }
        }
        let validationRows = min(options.batchSize, dataset.validation.count)  // the validation batch size
        guard (validationRows * options.sequenceLength) % configuration.numGroups == 0 else {
            throw ModelError(
                "num_groups \(configuration.numGroups) does not divide the validation batch of \(validationRows)·\(options.sequenceLength) tokens (the corpus has \(dataset.validation.count) validation rows)"
            )
        }
    }

    /// The checkpoint of the current state.
    public var checkpoint: TrainingCheckpoint {
        TrainingCheckpoint(
            validated: parameters, optimizer: optimizer, step: step, skippedSteps: skippedSteps, options: options, tokenizer: tokenizer,
            dataFingerprint: dataset.fingerprint)
    }

    /// Runs step `step` on its batch and advances.
    public func trainStep() throws(ModelError) -> StepReport {
        let rows = TextDataset.rows(step: step, batchSize: options.batchSize, rowCount: dataset.training.count, seed: options.seed)
        let batch = dataset.training.batch(rows: rows)
        let learningRate = options.schedule.learningRate(step: step)
        // Forward and backward in their own scope: the tape (which holds the weights) is gone
        // before the update, so that Adafactor updates the weights in place.
        let (named, partial) = try gradientsAndReport(batch, learningRate: learningRate)
        let applied = apply(gradients: named, loss: partial.loss, learningRate: learningRate)
        var report = partial
        report.applied = applied
        step += 1
        return report
    }

    /// The gradients of the loss on `batch` and the step's report (as if the update were applied).
    private func gradientsAndReport(_ batch: TokenBatch, learningRate: Float) throws(ModelError) -> (ModelParameters, StepReport) {
        let tape = Tape<Float>()
        let variables = parameters.variables(on: tape)
        let output: DecoderOutput<Float> = try variables(batch)
        let loss = output.loss!
        let named = variables.gradients(from: tape.gradients(of: loss))
        let c = parameters.configuration
        let experts = zip(c.moeLayers, output.gatings).map {
            ExpertLayerStatistics(layer: $0, gatings: [$1])
        }
        let report = StepReport(
            step: step, loss: loss.value.scalar, crossEntropy: output.crossEntropy!.value.scalar, zLoss: output.zLoss!.value.scalar,
            auxLoss: output.auxLoss.value.scalar, applied: true, learningRate: learningRate,
            tokens: batch.paddings!.filter { $0 == 0 }.count, experts: experts)
        return (named, report)
    }

    /// Applies an Adafactor update with `gradients`, unless the loss or any gradient element is NaN
    /// or infinite; then the update is skipped and counted. Returns whether it was applied.
    @discardableResult
    func apply(gradients: ModelParameters, loss: Float, learningRate: Float) -> Bool {
        let applied = optimizer.updateIfFinite(&parameters, gradients: gradients, loss: loss, step: step, learningRate: learningRate)
        if !applied { skippedSteps += 1 }
        return applied
    }

    /// Cross-entropy per real token on (up to `options.evaluationBatches` batches of) the validation
    /// rows, in nats; perplexity is its exponential.
    public func validationLoss() throws(ModelError) -> Double {
        try Self.validationLoss(parameters: parameters, options: options, dataset: dataset)
    }

    /// Cross-entropy per real token of `parameters` on the validation rows of `dataset`.
    static func validationLoss(parameters: ModelParameters, options: TrainingOptions, dataset: TextDataset) throws(ModelError) -> Double {
        let rows = dataset.validation.count
        guard rows > 0 else { throw ModelError("the corpus has no validation rows") }
        let b = min(options.batchSize, rows)
        var batches = rows / b
        if options.evaluationBatches > 0 { batches = min(batches, options.evaluationBatches) }
        let constants = parameters.constants
        var total = 0.0, tokens = 0
        for k in 0..<batches {
            let batch = dataset.validation.batch(rows: Array((k * b)..<((k + 1) * b)))
            let output: DecoderOutput<Float> = try constants(batch)
            total += Double(output.crossEntropy!.value.scalar) * Double(b * options.sequenceLength)
            tokens += batch.paddings!.filter { $0 == 0 }.count
        }
        return total / Double(max(tokens, 1))
    }
}
