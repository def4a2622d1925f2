// The README's library example, compiled and run, so the documentation cannot drift from the API.

import Foundation
import GLaM
import Testing

struct ReadmeExampleTests {
    @Test func readmeExample() throws {
        let x = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let w = Tensor<Float>(shape: [3, 4], scalars: (0..<12).map(Float.init))
        let y = matmul(x, w).softmax()  // [2, 4]
        #expect(y.shape == [2, 4])

        let tape = Tape<Float>()
        let wv = tape.variable(w)
        let loss = matmul(Variable(constant: x), wv).logSoftmax().mean()
        let grads = tape.gradients(of: loss)
        #expect(grads[wv]?.shape == [3, 4])

        let file = SafeTensorsFile(tensors: ["w": SafeTensor(w)], metadata: ["note": "example"])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try file.write(to: url)
        #expect(try SafeTensorsFile(contentsOf: url) == file)

        let corpus = try String(
            contentsOf: fixturesDirectory.appendingPathComponent("corpus/jargon-4.4.7.txt"), encoding: .utf8)
        let text = String(corpus.prefix(30_000))
        var configuration = try namedConfiguration("tiny")
        configuration.numGroups = 2
        var options = TrainingOptions()
        (options.batchSize, options.sequenceLength) = (4, 32)
        let tokenizer = try BytePairTokenizer.train(
            on: TextDataset.trainingText(of: text), vocabularySize: configuration.vocabSize)
        let dataset = TextDataset(text: text, tokenizer: tokenizer, length: options.sequenceLength)
        let mesh = try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"])
        let trainer = try MeshTrainer(
            configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset, mesh: mesh)
        let report = try trainer.trainStep()
        let single = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        #expect(abs(report.loss - (try single.trainStep().loss)) <= 1e-5 * report.loss)
        #expect(trainer.ledger.bytesSent(along: "data", coreCount: mesh.coreCount).allSatisfy { $0 > 0 })
    }

    @Test func readmeTraceExample() throws {
        let parameters = ModelParameters(configuration: try namedConfiguration("tiny"), seed: 0)
        let batch = TokenBatch(batchSize: 1, length: 4, tokens: [1, 2, 3, 4])
        let trace = ForwardTrace()
        let output: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
        #expect(trace["layers.0.moe.router_probabilities"]?.shape == [1, 4, 4])  // [G, S, E]
        #expect(trace["logits"] == output.logits.value)
    }
}
