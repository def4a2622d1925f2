// The examples in the public API reference, compiled and run: each ```swift block of the doc
// comments of the main types is in `examples()` below verbatim (checked by the second test), in an
// order where each finds the names the ones before it define.

import Foundation
import Testing

@testable import GLaM

struct DocumentationExamplesTests {
    /// The types whose documentation shows an example, and their files.
    static let documented = [
        ("GLaMModel", "Model/GLaMModel.swift"), ("ForwardTrace", "Model/Tracer.swift"), ("MoELayerTrace", "MoE/RoutingTrace.swift"),
        ("Trainer", "Training/Trainer.swift"), ("TrainingCheckpoint", "Training/TrainingCheckpoint.swift"),
        ("ModelFile", "Training/ModelFile.swift"), ("GoldenFixture", "Verification/GoldenFixture.swift"),
    ]

    @Test("every example of the API reference runs")
    func examples() throws {
        // GLaMModel
        let parameters = try ModelParameters(configuration: ModelConfiguration.named("tiny")!, seed: 0)
        let batch = TokenBatch(batchSize: 1, length: 4, tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5])
        let output: DecoderOutput<Float> = try parameters.constants(batch)
        print(output.logits.shape, output.loss!.value.scalar)  // [1, 4, V]; CE + z-loss and aux-loss terms
        // ForwardTrace
        let trace = ForwardTrace()
        let traced: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
        print(trace.names.prefix(3))  // in the order they are computed
        print(trace["layers.0.moe.router_probabilities"]!.shape, traced.logits.shape)  // [G, S, E], [B, T, V]
        // MoELayerTrace
        let routing = output.routing(ofLayer: 0)!  // decoder layer 0 is an MoE layer
        print("capacity C = \(routing.capacity), aux loss \(routing.auxLoss)")
        for route in routing.tokens {
            print(route.token, route.experts, route.queuePositions, route.outcomes.map(\.rawValue))
        }
        // Trainer
        let tokenizer = try BytePairTokenizer(merges: [])  // byte level
        var configuration = ModelConfiguration.named("tiny")!
        configuration.vocabSize = tokenizer.vocabularySize
        var options = TrainingOptions()
        (options.batchSize, options.sequenceLength) = (4, 16)
        let documents = (0..<200).map { d in (0..<20).map { (d + 3 * $0) % 100 } }  // ids of your own
        let dataset = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: 16)
        let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        let report = try trainer.trainStep()  // loss terms, learning rate, expert loads; skipped if not finite
        print(report.loss, report.applied, try trainer.validationLoss())
        // TrainingCheckpoint
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("run.safetensors")
        try trainer.checkpoint.write(to: url)  // atomic, with a checksum
        let checkpoint = try TrainingCheckpoint(contentsOf: url)
        let resumed = try Trainer(resuming: checkpoint, dataset: dataset)  // continues bit for bit
        print(resumed.step, try resumed.trainStep().loss)
        // ModelFile
        let model = try ModelFile(contentsOf: url)  // a training checkpoint or a model file
        let ids = try IncrementalDecoder.generate(
            parameters: model.parameters, prompt: [1, 2, 3], count: 8, strategy: .greedy, seed: 0)
        print(try model.requireTokenizer(for: "generate").decode(ids), model.step ?? 0)
        // GoldenFixture
        let fixture = try GoldenFixture(contentsOf: URL(fileURLWithPath: "Fixtures/moe/top2_gating_spec_cf1.safetensors"))
        let result = try fixture.run()  // recomputes every expected tensor
        for comparison in result.comparisons {
            print(comparison.name, comparison.passed, comparison.maxAbsoluteDifference)
        }

        // What the examples say they show.
        #expect(output.logits.shape == [1, 4, parameters.configuration.vocabSize] && traced.logits.value == output.logits.value)
        #expect(routing.tokens.count == 4 && report.applied && resumed.step == 2 && ids.count == 8 && result.passed)
        try? FileManager.default.removeItem(at: url)
    }

    @Test("the API reference's examples are the code of examples(), verbatim, one per main type")
    func examplesAreVerbatim() throws {
        let root = fixturesDirectory.deletingLastPathComponent()
        let tests = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        for (type, file) in Self.documented {
            let source = try String(contentsOf: root.appendingPathComponent("Sources/GLaM/" + file), encoding: .utf8)
            let lines = source.components(separatedBy: "\n")
            let declaration = try #require(lines.firstIndex { $0.contains("public ") && $0.contains(" \(type)") && $0.contains("{") })
            // The doc comment above the declaration, and its ```swift block.
            var start = declaration
            while start > 0 && lines[start - 1].hasPrefix("///") { start -= 1 }
            let comment = lines[start..<declaration].map { $0 == "///" ? "" : String($0.dropFirst(4)) }
            let open = try #require(comment.firstIndex(of: "```swift"), "\(type) has no example")
            let close = try #require(comment[(open + 1)...].firstIndex(of: "```"))
            let block = comment[(open + 1)..<close].map { "        " + $0 }.joined(separator: "\n")
            #expect(tests.contains("// \(type)\n" + block + "\n"), "\(type)'s example is not examples()'s code")
        }
    }

    @Test("the articles' Swift examples run")
    func articleExamples() throws {
        let trainer = try tinyTrainer(steps: 1)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            // Checkpoints.md
            try trainer.parameters.write(to: url, tokenizer: trainer.tokenizer)  // runs in every command
            let model = try ModelFile(contentsOf: url)
            let tokenizer = try model.requireTokenizer(for: "generate")
            // (end)
            #expect(tokenizer == trainer.tokenizer && model.parameters == trainer.parameters && model.checkpoint == nil)
        }
        do {
            let tokenizer = try BytePairTokenizer(merges: [])
            var configuration = ModelConfiguration.named("tiny")!
            configuration.vocabSize = tokenizer.vocabularySize
            var options = TrainingOptions()
            (options.batchSize, options.sequenceLength) = (4, 32)
            // TrainingTheModel.md
            let documents = (0..<400).map { d in (0..<24).map { (d + 5 * $0) % 200 } }
            let dataset = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: 32)
            let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
            for _ in 0..<5 { print(try trainer.trainStep().loss) }
            // (end)
            #expect(trainer.step == 5 && trainer.skippedSteps == 0)
        }
        do {
            let parameters = try ModelParameters(configuration: ModelConfiguration.named("tiny")!, seed: 0)
            // FollowOneToken.md
            let output: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: 3, tokens: [5, 6, 7]))
            let routing = output.routing(ofLayer: 2)!
            for route in routing.tokens {
                print(route.token, route.experts, route.queuePositions, route.outcomes.map(\.rawValue), route.combineWeights)
            }
            // (end)
            #expect(routing.layer == 2 && routing.tokens.count == 3)
        }
    }

    @Test("every Swift block of every article is articleExamples()' code verbatim")
    func articleExamplesAreVerbatim() throws {
        let catalog = fixturesDirectory.deletingLastPathComponent().appendingPathComponent("Sources/GLaM/GLaM.docc")
        let tests = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        var checked = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: catalog.path).sorted() where name.hasSuffix(".md") {
            let article = try String(contentsOf: catalog.appendingPathComponent(name), encoding: .utf8)
            for block in article.components(separatedBy: "```swift\n").dropFirst().map({ $0.components(separatedBy: "```\n")[0] }) {
                let indented = block.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "            " + $0 }
                #expect(tests.contains("// \(name)\n" + indented.joined(separator: "\n") + "\n            // (end)"), "\(name): \(block)")
                checked += 1
            }
        }
        #expect(checked == 3)
    }
}
