// From a text corpus to training batches: documents, a held-out validation split, packing into
// fixed-length rows with segment ids, and a deterministic shuffled stream.
//
// - Documents are the corpus's paragraphs (separated by blank lines). Every 20th document (index
//   19, 39, …) is held out for validation, so both splits sample the whole text.
// - Each document becomes ids + [end of text]; its (input, target) pairs are the consecutive ids.
//   Pairs are packed into rows of T positions; each document piece in a row gets its own segment id
//   (1, 2, … within the row), a document that does not fit continues in the next row as a new
//   segment, and the end of the last row is padding (segment 0, padding 1). As in GLaM, attention
//   never crosses segments, and relative positions count from the row start.
// - Batch k of epoch e uses rows permutation_e[k·B ..< (k+1)·B], with permutation_e drawn from
//   (seed, e): any step's batch depends only on the seed and the step number, which is what makes
//   resumed training bitwise identical.

/// Packed rows of (input, target) pairs.
public struct PackedRows: Sendable, Equatable {
    /// T, positions per row.
    public let length: Int
    /// Input ids `[rows · T]`.
    public var tokens: [Int] = []
    /// Target ids `[rows · T]` (0 at padding).
    public var targets: [Int] = []
    /// Segment ids `[rows · T]` (0 = padding).
    public var segments: [Int] = []

    /// The number of rows.
    public var count: Int { tokens.count / length }

    /// Packs documents (each a list of ids ending with end-of-text) into rows of `length`.
    public init(documents: [[Int]], length: Int) {
        precondition(length >= 1, "PackedRows: length must be at least 1")
        self.length = length
        var column = 0, segment = 0
        for document in documents where document.count >= 2 {
            var start = 0  // index of the next input in `document`
            while start < document.count - 1 {
                if column == length { column = 0 }
                if column == 0 { segment = 0 }
                segment += 1
                let take = min(length - column, document.count - 1 - start)
                tokens += document[start..<(start + take)]
                targets += document[(start + 1)..<(start + take + 1)]
                segments += [Int](repeating: segment, count: take)
                column += take
                start += take
            }
        }
        let padding = (length - tokens.count % length) % length
        tokens += [Int](repeating: 0, count: padding)
        targets += [Int](repeating: 0, count: padding)
        segments += [Int](repeating: 0, count: padding)
    }

    /// The batch of the given rows.
    public func batch(rows: [Int]) -> TokenBatch {
        var tokens: [Int] = [], targets: [Int] = [], segments: [Int] = []
        for row in rows {
            let range = (row * length)..<((row + 1) * length)
            tokens += self.tokens[range]
            targets += self.targets[range]
            segments += self.segments[range]
        }
        return TokenBatch(
            batchSize: rows.count, length: length, tokens: tokens, targets: targets, paddings: segments.map { $0 == 0 ? 1 : 0 },
            segmentIDs: segments)
    }
}

/// A corpus split into training and validation rows for one tokenizer and row length.
public struct TextDataset: Sendable {
    /// Training rows.
    public let training: PackedRows
    /// Held-out validation rows.
    public let validation: PackedRows
    /// CRC-32 of the row length and every training and validation row's tokens and segment ids, as
    /// 8 hex digits: what a training checkpoint records of its data, so that a resumed run refuses
    /// another corpus (or the same one edited), which would silently continue on different data.
    public let fingerprint: String

    /// The corpus's documents: paragraphs separated by blank lines, without empty ones.
    public static func documents(of text: String) -> [String] {
        var documents: [String] = []
        var current: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.allSatisfy(\.isWhitespace) {
                if !current.isEmpty { documents.append(current.joined(separator: "\n")) }
                current = []
            } else {
                current.append(line)
            }
        }
        if !current.isEmpty { documents.append(current.joined(separator: "\n")) }
        return documents
    }

    /// Whether document `index` is held out for validation (every 20th).
    public static func isValidation(_ index: Int) -> Bool { index % 20 == 19 }

    /// The text of the training split (what the tokenizer is trained on).
    public static func trainingText(of text: String) -> String {
        documents(of: text).enumerated().filter { !isValidation($0.offset) }.map(\.element).joined(separator: "\n\n")
    }

    /// Tokenizes and packs `text` into rows of `length`: its documents (paragraphs) encoded by
    /// `tokenizer`, as ``init(tokenDocuments:endOfText:length:)`` packs them.
    public init(text: String, tokenizer: BytePairTokenizer, length: Int) {
        self.init(tokenDocuments: Self.documents(of: text).map { tokenizer.encode($0) }, endOfText: tokenizer.endOfText, length: length)
    }

    /// Packs documents of token ids (from any tokenizer, or ids of your own) into rows of `length`:
    /// each document followed by `endOfText`, every 20th document (`isValidation`) held out for
    /// validation, as for text. `Trainer` checks that every id fits the model's vocabulary.
    public init<Documents: Sequence>(tokenDocuments documents: Documents, endOfText: Int, length: Int)
    where Documents.Element: Sequence, Documents.Element.Element == Int {
        var training: [[Int]] = [], validation: [[Int]] = []
        for (index, document) in documents.enumerated() {
            let ids = Array(document) + [endOfText]
            if Self.isValidation(index) { validation.append(ids) } else { training.append(ids) }
        }
        self.training = PackedRows(documents: training, length: length)
        self.validation = PackedRows(documents: validation, length: length)
        var crc = CRC32()
        crc.update(Array("\(length)|".utf8))
        for rows in [self.training, self.validation] {
            for values in [rows.tokens, rows.segments] {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(4 * values.count + 1)
                for value in values {
                    let word = UInt32(truncatingIfNeeded: value)  // little-endian
                    bytes += [UInt8(word & 0xFF), UInt8(word >> 8 & 0xFF), UInt8(word >> 16 & 0xFF), UInt8(word >> 24)]
                }
                bytes.append(0x7C)
                crc.update(bytes)
            }
        }
        fingerprint = String(format: "%08x", crc.value)
    }

    /// Rows of training batch `step` (0-based): epoch `step / batchesPerEpoch`, shuffled by (seed, epoch).
    public static func rows(step: Int, batchSize: Int, rowCount: Int, seed: UInt64) -> [Int] {
        precondition(rowCount >= batchSize && batchSize >= 1, "TextDataset: \(rowCount) rows cannot fill a batch of \(batchSize)")
        let batchesPerEpoch = rowCount / batchSize
        let epoch = step / batchesPerEpoch, index = step % batchesPerEpoch
        var generator = SeededGenerator(seed: CounterRandom.bits(seed: seed, stream: 0xDA7A, index: UInt64(epoch)))
        var permutation = Array(0..<rowCount)
        for i in stride(from: rowCount - 1, to: 0, by: -1) {  // Fisher–Yates
            let j = Int(generator.next() % UInt64(i + 1))
            permutation.swapAt(i, j)
        }
        return Array(permutation[(index * batchSize)..<((index + 1) * batchSize)])
    }
}
