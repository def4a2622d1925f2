import GLaM

// A byte-level tokenizer: one token per UTF-8 byte, plus end-of-text.
let tokenizer = try BytePairTokenizer(merges: [])
var configuration = ModelConfiguration.named("tiny")!
configuration.vocabSize = tokenizer.vocabularySize
