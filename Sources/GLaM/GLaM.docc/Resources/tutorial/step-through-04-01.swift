import GLaM

// A byte-level tokenizer: one token per UTF-8 byte, plus end-of-text.
let tokenizer = try BytePairTokenizer(merges: [])
var configuration = ModelConfiguration.named("tiny")!
configuration.vocabSize = tokenizer.vocabularySize

// Text to learn from: any String (a real corpus in practice).
let text = String(repeating: "the cat and the dog sat on the mat. the dog and the cat ran. ", count: 40)
var options = TrainingOptions()
(options.batchSize, options.sequenceLength) = (4, 32)
let dataset = TextDataset(text: text, tokenizer: tokenizer, length: options.sequenceLength)
