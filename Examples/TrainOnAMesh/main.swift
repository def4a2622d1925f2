// Example: train GLaM's `tiny` model for a few steps on a virtual 2 × 2 mesh of TPU cores, and
// check that it computes what one device computes.
//
//     swift run -c release --package-path PATH/TO/glam train-on-a-mesh
//
// runs from any directory: the corpus is found next to this file's package.

import Foundation
import GLaM

// The bundled corpus (the Jargon File), located from this source file, not the working directory.
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let corpus = try String(contentsOf: repository.appendingPathComponent("Fixtures/corpus/jargon-4.4.7.txt"), encoding: .utf8)
let text = String(corpus.prefix(30_000))  // a sample, to be quick

// The model: 4 layers, M = 64, 4 experts in layers 0 and 2; two routing groups, one per data core.
var configuration = ModelConfiguration.named("tiny")!
configuration.numGroups = 2
var options = TrainingOptions()
(options.batchSize, options.sequenceLength) = (4, 32)
let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: text), vocabularySize: configuration.vocabSize)
let dataset = TextDataset(text: text, tokenizer: tokenizer, length: options.sequenceLength)

// A 2 × 2 mesh: batch rows and experts split over `data`, each expert's hidden units over `mdl`.
let mesh = try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"])
let trainer = try MeshTrainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset, mesh: mesh)
let single = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
for _ in 0..<5 {
    let report = try trainer.trainStep()
    let reference = try single.trainStep()
    let sent = trainer.ledger.bytesSent(along: "data", coreCount: mesh.coreCount)[0]
    print(
        String(
            format: "step %d  mesh loss %.5f  one device %.5f  core 0 has sent %d bytes along data", report.step + 1, report.loss,
            reference.loss, sent))
}
