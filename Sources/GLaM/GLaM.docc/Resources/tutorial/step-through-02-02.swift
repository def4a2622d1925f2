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
print("\(trace.names.count) intermediates, the first: \(trace.names.prefix(4).joined(separator: ", "))")
for name in ["layers.0.attention.probabilities", "layers.0.moe.router_probabilities", "layers.0.moe.dispatch"] {
    print(name, trace[name]!.shape)
}
print("logits", output.logits.shape)  // [B, T, V]
