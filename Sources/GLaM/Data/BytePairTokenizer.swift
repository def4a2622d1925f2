// A byte-level byte-pair-encoding tokenizer (Sennrich et al. 2016; byte-level as GPT-2): ids 0–255
// are the bytes, each merge adds one id for a pair of existing ids, and one last id marks the end
// of a text. GLaM used a 256K SentencePiece model; a small BPE trained on the bundled corpus
// stands in for it here.
//
// Text is first split into chunks (an optional single space followed by a run of letters, or of
// digits, or of other symbols; runs of other whitespace stand alone) and merges never cross a
// chunk. Training repeatedly merges the most frequent adjacent pair, ties broken by the smaller
// (left, right) id pair, so the same text always gives the same merges. Any text round-trips.

import Foundation

/// A byte-level BPE tokenizer.
public struct BytePairTokenizer: Sendable, Equatable {
    /// The merges in order: merge k joins `merges[k].0` and `merges[k].1` into id `256 + k`.
    public let merges: [Merge]
    /// Bytes spelled by each id (built from the merges).
    private let spellings: [[UInt8]]
    /// The rank of each merge by its pair key.
    private let ranks: [UInt64: Int]

    /// One merge: two ids joined into a new one.
    public struct Merge: Sendable, Equatable, Hashable {
        /// The left id.
        public let left: Int
        /// The right id.
        public let right: Int
        /// A merge of `left` and `right`.
        public init(_ left: Int, _ right: Int) {
            self.left = left
            self.right = right
        }
        var key: UInt64 { UInt64(left) << 32 | UInt64(right) }
    }

    /// The most merges a tokenizer may have (4M ids, beyond any model's vocabulary limit).
    public static let maximumMerges = 1 << 22
    /// The longest spelling a token may have, in bytes. Byte-pair merges inside the text's chunks
    /// (words, runs of spaces) never come near it; merges that join a token with itself double its
    /// spelling each time and would otherwise exhaust memory from a small file.
    public static let maximumSpellingLength = 4096

    /// A tokenizer from merges (each must join ids that exist before it).
    ///
    /// - Throws: `ModelError` for a merge of ids that do not exist yet, more than `maximumMerges`
    ///   merges, or a token spelled by more than `maximumSpellingLength` bytes.
    public init(merges: [Merge]) throws(ModelError) {
        guard merges.count <= Self.maximumMerges else {
            throw ModelError("tokenizer has \(merges.count) merges, more than the supported \(Self.maximumMerges)")
        }
        var spellings = (0..<256).map { [UInt8($0)] }
        var ranks: [UInt64: Int] = [:]
        for (k, merge) in merges.enumerated() {
            guard merge.left >= 0, merge.right >= 0, merge.left < 256 + k, merge.right < 256 + k else {
                throw ModelError("tokenizer merge \(k) joins \(merge.left) and \(merge.right), ids that do not exist before it")
            }
            guard spellings[merge.left].count + spellings[merge.right].count <= Self.maximumSpellingLength else {
                throw ModelError(
                    "tokenizer merge \(k) would spell a token with \(spellings[merge.left].count + spellings[merge.right].count) bytes, more than the supported \(Self.maximumSpellingLength)"
                )
            }
            spellings.append(spellings[merge.left] + spellings[merge.right])
            ranks[merge.key] = k
        }
        self.merges = merges
        self.spellings = spellings
        self.ranks = ranks
    }

    /// The number of ids: 256 bytes, one per merge, and the end-of-text id.
    public var vocabularySize: Int { 256 + merges.count + 1 }

    /// The end-of-text id (the last one).
    public var endOfText: Int { 256 + merges.count }

    /// Splits text into the chunks merges stay within (see the file header).
    static func chunks(_ text: String) -> [[UInt8]] {
        enum Kind { case letter, digit, space, other }
        func kind(_ scalar: Unicode.Scalar) -> Kind {
            if scalar.properties.isAlphabetic { return .letter }
            if scalar.properties.numericType != nil { return .digit }
            if scalar.properties.isWhitespace { return .space }
            return .other
        }
        var out: [[UInt8]] = []
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        var index = start
        while index < scalars.endIndex {
            start = index
            var current = kind(scalars[index])
            if scalars[index] == " ", let next = scalars.index(index, offsetBy: 1, limitedBy: scalars.endIndex), next < scalars.endIndex,
                kind(scalars[next]) != .space
            {
                // A single space joins the run that follows it.
                index = next
                current = kind(scalars[index])
            }
            scalars.formIndex(after: &index)
            while index < scalars.endIndex && kind(scalars[index]) == current { scalars.formIndex(after: &index) }
            out.append(Array(Substring(text.unicodeScalars[start..<index]).utf8))  // bytes: no Unicode equivalence
        }
        return out
    }

    /// The most ids a tokenizer trained on `text` can have: 257 plus one merge per byte pair inside
    /// the text's distinct chunks (each merge shortens at least one of them by one). `train` learns
    /// fewer when pairs run out earlier; never more.
    public static func maximumVocabularySize(for text: String) -> Int {
        var distinct = Set<[UInt8]>()
        for chunk in chunks(text) { distinct.insert(chunk) }
        return 257 + distinct.reduce(0) { $0 + max($1.count - 1, 0) }
    }

    /// Learns `vocabularySize − 257` merges from `text` (fewer if the text runs out of pairs).
    public static func train(on text: String, vocabularySize: Int) throws(ModelError) -> BytePairTokenizer {
        guard vocabularySize >= 257 else {
            throw ModelError("vocabulary size must be at least 257 (bytes and end of text), got \(vocabularySize)")
        }
        // Unique chunks with their counts.
        var chunkCounts: [[UInt8]: Int] = [:]
        for chunk in chunks(text) { chunkCounts[chunk, default: 0] += 1 }
        let sortedChunks = chunkCounts.keys.sorted { $0.lexicographicallyPrecedes($1) }
        var words: [[Int32]] = sortedChunks.map { $0.map { Int32($0) } }
        let counts = sortedChunks.map { chunkCounts[$0]! }
        var pairCounts: [UInt64: Int] = [:]
        var occurrences: [UInt64: Set<Int32>] = [:]
        func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        for (w, word) in words.enumerated() where word.count > 1 {
            for i in 0..<(word.count - 1) {
                let k = key(word[i], word[i + 1])
                pairCounts[k, default: 0] += counts[w]
                occurrences[k, default: []].insert(Int32(w))
            }
        }
        var merges: [Merge] = []
        var lengths = [Int](repeating: 1, count: 256)  // bytes spelled by each id
        while merges.count < vocabularySize - 257 {
            // The most frequent pair; ties → the smaller key (left id, then right id). Pairs that
            // would spell more than `maximumSpellingLength` bytes are never merged.
            var best: UInt64 = 0
            var bestCount = 0
            for (k, count) in pairCounts where count > bestCount || (count == bestCount && count > 0 && k < best) {
                guard lengths[Int(k >> 32)] + lengths[Int(k & 0xFFFF_FFFF)] <= maximumSpellingLength else { continue }
                best = k
                bestCount = count
            }
            guard bestCount > 0 else { break }  // nothing left to merge
            let (left, right) = (Int32(best >> 32), Int32(best & 0xFFFF_FFFF))
            let newID = Int32(256 + merges.count)
            merges.append(Merge(Int(left), Int(right)))
            lengths.append(lengths[Int(left)] + lengths[Int(right)])
            for w in (occurrences[best] ?? []).sorted() {
                let word = words[Int(w)]
                guard word.count > 1 else { continue }
                for i in 0..<(word.count - 1) { pairCounts[key(word[i], word[i + 1])]! -= counts[Int(w)] }
                var merged: [Int32] = []
                merged.reserveCapacity(word.count)
                var i = 0
                while i < word.count {
                    if i + 1 < word.count && word[i] == left && word[i + 1] == right {
                        merged.append(newID)
                        i += 2
                    } else {
                        merged.append(word[i])
                        i += 1
                    }
                }
                words[Int(w)] = merged
                if merged.count > 1 {
                    for j in 0..<(merged.count - 1) {
                        let k = key(merged[j], merged[j + 1])
                        pairCounts[k, default: 0] += counts[Int(w)]
                        occurrences[k, default: []].insert(w)
                    }
                }
            }
            pairCounts[best] = nil
            occurrences[best] = nil
        }
        return try BytePairTokenizer(merges: merges)
    }

    /// The ids of `text` (never the end-of-text id).
    public func encode(_ text: String) -> [Int] {
        var cache: [[UInt8]: [Int]] = [:]
        var out: [Int] = []
        for chunk in Self.chunks(text) {
            if let known = cache[chunk] {
                out += known
                continue
            }
            var ids = chunk.map { Int($0) }
            while ids.count > 1 {
                var bestRank = Int.max, bestIndex = -1
                for i in 0..<(ids.count - 1) {
                    if let rank = ranks[Merge(ids[i], ids[i + 1]).key], rank < bestRank {
                        bestRank = rank
                        bestIndex = i
                    }
                }
                guard bestIndex >= 0 else { break }
                let merge = merges[bestRank]
                var merged: [Int] = []
                var i = 0
                while i < ids.count {
                    if i + 1 < ids.count && ids[i] == merge.left && ids[i + 1] == merge.right {
                        merged.append(256 + bestRank)
                        i += 2
                    } else {
                        merged.append(ids[i])
                        i += 1
                    }
                }
                ids = merged
            }
            cache[chunk] = ids
            out += ids
        }
        return out
    }

    /// The text of `ids`; the end-of-text id and unknown ids spell nothing, and byte sequences that
    /// are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < spellings.count { bytes += spellings[id] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// One token's spelling for display: its bytes as text where they form whole UTF-8 characters,
    /// and each byte that does not (part of a character, or invalid) as `<0xHH>`. Byte-level BPE
    /// splits a non-ASCII character over tokens ("é" is C3 A9: `<0xC3>` and `<0xA9>` until a merge
    /// joins them), which ``decode(_:)`` of one id alone would show as U+FFFD. The end-of-text id
    /// and unknown ids spell nothing (""). Where no character is split over tokens, the display
    /// texts joined are ``decode(_:)``'s text.
    public func displayText(of id: Int) -> String {
        guard id >= 0 && id < spellings.count else { return "" }
        let bytes = spellings[id]
        var out = "", start = 0
        while start < bytes.count {
            // The shortest run of 1 to 4 bytes that is one valid UTF-8 character, if any.
            let character = (1...min(4, bytes.count - start)).lazy.compactMap { length in
                String(validating: bytes[start..<(start + length)], as: UTF8.self).map { (text: $0, length: length) }
            }.first
            if let character {
                out += character.text
                start += character.length
            } else {
                out += "<0x" + String(bytes[start], radix: 16, uppercase: true).leftPadded(to: 2) + ">"
                start += 1
            }
        }
        return out
    }

    /// The tokenizer as JSON: `{"format": "glam-bpe", "version": 1, "merges": [[l, r], …]}`.
    public func jsonString() -> String {
        let pairs = merges.map { "[\($0.left),\($0.right)]" }.joined(separator: ",")
        return #"{"format":"glam-bpe","version":1,"merges":[\#(pairs)]}"#
    }

    /// A tokenizer from `jsonString()`'s format.
    public init(json: String) throws(ModelError) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
            object["format"] as? String == "glam-bpe", (object["version"] as? NSNumber)?.intValue == 1,
            let pairs = object["merges"] as? [[Any]]
        else { throw ModelError("not a glam-bpe tokenizer (expected format \"glam-bpe\", version 1, merges)") }
        var merges: [Merge] = []
        for pair in pairs {
            guard pair.count == 2, let l = (pair[0] as? NSNumber)?.intValue, let r = (pair[1] as? NSNumber)?.intValue else {
                throw ModelError("tokenizer merge \(merges.count) is not a pair of integers")
            }
            merges.append(Merge(l, r))
        }
        try self.init(merges: merges)
    }

    /// Two tokenizers are equal when their merges are (everything else derives from them).
    public static func == (a: BytePairTokenizer, b: BytePairTokenizer) -> Bool { a.merges == b.merges }
}

extension String {
    /// The string with "0"s in front up to `width` characters.
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
