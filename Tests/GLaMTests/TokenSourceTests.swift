// Training and reading a model from code, as a library user does: token documents from any source
// packed like text, ids outside the vocabulary refused before any step, and routing looked up by
// decoder layer.

import Foundation
import Testing

@testable import GLaM

struct TokenSourceTests {
    @Test("text is packed as its documents' token ids are: the same rows, targets, segments and fingerprint")
    func textIsTokenDocuments() throws {
        let sample = try corpusSample(bytes: 20_000)
        let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: sample), vocabularySize: 300)
        let fromText = TextDataset(text: sample, tokenizer: tokenizer, length: 32)
        // Any sequence of sequences: here lazily mapped arrays of ids.
        let documents = TextDataset.documents(of: sample).lazy.map { tokenizer.encode($0) }
        let fromTokens = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: 32)
        #expect(fromText.training == fromTokens.training && fromText.validation == fromTokens.validation)
        #expect(fromText.fingerprint == fromTokens.fingerprint)
        // Every 20th document is held out, each followed by end-of-text.
        let ids = (0..<40).map { d in (0..<(3 + d % 5)).map { (d * 7 + $0) % 50 + 1 } }
        let packed = TextDataset(tokenDocuments: ids, endOfText: 0, length: 8)
        let held = [ids[19], ids[39]].map { $0 + [0] }
        let kept = ids.enumerated().filter { $0.offset % 20 != 19 }.map { $0.element + [0] }
        #expect(packed.validation == PackedRows(documents: held, length: 8))
        #expect(packed.training == PackedRows(documents: kept, length: 8))
    }

    @Test("a trainer over token ids trains, and refuses an id outside the vocabulary before any step, naming it")
    func trainerOverTokens() throws {
        var configuration = try namedConfiguration("tiny")
        let tokenizer = try BytePairTokenizer(merges: [])  // byte-level: 257 ids
        configuration.vocabSize = tokenizer.vocabularySize
        var options = TrainingOptions()
        options.batchSize = 4
        options.sequenceLength = 16
        options.evaluationBatches = 1
        // Documents of a repeating pattern: learnable, so the loss falls.
        let documents = (0..<200).map { d in (0..<(20 + d % 9)).map { (d + 3 * $0) % 40 + 1 } }
        let dataset = TextDataset(tokenDocuments: documents, endOfText: tokenizer.endOfText, length: 16)
        let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        let first = try trainer.trainStep().crossEntropy
        var last = first
        for _ in 0..<30 { last = try trainer.trainStep().crossEntropy }
        #expect(last < first - 0.5, "cross-entropy \(first) → \(last)")
        for bad in [configuration.vocabSize, -1, 1 << 20] {
            var shifted = documents
            shifted[7][3] = bad  // training document
            let refused = TextDataset(tokenDocuments: shifted, endOfText: tokenizer.endOfText, length: 16)
            #expect(
                throws: ModelError("the training data has token id \(bad), outside the model's vocabulary 0..<\(configuration.vocabSize)")
            ) {
                _ = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: refused)
            }
        }
        var held = documents
        held[19][0] = configuration.vocabSize  // a validation document
        #expect(
            throws: ModelError(
                "the validation data has token id \(configuration.vocabSize), outside the model's vocabulary 0..<\(configuration.vocabSize)"
            )
        ) {
            _ = try Trainer(
                configuration: configuration, options: options, tokenizer: tokenizer,
                dataset: TextDataset(tokenDocuments: held, endOfText: tokenizer.endOfText, length: 16))
        }
    }

    @Test("routing by decoder layer: an MoE layer's is its gating's told token by token, a dense or absent layer has none")
    func routingByDecoderLayer() throws {
        let configuration = try namedConfiguration("tiny")
        let parameters = try ModelParameters(configuration: configuration, seed: 1)
        let batch = TokenBatch(
            batchSize: 2, length: 8, tokens: (0..<16).map { ($0 * 37) % configuration.vocabSize },
            paddings: [Float](repeating: 0, count: 13) + [1, 1, 1])
        let output: DecoderOutput<Float> = try parameters.constants(batch)
        #expect(output.moeLayers == configuration.moeLayers && output.gatings.count == output.moeLayers.count)
        for layer in -1...configuration.numLayers {
            guard let k = configuration.moeLayers.firstIndex(of: layer) else {
                #expect(output.gating(ofLayer: layer) == nil && output.routing(ofLayer: layer) == nil, "layer \(layer)")
                continue
            }
            let routing = try #require(output.routing(ofLayer: layer))
            let expected = MoELayerTrace(
                layer: layer, gating: output.gatings[k], paddings: Tensor(shape: [2, 8], scalars: batch.paddings!),
                configuration: configuration.gating)
            #expect(routing == expected, "layer \(layer)")
            #expect(routing.layer == layer && routing.tokens.suffix(3).allSatisfy { $0.outcomes == [.padding, .padding] })
            #expect(output.gating(ofLayer: layer)?.routing.firstExpert == output.gatings[k].routing.firstExpert)
        }
    }

    @Test("fresh parameters for an invalid configuration are a thrown error naming the problem, not a trap")
    func invalidConfigurationThrows() throws {
        let tiny = try namedConfiguration("tiny")
        var cases: [ModelConfiguration] = []
        for change in [
            { (c: inout ModelConfiguration) in c.vocabSize = 0 }, { $0.numHeads = 0 }, { $0.numExperts = -1 }, { $0.numLayers = -1 },
            { $0.numGroups = 0 },
        ] {
            var c = tiny
            change(&c)
            cases.append(c)
        }
        for c in cases {
            let problem = try #require(c.problem, "\(c)")
            #expect(throws: ModelError("invalid configuration: \(problem)")) { _ = try ModelParameters(configuration: c, seed: 0) }
        }
        #expect(throws: Never.self) { _ = try ModelParameters(configuration: tiny, seed: 0) }
    }

    @Test("a dataset of exactly one batch of rows trains; one row fewer is refused before any step")
    func exactlyOneBatch() throws {
        var configuration = try namedConfiguration("tiny")
        let tokenizer = try BytePairTokenizer(merges: [])
        configuration.vocabSize = tokenizer.vocabularySize
        var options = TrainingOptions()
        (options.batchSize, options.sequenceLength) = (4, 16)
        // A document of 16 ids and its end-of-text fill one row of 16 (input, target) pairs.
        func dataset(rows: Int) -> TextDataset {
            TextDataset(tokenDocuments: (0..<rows).map { d in (0..<16).map { d + $0 + 1 } }, endOfText: tokenizer.endOfText, length: 16)
        }
        #expect(dataset(rows: 4).training.count == 4 && dataset(rows: 3).training.count == 3)
        let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset(rows: 4))
        #expect(try trainer.trainStep().tokens == 4 * 16)
        #expect(throws: ModelError("the corpus gives 3 training rows, fewer than one batch of 4")) {
            _ = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset(rows: 3))
        }
    }

    @Test(
        "the data fingerprint is CRC-32 of the documented layout: the row length, then each split's ids and segment ids as little-endian 32-bit words"
    )
    func fingerprintLayout() throws {
        // Ids past 2¹⁶ and 2²⁴ use every byte of a word.
        let documents = (0..<45).map { d in (0..<(5 + d % 7)).map { (d * 104_729 + $0 * 16_777_259) % 30_000_000 } }
        let dataset = TextDataset(tokenDocuments: documents, endOfText: 29_999_999, length: 8)
        var bytes = Array("8|".utf8)
        for rows in [dataset.training, dataset.validation] {
            for values in [rows.tokens, rows.segments] {
                for value in values { withUnsafeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian) { bytes += $0 } }
                bytes.append(UInt8(ascii: "|"))
            }
        }
        var crc = CRC32()
        crc.update(bytes)
        #expect(dataset.fingerprint == String(format: "%08x", crc.value))
        #expect(dataset.training.tokens.contains { $0 >= 1 << 24 })
    }
}
