// The BPE tokenizer, documents, packing with segment ids, and the deterministic batch stream.

import Foundation
import Testing

@testable import GLaM

/// The first `bytes` of the bundled corpus, cut at a paragraph boundary.
func corpusSample(bytes: Int = 40_000) throws -> String {
    let text = try String(contentsOf: fixturesDirectory.appendingPathComponent("corpus/jargon-4.4.7.txt"), encoding: .utf8)
    let prefix = String(decoding: text.utf8.prefix(bytes), as: UTF8.self)
    return String(prefix[..<(prefix.range(of: "\n\n", options: .backwards)?.lowerBound ?? prefix.endIndex)])
}

struct DataTests {
    @Test("Box–Muller's first uniform is in (0, 1]: the smallest draw is 2⁻⁵³, not 0 (whose log is −∞), the largest exactly 1")
    func normalDrawsNeverTakeTheLogOfZero() {
        #expect(SeededGenerator.openUnitInterval(0) == 0x1p-53)
        #expect(SeededGenerator.openUnitInterval(UInt64.max) == 1)
        #expect(SeededGenerator.openUnitInterval(1 << 11) == 2 * 0x1p-53)  // one step of the 53 bits
        var generator = SeededGenerator(seed: 9)
        #expect((0..<10_000).allSatisfy { _ in generator.nextNormal().isFinite })
    }

    @Test("normal draws are standard normal: mean 0, variance 1, symmetric, and a normal's share within 1 and 2 σ")
    func normalDrawMoments() {
        var generator = SeededGenerator(seed: 17)
        let n = 200_000
        let x = (0..<n).map { _ in Double(generator.nextNormal()) }
        let mean = x.reduce(0, +) / Double(n)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)
        let skew = x.map { pow($0 - mean, 3) }.reduce(0, +) / Double(n) / pow(variance, 1.5)
        // Standard errors: mean 1/√n ≈ 0.0022, variance √(2/n) ≈ 0.0032, skewness √(6/n) ≈ 0.0055.
        #expect(abs(mean) < 0.011 && abs(variance - 1) < 0.016 && abs(skew) < 0.028, "mean \(mean), variance \(variance), skew \(skew)")
        // P(|Z| < 1) = 0.6827, P(|Z| < 2) = 0.9545 (standard errors about 0.001 and 0.0005).
        let within1 = Double(x.filter { abs($0) < 1 }.count) / Double(n), within2 = Double(x.filter { abs($0) < 2 }.count) / Double(n)
        #expect(abs(within1 - 0.6827) < 0.005 && abs(within2 - 0.9545) < 0.003, "\(within1), \(within2)")
    }

    @Test(
        "SeededGenerator is SplitMix64 (seed 0 gives the reference outputs of Vigna's splitmix64.c); uniforms and normals follow from its bits as documented"
    )
    func seededStreamDefinition() {
        var generator = SeededGenerator(seed: 0)
        #expect(
            [generator.next(), generator.next(), generator.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        // From the raw stream: a uniform is the top 24 bits · 2⁻²⁴; a normal is Box–Muller of two
        // draws, √(−2 ln u₁)·cos(2π u₂) with u₁ = (n₁ >> 11 + 1)·2⁻⁵³ ∈ (0, 1], u₂ = (n₂ >> 11)·2⁻⁵³.
        var raw = SeededGenerator(seed: 31), drawn = SeededGenerator(seed: 31)
        for _ in 0..<1000 {
            #expect(drawn.nextUniform() == Float(raw.next() >> 40) / 16_777_216)
            let u1 = (Double(raw.next() >> 11) + 1) / 9_007_199_254_740_992, u2 = Double(raw.next() >> 11) / 9_007_199_254_740_992
            let expected = Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
            let normal = drawn.nextNormal()
            #expect(abs(normal - expected) <= expected.ulp, "\(normal) vs \(expected)")
        }
    }

    @Test("a token's display text: whole UTF-8 characters as text, every byte of a split or invalid one as <0xHH>")
    func displayText() throws {
        let bytes = try BytePairTokenizer(merges: [])
        // Each single byte: ASCII as itself, any other byte (never a whole character alone) as <0xHH>.
        for id in 0..<256 {
            let expected =
                id < 0x80 ? String(UnicodeScalar(UInt8(id))) : "<0x" + (id < 16 ? "0" : "") + String(id, radix: 16, uppercase: true) + ">"
            #expect(bytes.displayText(of: id) == expected, "byte \(id)")
        }
        #expect(bytes.displayText(of: 0xC3) == "<0xC3>" && bytes.displayText(of: 0x0A) == "\n")
        // A byte-level prompt: "é" (C3 A9), "☕" (E2 98 95), "ï" (C3 AF) split into their bytes.
        let prompt = "café ☕ naïve"
        #expect(
            bytes.encode(prompt).map(bytes.displayText(of:)).joined() == "caf<0xC3><0xA9> <0xE2><0x98><0x95> na<0xC3><0xAF>ve")
        // Merged tokens: a whole character reads as itself, a token ending inside one shows that byte.
        let merged = try BytePairTokenizer(merges: [.init(0xC3, 0xA9), .init(0x66, 0xC3), .init(0x61, 0x66)])  // é, f+C3, af
        let (e, fPart, af) = (256, 257, 258)
        #expect(merged.displayText(of: e) == "é" && merged.displayText(of: fPart) == "f<0xC3>" && merged.displayText(of: af) == "af")
        // Ids that spell nothing: end of text and ids outside the vocabulary.
        #expect(bytes.displayText(of: bytes.endOfText) == "" && bytes.displayText(of: -1) == "" && bytes.displayText(of: 1 << 20) == "")
        // Where no character is split, the display texts joined are the decoded text.
        for text in ["plain ASCII, with\ttabs", "naïve café", "日本語 ☕"] {
            let whole = try BytePairTokenizer.train(on: String(repeating: text + " ", count: 20), vocabularySize: 400)
            let ids = whole.encode(text)
            let shown = ids.map(whole.displayText(of:)).joined()
            #expect(!shown.contains("<0x") ? shown == whole.decode(ids) : shown != whole.decode(ids), "\(text): \(shown)")
        }
    }

    @Test("BPE training: the most frequent pair first, ties broken by the smaller (left, right) pair")
    func mergeOrder() throws {
        // "ab cd": the chunks "ab" and " cd" give the pairs (97, 98), (32, 99), (99, 100), once each.
        let tie = try BytePairTokenizer.train(on: "ab cd", vocabularySize: 258)
        #expect(tie.merges == [BytePairTokenizer.Merge(32, 99)])
        // A more frequent pair wins over smaller ones: "ab" and " cdcd" have (99, 100) twice.
        let frequent = try BytePairTokenizer.train(on: "ab cdcd", vocabularySize: 258)
        #expect(frequent.merges == [BytePairTokenizer.Merge(99, 100)])
        // Two pairs twice each: the smaller, (97, 98), first.
        let counted = try BytePairTokenizer.train(on: "ab ab cdcd", vocabularySize: 258)
        #expect(counted.merges == [BytePairTokenizer.Merge(97, 98)])
    }

    @Test(
        "the largest vocabulary a text allows is 257 plus one merge per byte pair inside its distinct chunks, and training reaches it when no pairs are shared"
    )
    func maximumVocabulary() throws {
        // Chunks whose byte pairs are all different: every pair can be merged, one merge each, until
        // each distinct chunk is one id (a repeated chunk adds nothing).
        for (text, pairs) in [("abcdefg", 6), ("abc xyz xyz", 2 + 3), ("q", 0), ("", 0), ("mnop 12", 3 + 2)] {
            let bound = BytePairTokenizer.maximumVocabularySize(for: text)
            let distinct = Set(BytePairTokenizer.chunks(text))
            #expect(bound == 257 + distinct.reduce(0) { $0 + max($1.count - 1, 0) }, "\(text)")
            #expect(bound == 257 + pairs, "'\(text)': \(bound), chunks \(distinct.map { String(decoding: $0, as: UTF8.self) })")
            #expect(try BytePairTokenizer.train(on: text, vocabularySize: 10_000).vocabularySize == bound, "'\(text)'")
        }
        let sample = try corpusSample(bytes: 3_000)
        #expect(
            try BytePairTokenizer.train(on: sample, vocabularySize: 100_000).vocabularySize
                <= BytePairTokenizer.maximumVocabularySize(for: sample))
    }

    @Test("the bundled corpus is the recorded file")
    func corpusChecksum() throws {
        let text = try String(contentsOf: fixturesDirectory.appendingPathComponent("corpus/jargon-4.4.7.txt"), encoding: .utf8)
        #expect(text.utf8.count == 1_681_817)
        #expect(TextDataset.documents(of: text).count > 5000)
    }

    @Test("BPE: deterministic training, exact round trips of any text, save and load")
    func tokenizer() throws {
        let sample = try corpusSample()
        let a = try BytePairTokenizer.train(on: sample, vocabularySize: 400)
        let b = try BytePairTokenizer.train(on: sample, vocabularySize: 400)
        #expect(a == b && a.vocabularySize == 400 && a.endOfText == 399)
        // Every ASCII character, the control ones and NUL included, and every other byte width of UTF-8.
        let ascii = String(String.UnicodeScalarView((0..<128).compactMap(Unicode.Scalar.init)))
        for text in [sample, "Hello, wörld! 你好 🚀\n\t  tabs  and  spaces\r\n", "", " ", "a", "\u{0301}e\u{0301}", ascii, "\u{0}x\u{0}"] {
            #expect(a.decode(a.encode(text)) == text)
        }
        // Every id alone decodes to its own bytes: the 256 byte ids to that byte, end-of-text to nothing.
        for id in 0..<256 {
            #expect(Array(a.decode([id]).utf8) == (id < 128 ? [UInt8(id)] : Array("\u{FFFD}".utf8)), "id \(id)")
        }
        #expect(a.decode([a.endOfText]).isEmpty && a.decode([-1, a.vocabularySize]).isEmpty)
        let ids = a.encode(sample)
        #expect(ids.count < sample.utf8.count / 2, "merges should compress English: \(ids.count) ids for \(sample.utf8.count) bytes")
        #expect(ids.allSatisfy { $0 >= 0 && $0 < a.endOfText })
        #expect(try BytePairTokenizer(json: a.jsonString()) == a)
        #expect(throws: ModelError.self) { try BytePairTokenizer(json: #"{"format":"glam-bpe","version":1,"merges":[[0,999]]}"#) }
        #expect(throws: ModelError.self) { try BytePairTokenizer(json: "[]") }
        #expect(throws: ModelError.self) { try BytePairTokenizer.train(on: sample, vocabularySize: 100) }
        // The first merge of English text with a space-prefixed chunker is a frequent pair such as "e " or " t".
        #expect(a.merges.count == 400 - 257)
    }

    @Test("packing: inputs and next-token targets per document, segments restart per row, padding at the end")
    func packing() {
        // Two documents (ids end with end-of-text 9): [1 2 3 9] and [4 5 9]; rows of 4.
        let rows = PackedRows(documents: [[1, 2, 3, 9], [4, 5, 9]], length: 4)
        #expect(rows.count == 2)
        #expect(rows.tokens == [1, 2, 3, 4, 5, 0, 0, 0])
        #expect(rows.targets == [2, 3, 9, 5, 9, 0, 0, 0])
        #expect(rows.segments == [1, 1, 1, 2, 1, 0, 0, 0])  // document 2 continues in row 2 as a new segment
        let batch = rows.batch(rows: [1, 0])
        #expect(batch.tokens == [5, 0, 0, 0, 1, 2, 3, 4] && batch.paddings == [0, 1, 1, 1, 0, 0, 0, 0])
        #expect(batch.segmentIDs == [1, 0, 0, 0, 1, 1, 1, 2])
    }

    @Test("documents are paragraphs; every 20th is held out")
    func documentsAndSplit() {
        let text = (0..<40).map { "paragraph \($0)\nline two" }.joined(separator: "\n\n  \n")
        let documents = TextDataset.documents(of: text)
        #expect(documents.count == 40 && documents[3] == "paragraph 3\nline two")
        #expect((0..<40).filter(TextDataset.isValidation) == [19, 39])
        #expect(!TextDataset.trainingText(of: text).contains("paragraph 19\n"))
    }

    @Test("the batch stream depends only on (seed, step): every row once per epoch, reshuffled each epoch")
    func stream() {
        let (rows, batch) = (10, 3)  // 3 batches per epoch, row 9 left out in each
        let epoch0 = (0..<3).flatMap { TextDataset.rows(step: $0, batchSize: batch, rowCount: rows, seed: 5) }
        let epoch1 = (3..<6).flatMap { TextDataset.rows(step: $0, batchSize: batch, rowCount: rows, seed: 5) }
        #expect(Set(epoch0).count == 9 && Set(epoch1).count == 9)
        #expect(epoch0 != epoch1)
        #expect(
            TextDataset.rows(step: 4, batchSize: batch, rowCount: rows, seed: 5)
                == TextDataset.rows(step: 4, batchSize: batch, rowCount: rows, seed: 5))
        #expect(
            TextDataset.rows(step: 0, batchSize: batch, rowCount: rows, seed: 6)
                != TextDataset.rows(step: 0, batchSize: batch, rowCount: rows, seed: 5))
    }

    @Test("each epoch's order is a uniform random permutation: every row at every place, every order, equally often")
    func epochOrderIsUniform() {
        // One batch of all 4 rows per epoch, so each step is one epoch's whole permutation.
        let epochs = 6000
        var place = [[Int]](repeating: [Int](repeating: 0, count: 4), count: 4)  // [row][position]
        var orders: [[Int]: Int] = [:]
        for step in 0..<epochs {
            let order = TextDataset.rows(step: step, batchSize: 4, rowCount: 4, seed: 11)
            #expect(order.sorted() == [0, 1, 2, 3], "epoch \(step) is not a permutation: \(order)")
            for (position, row) in order.enumerated() { place[row][position] += 1 }
            orders[order, default: 0] += 1
        }
        // Binomial: 1500 ± 34 per (row, place), 250 ± 15.5 per order; bounds at about 4.5 standard deviations.
        #expect(place.joined().allSatisfy { abs($0 - epochs / 4) < 150 }, "places: \(place)")
        #expect(orders.count == 24 && orders.values.allSatisfy { abs($0 - epochs / 24) < 70 }, "orders: \(orders.values.sorted())")
    }

    @Test("a merge must join two ids that exist before it: negative ids and ids not yet made are refused by name, on either side")
    func mergeIDsMustExist() throws {
        _ = try BytePairTokenizer(merges: [.init(97, 98), .init(256, 99), .init(0, 257)])
        for (k, merges) in [
            (0, [BytePairTokenizer.Merge(-1, 98)]), (0, [.init(97, -1)]), (0, [.init(256, 98)]), (0, [.init(97, 256)]),
            (1, [.init(97, 98), .init(-5, 256)]), (1, [.init(97, 98), .init(257, 0)]),
        ] {
            do {
                _ = try BytePairTokenizer(merges: merges)
                Issue.record("\(merges) was accepted")
            } catch {
                #expect(
                    error.description.contains("tokenizer merge \(k) joins") && error.description.contains("do not exist before it"),
                    "\(error)")
            }
        }
    }

    @Test("the tokenizer takes as many merges as the largest vocabulary a configuration allows, and refuses more by name")
    func tokenizerMergeLimit() throws {
        // 256 byte ids, one per merge, and the end-of-text id make the vocabulary.
        let vocabularyLimit = try #require(ModelConfiguration.limits["vocab_size"])
        #expect(256 + BytePairTokenizer.maximumMerges + 1 >= vocabularyLimit)
        // The documented limit (4M merges: maximumMerges' doc comment); the check above holds for any larger one.
        #expect(BytePairTokenizer.maximumMerges == 4_194_304)
        let tooMany = [BytePairTokenizer.Merge](repeating: BytePairTokenizer.Merge(97, 98), count: BytePairTokenizer.maximumMerges + 1)
        #expect(throws: ModelError.self) { try BytePairTokenizer(merges: tooMany) }
        do {
            _ = try BytePairTokenizer(merges: tooMany)
        } catch {
            #expect(error.description.contains("\(BytePairTokenizer.maximumMerges + 1) merges"), "\(error)")
        }
    }

    @Test("packing rows of length 0 is refused")
    func zeroLengthRowsAreRefused() async {
        await #expect(processExitsWith: .failure) { _ = PackedRows(documents: [[1, 2, 9]], length: 0) }
    }
}
