// Training checkpoints: everything needed to continue a run bit for bit, in one safetensors file
// written atomically and guarded by a checksum (names as in the "Checkpoints and parameter names" article).
//
//   tensors:   <parameter names>, optimizer.<name>.vr / .vc / .v
//   metadata:  format "glam-checkpoint", config (model JSON), step, skipped_steps, training
//              (TrainingOptions JSON: seed, batch, length, schedule …), tokenizer (BPE JSON), data
//              (the fingerprint of the packed training and validation rows),
//              checksum (CRC-32 of every tensor's name, shape and bytes and every other metadata
//              entry, in sorted order)
//
// The data position and all randomness follow from (seed, step), so they need no more state.

import Foundation

/// A run's complete state.
///
/// ```swift
/// let url = FileManager.default.temporaryDirectory.appendingPathComponent("run.safetensors")
/// try trainer.checkpoint.write(to: url)  // atomic, with a checksum
/// let checkpoint = try TrainingCheckpoint(contentsOf: url)
/// let resumed = try Trainer(resuming: checkpoint, dataset: dataset)  // continues bit for bit
/// print(resumed.step, try resumed.trainStep().loss)
/// ```
public struct TrainingCheckpoint: Sendable, Equatable {
    /// The model's parameters.
    public var parameters: ModelParameters
    /// Adafactor's statistics.
    public var optimizer: Adafactor
    /// Updates attempted so far (the next step's 0-based index).
    public var step: Int
    /// Updates skipped because a gradient was not finite.
    public var skippedSteps: Int
    /// The run's settings.
    public var options: TrainingOptions
    /// The tokenizer the run trains with.
    public var tokenizer: BytePairTokenizer
    /// The `TextDataset.fingerprint` of the run's data (metadata `data`), or nil when not recorded
    /// (checkpoints written before glam recorded it): a resumed trainer refuses other data.
    public var dataFingerprint: String?

    /// A checkpoint from parts.
    ///
    /// - Throws: `ModelError` when the tokenizer's ids are not the model's vocabulary (such a file
    ///   could not be read back), or a count is negative.
    public init(
        parameters: ModelParameters, optimizer: Adafactor, step: Int, skippedSteps: Int, options: TrainingOptions,
        tokenizer: BytePairTokenizer, dataFingerprint: String? = nil
    ) throws(ModelError) {
        guard tokenizer.vocabularySize == parameters.configuration.vocabSize else {
            throw ModelError(
                "the tokenizer has \(tokenizer.vocabularySize) ids but the model's vocabulary is \(parameters.configuration.vocabSize)")
        }
        guard step >= 0, skippedSteps >= 0, skippedSteps <= step else {
            throw ModelError("step \(step) and skipped steps \(skippedSteps) must satisfy 0 ≤ skipped ≤ step")
        }
        self.init(
            validated: parameters, optimizer: optimizer, step: step, skippedSteps: skippedSteps, options: options, tokenizer: tokenizer,
            dataFingerprint: dataFingerprint)
    }

    /// A checkpoint from parts known to fit (a trainer's own state).
    init(
        validated parameters: ModelParameters, optimizer: Adafactor, step: Int, skippedSteps: Int, options: TrainingOptions,
        tokenizer: BytePairTokenizer, dataFingerprint: String?
    ) {
        self.dataFingerprint = dataFingerprint
        self.parameters = parameters
        self.optimizer = optimizer
        self.step = step
        self.skippedSteps = skippedSteps
        self.options = options
        self.tokenizer = tokenizer
    }

    /// The checkpoint as a safetensors file, checksum included.
    public func safeTensorsFile() -> SafeTensorsFile {
        var file = parameters.safeTensorsFile(extraMetadata: [
            "format": "glam-checkpoint", "step": "\(step)", "skipped_steps": "\(skippedSteps)",
            "training": options.jsonString(), "tokenizer": tokenizer.jsonString(),
        ])
        if let dataFingerprint { file.metadata["data"] = dataFingerprint }
        for (path, slot) in optimizer.slots {
            switch slot {
            case .factored(let vr, let vc):
                file.tensors["optimizer.\(path.name).vr"] = SafeTensor(vr)
                file.tensors["optimizer.\(path.name).vc"] = SafeTensor(vc)
            case .full(let v):
                file.tensors["optimizer.\(path.name).v"] = SafeTensor(v)
            }
        }
        file.metadata["checksum"] = Self.checksum(of: file)
        return file
    }

    /// Writes the checkpoint atomically: a temporary file beside `url`, flushed to disk, then renamed
    /// over `url`. A crash at any point leaves either the old file or the new one, never a mixture.
    ///
    /// - Parameters:
    ///   - url: where the checkpoint goes.
    ///   - beforeRename: called after the temporary file is complete, before the rename (tests use it
    ///     to simulate a crash).
    public func write(to url: URL, beforeRename: (() throws -> Void)? = nil) throws {
        try FileAccess.writeAtomically(safeTensorsFile().serialized(), to: url, beforeRename: beforeRename)
    }

    /// Reads a checkpoint, verifying its checksum and that every part fits.
    ///
    /// - Throws: `ModelError` naming the file and the problem (corrupt, truncated, not a training
    ///   checkpoint, mismatched names or shapes, a non-finite weight, a second moment that is
    ///   negative or not finite).
    public init(contentsOf url: URL) throws(ModelError) {
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(contentsOf: url)
        } catch {
            throw ModelError(error.description)
        }
        try self.init(file, name: url.path)
    }

    /// Reads a checkpoint from a safetensors file already read; `name` labels errors.
    ///
    /// - Throws: `ModelError` as ``init(contentsOf:)``; a model file without training state (written
    ///   by ``GLaMModel/write(to:tokenizer:extraMetadata:)``) is refused, naming what it lacks.
    public init(_ file: SafeTensorsFile, name: String) throws(ModelError) {
        guard file.metadata["format"] == "glam-checkpoint" else {
            if file.metadata[ModelParameters.configurationKey] != nil {
                throw ModelError(
                    "\(name): a model file without training state (no optimizer statistics, step or training options): it runs, but training cannot resume from it"
                )
            }
            throw ModelError("\(name): not a glam training checkpoint (__metadata__ format is not glam-checkpoint)")
        }
        guard let stored = file.metadata["checksum"] else { throw ModelError("\(name): the checkpoint has no checksum") }
        guard stored == Self.checksum(of: file) else {
            throw ModelError("\(name): checksum mismatch (stored \(stored), computed \(Self.checksum(of: file))): the file is corrupt")
        }
        let parameters = try ModelParameters(file, name: name)
        guard let step = file.metadata["step"].flatMap({ Int($0) }), step >= 0,
            let skipped = file.metadata["skipped_steps"].flatMap({ Int($0) }), skipped >= 0, skipped <= step
        else { throw ModelError("\(name): step or skipped_steps missing or invalid") }
        guard let optionsText = file.metadata["training"], let options = try? TrainingOptions.fromJSON(optionsText) else {
            throw ModelError("\(name): training options missing or invalid")
        }
        if let problem = options.problem { throw ModelError("\(name): training options: \(problem)") }
        guard let tokenizerText = file.metadata["tokenizer"] else { throw ModelError("\(name): no tokenizer in the checkpoint") }
        let tokenizer = try BytePairTokenizer(json: tokenizerText)
        guard tokenizer.vocabularySize == parameters.configuration.vocabSize else {
            throw ModelError(
                "\(name): the tokenizer has \(tokenizer.vocabularySize) ids but the model's vocabulary is \(parameters.configuration.vocabSize)"
            )
        }
        var optimizer = Adafactor(configuration: options.adafactor)
        for path in parameters.paths {
            let (parameter, shape) = (path.name, path.shape(in: parameters.configuration))
            if let vr = file.tensors["optimizer.\(parameter).vr"], let vc = file.tensors["optimizer.\(parameter).vc"] {
                let leading = Array(shape.dropLast(2))
                guard options.adafactor.isFactored(shape), vr.shape == leading + [shape[shape.count - 2]],
                    vc.shape == leading + [shape[shape.count - 1]]
                else { throw ModelError("\(name): optimizer statistics of \(parameter) do not fit its shape \(shape)") }
                optimizer.slots[path] = .factored(
                    vr: try Self.secondMoment(vr, "optimizer.\(parameter).vr", file: name),
                    vc: try Self.secondMoment(vc, "optimizer.\(parameter).vc", file: name))
            } else if let v = file.tensors["optimizer.\(parameter).v"] {
                guard v.shape == shape else {
                    throw ModelError("\(name): optimizer statistic of \(parameter) has shape \(v.shape), not \(shape)")
                }
                optimizer.slots[path] = .full(v: try Self.secondMoment(v, "optimizer.\(parameter).v", file: name))
            } else if step > skipped {  // at least one update was applied
                throw ModelError("\(name): no optimizer statistics for \(parameter)")
            }
        }
        self.init(
            validated: parameters, optimizer: optimizer, step: step, skippedSteps: skipped, options: options, tokenizer: tokenizer,
            dataFingerprint: file.metadata["data"])
    }

    /// A stored Adafactor second-moment statistic, which is a running mean of squared gradients:
    /// every element must be finite and ≥ 0 (a NaN or negative one would poison every later update).
    static func secondMoment(_ tensor: SafeTensor, _ tensorName: String, file: String) throws(ModelError) -> Tensor<Float> {
        guard !tensor.dtype.isInteger else { throw ModelError("\(file): \(tensorName) is \(tensor.dtype.rawValue), not a float type") }
        let moment = tensor.floatTensor()
        if let index = moment.scalars.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw ModelError(
                "\(file): \(tensorName) holds \(moment.scalars[index]) at element \(index); Adafactor's second moments are finite and ≥ 0")
        }
        return moment
    }

    /// CRC-32 (IEEE) of every tensor (name, dtype, shape, bytes) and every metadata entry except the
    /// checksum itself, in sorted order, as 8 hex digits.
    static func checksum(of file: SafeTensorsFile) -> String {
        var crc = CRC32()
        for name in file.tensors.keys.sorted() {
            let tensor = file.tensors[name]!
            crc.update(Array("\(name)|\(tensor.dtype.rawValue)|\(tensor.shape)|".utf8))
            crc.update(tensor.bytes)
        }
        for key in file.metadata.keys.sorted() where key != "checksum" {
            crc.update(Array("\(key)=\(file.metadata[key]!)\n".utf8))
        }
        return String(format: "%08x", crc.value)
    }
}
