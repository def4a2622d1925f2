// `glam generate`: continue a prompt with a trained checkpoint (KV-cache decoding).

import Foundation
import GLaM

enum GenerateCommand: Subcommand {
    static let name = "generate"
    static let summary = "Continue a prompt with a trained checkpoint."
    /// What `generate` does when no option says otherwise.
    static let defaults = (tokens: 120, temperature: Float(0.8), topK: 40, seed: 0)
    static let help = """
        USAGE: glam generate --checkpoint FILE --prompt TEXT [--tokens N] [--temperature X]
                             [--top-k K] [--greedy] [--seed S]

        Encodes the prompt with the checkpoint's tokenizer, decodes incrementally with a key/value
        cache, and prints the prompt followed by the continuation. Sampling is seeded: the same seed
        gives the same text. Defaults: \(defaults.tokens) tokens, temperature \(defaults.temperature), top-k \(defaults.topK), seed \(defaults.seed).
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "generate", options: ["checkpoint", "prompt", "tokens", "temperature", "top-k", "seed"], flags: ["greedy"])
        guard parsed.positionals.isEmpty else { throw UsageError("generate: unexpected argument '\(parsed.positionals[0])'") }
        guard let path = parsed.value("checkpoint") else { throw UsageError("generate: --checkpoint FILE is required") }
        guard let prompt = parsed.value("prompt"), !prompt.isEmpty else { throw UsageError("generate: --prompt TEXT is required") }
        let count = try parsed.integer("tokens", in: 0...100_000) ?? defaults.tokens
        let topK = try parsed.integer("top-k", in: 0...1_000_000) ?? defaults.topK
        let seed = UInt64(try parsed.integer("seed", in: 0...Int.max) ?? defaults.seed)
        var temperature = defaults.temperature
        if let text = parsed.value("temperature") {
            guard let value = Float(text), value > 0, value.isFinite else {
                throw UsageError("generate: --temperature must be a positive number")
            }
            temperature = value
        }
        let model: ModelFile, tokenizer: BytePairTokenizer
        do {
            model = try ModelFile(contentsOf: URL(fileURLWithPath: path))
            tokenizer = try model.requireTokenizer(for: "generate")
        } catch {
            throw UsageError("generate: \(error.description)")
        }
        let strategy: SamplingStrategy = parsed.has("greedy") ? .greedy : .temperature(temperature, topK: topK > 0 ? topK : nil)
        let ids = try IncrementalDecoder.generate(
            parameters: model.parameters, prompt: tokenizer.encode(prompt), count: count, strategy: strategy, seed: seed)
        let text = tokenizer.decode(Array(ids.prefix { $0 != tokenizer.endOfText }))
        output.line(prompt + text)
        return 0
    }
}
