import Foundation
import GLaM

// A byte-level tokenizer: one token per UTF-8 byte, plus end-of-text.
let tokenizer = try BytePairTokenizer(merges: [])
var configuration = ModelConfiguration.named("tiny")!
configuration.vocabSize = tokenizer.vocabularySize

// Every weight, drawn from seed 0: the same seed gives the same bits on any machine.
let parameters = try ModelParameters(configuration: configuration, seed: 0)

// One row of token ids: B = 1, T = the prompt's tokens.
let prompt = tokenizer.encode("the cat and the dog")
let batch = TokenBatch(batchSize: 1, length: prompt.count, tokens: prompt)

// The observer keeps every intermediate of the pass, by name.
let trace = ForwardTrace()
let output: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)

// How layer 0, a mixture of experts, routed the prompt: one group of S tokens, C slots per expert.
let layer = output.routing(ofLayer: 0)!
print("layer 0: S = \(layer.groupSize), E = \(layer.numExperts), C = \(layer.capacity), aux loss \(String(format: "%.4f", layer.auxLoss))")
