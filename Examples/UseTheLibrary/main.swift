// Example: the library as a program meets it. Build a `tiny` GLaM, run a forward pass and read the
// routing of decoder layer 2 (an MoE layer), train 5 Adafactor steps on token ids of your own, save
// the model with its tokenizer, read it back and generate.
//
//     swift run -c release --package-path PATH/TO/glam use-the-library

import Foundation
import GLaM

let tokenizer = try BytePairTokenizer(merges: [])  // byte level: 256 bytes and end-of-text
var configuration = ModelConfiguration.named("tiny")!
configuration.vocabSize = tokenizer.vocabularySize
let parameters = try ModelParameters(configuration: configuration, seed: 0)

// A forward pass, and how layer 2 routed each token: its two experts, kept or dropped.
let prompt = tokenizer.encode("GLaM MoE")
let output: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: prompt.count, tokens: prompt))
for route in output.routing(ofLayer: 2)!.tokens {
    print("token \(route.token): experts \(route.experts) \(route.outcomes.map(\.rawValue))")
}

// Training on documents of token ids: any sequence of sequences of Int.
let documents = (0..<400).map { d in (0..<24).map { (d + 5 * $0) % 200 } }
var options = TrainingOptions()
(options.batchSize, options.sequenceLength) = (4, 32)
let dataset = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: options.sequenceLength)
let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
for _ in 0..<5 { print("step \(trainer.step + 1): loss \(try trainer.trainStep().loss)") }

// One file every glam command reads (`glam generate --checkpoint FILE` too), read back to generate.
let url = FileManager.default.temporaryDirectory.appendingPathComponent("use-the-library.safetensors")
try trainer.parameters.write(to: url, tokenizer: tokenizer)
let model = try ModelFile(contentsOf: url)
let ids = try IncrementalDecoder.generate(
    parameters: model.parameters, prompt: prompt, count: 12, strategy: .greedy, seed: 0)
print(ids)
