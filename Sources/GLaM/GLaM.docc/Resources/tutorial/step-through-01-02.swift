import GLaM

// A byte-level tokenizer: one token per UTF-8 byte, plus end-of-text.
let tokenizer = try BytePairTokenizer(merges: [])
var configuration = ModelConfiguration.named("tiny")!
configuration.vocabSize = tokenizer.vocabularySize

// Every weight, drawn from seed 0: the same seed gives the same bits on any machine.
let parameters = try ModelParameters(configuration: configuration, seed: 0)
let count = ParameterCount(configuration)
print("layers: \(configuration.numLayers), MoE layers: \(configuration.moeLayers), experts: \(configuration.numExperts)")
print("parameters: \(count.total) in all, \(count.activated) used by each token")
