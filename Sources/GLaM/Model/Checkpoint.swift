// Saving and loading model parameters as safetensors (see the "Checkpoints" article): tensors named
// by `ParameterPath.name`, `__metadata__["config"]` holding the configuration's JSON. Writes are atomic.
// Training checkpoints (optimizer slots `optimizer.<param>.<slot>`, step, RNG, data position) add
// to the same file; loading parameters ignores those entries.

import Foundation

extension GLaMModel where Weight == Tensor<Float> {
    /// The metadata key holding the configuration JSON.
    public static let configurationKey = "config"

    /// The parameters as a safetensors file (F32), with the configuration and `extraMetadata`.
    public func safeTensorsFile(extraMetadata: [String: String] = [:]) -> SafeTensorsFile {
        var tensors: [String: SafeTensor] = [:]
        for (path, weight) in weights { tensors[path.name] = SafeTensor(weight) }
        var file = SafeTensorsFile(tensors: tensors, metadata: extraMetadata)
        file.metadata[Self.configurationKey] = configuration.jsonString()
        return file
    }

    /// The metadata key holding the tokenizer's JSON, in model files and training checkpoints.
    public static let tokenizerKey = "tokenizer"

    /// Writes the parameters to `url` atomically (temporary file, then rename): a model file, which
    /// every command that runs a model reads (`ModelFile`). With `tokenizer`, the file holds it too,
    /// so that `glam generate`, `glam trace` and `glam eval` can turn text into ids.
    ///
    /// - Throws: `ModelError` when `tokenizer`'s ids are not the model's vocabulary, or the write fails.
    public func write(to url: URL, tokenizer: BytePairTokenizer? = nil, extraMetadata: [String: String] = [:]) throws {
        var metadata = extraMetadata
        if let tokenizer {
            guard tokenizer.vocabularySize == configuration.vocabSize else {
                throw ModelError(
                    "cannot write \(url.path): the tokenizer has \(tokenizer.vocabularySize) ids but the model's vocabulary is \(configuration.vocabSize)"
                )
            }
            metadata[Self.tokenizerKey] = tokenizer.jsonString()
        }
        try safeTensorsFile(extraMetadata: metadata).write(to: url)
    }

    /// Loads parameters from a checkpoint file.
    ///
    /// - Parameters:
    ///   - url: the checkpoint file.
    ///   - expected: when given, the checkpoint's configuration must equal it.
    /// - Throws: `ModelError` naming the file and what does not match: an unreadable or malformed
    ///   file, a missing or invalid configuration, a configuration different from `expected` (with
    ///   the differing keys), parameter names and shapes that do not fit the configuration, or a
    ///   weight that is NaN or infinite.
    public init(contentsOf url: URL, expecting expected: ModelConfiguration? = nil) throws(ModelError) {
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(contentsOf: url)
        } catch {
            throw ModelError(error.description)
        }
        try self.init(file, name: url.path, expecting: expected)
    }

    /// Loads parameters from a safetensors file already read; `name` labels errors.
    public init(_ file: SafeTensorsFile, name: String, expecting expected: ModelConfiguration? = nil) throws(ModelError) {
        guard let configText = file.metadata[Self.configurationKey] else {
            throw ModelError("\(name): no model configuration in __metadata__[\"config\"]; not a glam checkpoint")
        }
        let configuration: ModelConfiguration
        do {
            configuration = try ModelConfiguration.fromJSON(configText)
        } catch {
            throw ModelError("\(name): __metadata__[\"config\"] is not a valid model configuration")
        }
        if let expected, expected != configuration {
            let differing = Self.differingKeys(expected, configuration)
            throw ModelError("\(name): checkpoint configuration differs from the expected one in \(differing.joined(separator: ", "))")
        }
        var tensors: [ParameterPath: Tensor<Float>] = [:]
        for (tensorName, tensor) in file.tensors where !tensorName.hasPrefix("optimizer.") {
            guard let path = ParameterPath(name: tensorName) else {
                throw ModelError("\(name): unexpected parameter \(tensorName) (not a GLaM parameter name)")
            }
            guard !tensor.dtype.isInteger else {
                throw ModelError("\(name): parameter \(tensorName) is \(tensor.dtype.rawValue), not a float type")
            }
            let weight = tensor.floatTensor()
            if let index = weight.scalars.firstIndex(where: { !$0.isFinite }) {
                throw ModelError(
                    "\(name): parameter \(tensorName) holds \(weight.scalars[index]) at element \(index); a model with a non-finite weight computes nothing meaningful"
                )
            }
            tensors[path] = weight
        }
        do {
            try self.init(configuration: configuration, tensors: tensors)
        } catch {
            throw ModelError("\(name): \(error.description)")
        }
    }

    /// The JSON keys whose values differ between two configurations.
    static func differingKeys(_ a: ModelConfiguration, _ b: ModelConfiguration) -> [String] {
        func object(_ c: ModelConfiguration) -> [String: String] {
            let json = (try? JSONSerialization.jsonObject(with: Data(c.jsonString().utf8))) as? [String: Any] ?? [:]
            return json.mapValues { "\($0)" }
        }
        let (x, y) = (object(a), object(b))
        return Set(x.keys).union(y.keys).sorted().filter { x[$0] != y[$0] }.map { "\($0) (\(x[$0] ?? "none") vs \(y[$0] ?? "none"))" }
    }
}
