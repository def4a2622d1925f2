// One reader for every file a model runs from: a training checkpoint (`glam train`,
// `Trainer.checkpoint.write`) or a model file (`GLaMModel.write(to:tokenizer:)`). Both are the same
// safetensors layout, parameters by name and the configuration in `__metadata__["config"]`; a
// checkpoint adds the training state and a checksum, a model file may add the tokenizer. What a
// file lacks is named when a use needs it.

import Foundation

/// A model read from any glam file: its parameters, its tokenizer when the file has one, and its
/// training state when the file is a training checkpoint.
///
/// ```swift
/// let model = try ModelFile(contentsOf: url)  // a training checkpoint or a model file
/// let ids = try IncrementalDecoder.generate(
///     parameters: model.parameters, prompt: [1, 2, 3], count: 8, strategy: .greedy, seed: 0)
/// print(try model.requireTokenizer(for: "generate").decode(ids), model.step ?? 0)
/// ```
public struct ModelFile: Sendable {
    /// The model's parameters.
    public let parameters: ModelParameters
    /// The tokenizer that turns text into the model's ids (nil: the file has none).
    public let tokenizer: BytePairTokenizer?
    /// The run's state when the file is a training checkpoint (nil: an inference-only model file).
    public let checkpoint: TrainingCheckpoint?
    /// Where the file was read from (labels errors).
    public let name: String
    /// Training steps taken, for a training checkpoint (nil for a model file).
    public let step: Int?

    /// Reads a training checkpoint (checksum and training state checked) or a model file.
    ///
    /// - Throws: `ModelError` naming the file and the problem: not a safetensors file, no model
    ///   configuration, parameters that do not fit it, a non-finite weight, a tokenizer whose ids are
    ///   not the model's vocabulary, or (for a checkpoint) any problem `TrainingCheckpoint` names.
    public init(contentsOf url: URL) throws(ModelError) {
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(contentsOf: url)
        } catch {
            throw ModelError(error.description)
        }
        try self.init(file, name: url.path)
    }

    /// Reads a model from a safetensors file already read; `name` labels errors.
    public init(_ file: SafeTensorsFile, name: String) throws(ModelError) {
        self.name = name
        if file.metadata["format"] == "glam-checkpoint" {
            let checkpoint = try TrainingCheckpoint(file, name: name)
            parameters = checkpoint.parameters
            tokenizer = checkpoint.tokenizer
            self.checkpoint = checkpoint
            step = checkpoint.step
            return
        }
        parameters = try ModelParameters(file, name: name)
        checkpoint = nil
        step = nil
        guard let text = file.metadata[ModelParameters.tokenizerKey] else {
            tokenizer = nil
            return
        }
        let read: BytePairTokenizer
        do {
            read = try BytePairTokenizer(json: text)
        } catch {
            throw ModelError("\(name): __metadata__[\"tokenizer\"]: \(error.description)")
        }
        guard read.vocabularySize == parameters.configuration.vocabSize else {
            throw ModelError(
                "\(name): the tokenizer has \(read.vocabularySize) ids but the model's vocabulary is \(parameters.configuration.vocabSize)")
        }
        tokenizer = read
    }

    /// The tokenizer, or an error naming the file, what is missing and how to add it.
    ///
    /// - Parameter use: what needs text (for example "generate"), named in the error.
    public func requireTokenizer(for use: String) throws(ModelError) -> BytePairTokenizer {
        guard let tokenizer else {
            throw ModelError(
                "\(name): a model file without a tokenizer; \(use) needs one to turn text into ids (write the model with write(to:tokenizer:))"
            )
        }
        return tokenizer
    }

}
