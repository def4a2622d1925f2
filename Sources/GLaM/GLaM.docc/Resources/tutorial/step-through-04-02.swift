import Foundation
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

// Adafactor steps on the loss: cross-entropy + z-loss + 0.01 × the load-balancing loss.
let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
for _ in 0..<20 {
    let report = try trainer.trainStep()
    if (report.step + 1) % 5 == 0 {
        print(
            "step \(report.step + 1): loss",
            String(format: "%.3f, cross-entropy %.3f, aux %.3f (both MoE layers)", report.loss, report.crossEntropy, report.auxLoss))
    }
}

// The trained model routes the prompt again: token 4's experts now.
let prompt = tokenizer.encode("the cat and the dog")
let output: DecoderOutput<Float> = try trainer.parameters.constants(TokenBatch(batchSize: 1, length: prompt.count, tokens: prompt))
let route = output.routing(ofLayer: 0)!.tokens[4]
let gates = route.combineWeights.map { String(format: "%.4f", $0) }.joined(separator: " and ")
print("after \(trainer.step) steps, token 4 goes to experts \(route.experts) with gates \(gates)")
