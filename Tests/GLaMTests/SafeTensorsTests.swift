// The safetensors reader and writer: a file written by Hugging Face's `safetensors` package,
// round trips, and malformed files, each of which must be refused with a reason, never a crash.

import Foundation
import Testing

@testable import GLaM

/// The repository's `Fixtures` folder (tests run from any working directory).
let fixturesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// Builds safetensors bytes from a header string and a data section.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    let json = Array(header.utf8)
    var out = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
    out.append(contentsOf: json)
    out.append(contentsOf: data)
    return out
}

/// Parses `bytes`, expecting an error whose reason contains `fragment`.
func expectRejected(_ bytes: Data, containing fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try SafeTensorsFile(bytes: bytes, name: "bad.safetensors")
        Issue.record("accepted a malformed file (expected: \(fragment))", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "bad.safetensors", sourceLocation: sourceLocation)
        #expect(error.reason.contains(fragment), "reason was: \(error.reason)", sourceLocation: sourceLocation)
    }
}

struct SafeTensorsTests {
    @Test("reads a file written by Hugging Face's safetensors (F32, F64, I32, I64, BF16, rank 0, empty)")
    func readsReferenceFile() throws {
        let file = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent("safetensors/reference.safetensors"))
        #expect(file.metadata == ["format": "reference", "note": "written by safetensors.numpy"])
        #expect(Set(file.tensors.keys) == ["f32", "f64", "i32", "i64", "bf16", "scalar", "empty"])
        let f32 = try #require(file.tensors["f32"])
        #expect(f32.dtype == .float32 && f32.floatTensor() == Tensor(shape: [2, 3], scalars: [0, 0.5, 1, 1.5, 2, 2.5]))
        #expect(file.tensors["f64"]?.floatTensor() == Tensor([1, 1.25, 1.5]))
        #expect(file.tensors["i32"]?.integers() == [-2, -1, 0, 1])
        #expect(file.tensors["i32"]?.shape == [2, 2])
        #expect(file.tensors["i64"]?.integers() == [0, 1_000_000_007, 2_000_000_014, 3_000_000_021])
        #expect(file.tensors["bf16"]?.floatTensor() == Tensor([1.5, -2]))
        #expect(file.tensors["scalar"]?.floatTensor() == Tensor(3.25))
        #expect(file.tensors["empty"]?.shape == [0, 4])
        #expect(file.tensors["f32"]?.integers() == nil)
    }

    @Test("the smallest files: a 2-byte header `{}` holds nothing and is read; a 1-byte or empty header is refused")
    func smallestHeaders() throws {
        func file(_ header: String) -> Data {
            var bytes = Data((0..<8).map { UInt8(truncatingIfNeeded: UInt64(header.utf8.count) >> (8 * UInt64($0))) })
            bytes.append(contentsOf: Array(header.utf8))
            return bytes
        }
        let empty = try SafeTensorsFile(bytes: file("{}"), name: "empty")
        #expect(empty.tensors.isEmpty && empty.metadata.isEmpty)
        let spaced = try SafeTensorsFile(bytes: file("{}      "), name: "padded")  // the writer pads with spaces to 8 bytes
        #expect(spaced.tensors.isEmpty)
        for header in ["{", " ", ""] {
            #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(bytes: file(header), name: "short") }
        }
    }

    @Test("write then read returns the same tensors and metadata")
    func roundTrip() throws {
        let original = SafeTensorsFile(
            tensors: [
                "weights": SafeTensor(Tensor(shape: [3, 2], scalars: [1, -2, 3.5, .infinity, 0, -0])),
                "tokens": SafeTensor(int32: [7, -1, Int32.max], shape: [3]),
                "scalar": SafeTensor(Tensor(0.125)),
            ],
            metadata: ["config": #"{"a": 1, "path": "x/y"}"#, "format": "glam-fixture"])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("glam-roundtrip-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try original.write(to: url)
        let read = try SafeTensorsFile(contentsOf: url)
        #expect(read == original)
        // The header is padded to a multiple of 8 bytes, as the format recommends.
        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
    }

    @Test("malformed files are refused with a reason naming the problem")
    func malformed() {
        let good = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect((try? SafeTensorsFile(bytes: safetensorsBytes(header: good, data: [UInt8](repeating: 0, count: 8)), name: "x")) != nil)
        expectRejected(Data([1, 2, 3]), containing: "shorter than the 8-byte header length")
        expectRejected(
            safetensorsBytes(header: good, data: [UInt8](repeating: 0, count: 8), declaredLength: 1 << 40), containing: "runs past the end")
        expectRejected(safetensorsBytes(header: "{\"t\": [", data: []), containing: "not valid JSON")
        expectRejected(safetensorsBytes(header: "[1, 2]"), containing: "not a JSON object")
        expectRejected(safetensorsBytes(header: good, data: [0, 0, 0, 0]), containing: "outside the 4 data bytes")
        expectRejected(
            safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "needs 12 bytes but data_offsets span 8")
        expectRejected(
            safetensorsBytes(header: #"{"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "unknown or unsupported dtype \"Q4\"")
        expectRejected(
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: [UInt8](repeating: 0, count: 12)),
            containing: "overlaps")
        expectRejected(
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "gap in the data")
        expectRejected(
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "trailing data bytes")
        expectRejected(
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 4)),
            containing: "no valid shape")
        expectRejected(
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 4)),
            containing: "no valid shape")
        expectRejected(
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: [UInt8](repeating: 0, count: 4)),
            containing: "no valid data_offsets")
        expectRejected(
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#,
                data: [UInt8](repeating: 0, count: 4)),
            containing: "too large to address")
        expectRejected(
            safetensorsBytes(header: #"{"__metadata__":{"k":1}}"#), containing: "__metadata__ value of \"k\" is an integer, not a string")
        var notUTF8 = Data()
        withUnsafeBytes(of: UInt64(4).littleEndian) { notUTF8.append(contentsOf: $0) }
        notUTF8.append(contentsOf: [0x7B, 0xFF, 0xFE, 0x7D])
        expectRejected(notUTF8, containing: "not valid UTF-8")
    }

    @Test("every truncation of a valid file is refused, never a crash")
    func everyTruncation() throws {
        let bytes = try Data(contentsOf: fixturesDirectory.appendingPathComponent("safetensors/reference.safetensors"))
        for length in 0..<bytes.count {
            #expect(throws: SafeTensorsError.self, "prefix of \(length) bytes") {
                try SafeTensorsFile(bytes: bytes.prefix(length), name: "truncated")
            }
        }
    }

    @Test("every single-byte corruption of a header gets the reference reader's verdict and, when accepted, its numbers")
    func corruptedHeaderBytes() throws {
        let folder = fixturesDirectory.appendingPathComponent("safetensors/headers")
        let base = try Data(contentsOf: folder.appendingPathComponent("corruption_base.case"))
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("corruptions.json"))) as? [String: Any])
        let cases = try #require(manifest["cases"] as? [[String: Any]])
        #expect(cases.count > 900)
        let dtypes = ["float32": SafeTensorsDType.float32, "int32": .int32, "float64": .float64]
        for verdict in cases {
            let position = try #require(verdict["position"] as? Int), byte = try #require(verdict["byte"] as? Int)
            var corrupted = base
            corrupted[position] = UInt8(byte)
            let label = "byte \(byte) at \(position)"
            switch Result(catching: { () throws(SafeTensorsError) in try SafeTensorsFile(bytes: corrupted, name: "corrupted") }) {
            case .failure(let error):
                #expect(verdict["accepted"] as? Bool == false, "\(label): rejected here (\(error.reason)), accepted by the reference")
                #expect(error.file == "corrupted" && !error.reason.isEmpty)
            case .success(let file):
                #expect(
                    verdict["accepted"] as? Bool == true,
                    "\(label): accepted here, rejected by the reference (\(verdict["reference_error"] ?? ""))")
                guard verdict["accepted"] as? Bool == true else { continue }
                #expect(file.metadata == (verdict["metadata"] as? [String: String]), "\(label)")
                let expected = try #require(verdict["tensors"] as? [String: [String: Any]])
                #expect(Set(file.tensors.keys) == Set(expected.keys), "\(label)")
                for (name, tensor) in expected {
                    let read = try #require(file.tensors[name], "\(label): \(name)")
                    #expect(read.dtype == dtypes[tensor["dtype"] as? String ?? ""], "\(label): \(name)")
                    #expect(read.shape == (tensor["shape"] as? [Int]), "\(label): \(name)")
                    #expect(read.floatTensor().scalars.map(Double.init) == (tensor["values"] as? [Double]), "\(label): \(name)")
                }
            }
        }
    }

    @Test("every byte class of a JSON string in a tensor name gets the reference reader's verdict and decoding")
    func stringByteClasses() throws {
        let folder = fixturesDirectory.appendingPathComponent("safetensors/headers")
        let manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("strings.json"))) as? [String: Any])
        let cases = try #require(manifest["cases"] as? [[String: Any]])
        #expect(cases.count > 500)
        for verdict in cases {
            let hex = try #require(verdict["name"] as? String)
            let name = stride(from: 0, to: hex.count, by: 2).map { offset -> UInt8 in
                let start = hex.index(hex.startIndex, offsetBy: offset)
                return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
            }
            let header = Array("{\"".utf8) + name + Array("\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".utf8)
            var bytes = Data()
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: header)
            bytes.append(contentsOf: [0, 0, 0xC0, 0x3F])  // 1.5
            let accepted = try #require(verdict["accepted"] as? Bool)
            switch Result(catching: { () throws(SafeTensorsError) in try SafeTensorsFile(bytes: bytes, name: "names") }) {
            case .failure(let error):
                #expect(!accepted, "name bytes \(hex): rejected here (\(error.reason)), accepted by the reference")
            case .success(let file):
                #expect(accepted, "name bytes \(hex): accepted here, rejected by the reference (\(verdict["reference_error"] ?? ""))")
                if accepted {
                    #expect(Array(file.tensors.keys) == [try #require(verdict["decoded"] as? String)], "name bytes \(hex)")
                }
            }
        }
    }

    @Test("a tensor's bytes must be its shape's size times the dtype's; zero dimensions are allowed, negative ones are not")
    func tensorShapeAndBytes() throws {
        #expect(try SafeTensor(dtype: .float32, shape: [0, 4], bytes: []).scalarCount == 0)
        #expect(try SafeTensor(dtype: .float32, shape: [], bytes: [0, 0, 0xC0, 0x3F]).floatTensor().scalars == [1.5])
        #expect(try SafeTensor(dtype: .float64, shape: [2, 3], bytes: [UInt8](repeating: 0, count: 48)).shape == [2, 3])
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .float64, shape: [2, 3], bytes: [UInt8](repeating: 0, count: 47)) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .float32, shape: [-1], bytes: []) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .int64, shape: [1 << 31, 1 << 31], bytes: []) }
    }

    @Test("an unreadable path is an error naming the file")
    func missingFile() {
        do {
            _ = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/model.safetensors"))
            Issue.record("read a file that does not exist")
        } catch {
            #expect(error.file == "/nonexistent/model.safetensors")
            #expect(error.reason.contains("cannot read"))
        }
    }
}

extension SafeTensorsTests {
    @Test("a tensor with a zero extent is valid and empty; a negative extent or a byte count off its shape is refused")
    func zeroExtents() throws {
        let empty = try SafeTensor(dtype: .float32, shape: [0, 3], bytes: [])
        #expect(empty.scalarCount == 0 && empty.floatTensor().shape == [0, 3] && empty.floatTensor().scalars.isEmpty)
        #expect(throws: SafeTensorsError.self) { _ = try SafeTensor(dtype: .float32, shape: [-1, 3], bytes: []) }
        #expect(throws: SafeTensorsError.self) {
            _ = try SafeTensor(dtype: .float32, shape: [1, 3], bytes: [UInt8](repeating: 0, count: 8))
        }
        let file = try SafeTensorsFile(
            bytes: safetensorsBytes(header: #"{"e":{"dtype":"F32","shape":[4,0],"data_offsets":[0,0]}}"#), name: "empty.safetensors")
        #expect(file.tensors["e"]?.shape == [4, 0] && file.tensors["e"]?.scalarCount == 0)
    }

    @Test("a shape too large for its data is reported with the exact bytes it needs, up to the largest addressable count")
    func exactByteCountOfOversizedShapes() {
        let limit = Int.max / 8  // the largest element count whose bytes (8 per F64) still fit in Int
        expectRejected(
            safetensorsBytes(
                header: #"{"t":{"dtype":"F64","shape":[\#(limit)],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "needs \(limit * 8) bytes but data_offsets span 8")
        expectRejected(
            safetensorsBytes(
                header: #"{"t":{"dtype":"F64","shape":[\#(limit / 3),3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
            containing: "needs \(limit / 3 * 3 * 8) bytes")
        for shape in ["[\(limit + 1)]", "[3,\(limit / 2)]", "[\(Int.max)]"] {
            expectRejected(
                safetensorsBytes(
                    header: #"{"t":{"dtype":"F64","shape":\#(shape),"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                containing: "too large to address")
        }
    }
}

extension SafeTensorsTests {
    @Test("\\u escapes: a surrogate pair is one scalar; a lone high or low surrogate is refused, at each end of its range")
    func surrogateEscapes() throws {
        func parsed(_ text: String) -> StrictJSONValue? { try? parseStrictJSON(Array(text.utf8)) }
        #expect(parsed(#""\uD800\uDC00""#) == .string("\u{10000}"))
        #expect(parsed(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
        #expect(parsed(#""\uD7FF\uE000""#) == .string("\u{D7FF}\u{E000}"))
        for lone in [#""\uD800""#, #""\uDBFF""#, #""\uDC00""#, #""\uDFFF""#, #""\uDC00\uD800""#, #""\uD800x""#, #""\uD800\u0041""#] {
            #expect(parsed(lone) == nil, "\(lone) was accepted")
            // ... and the message says why.
            do {
                _ = try parseStrictJSON(Array(lone.utf8))
            } catch {
                #expect("\(error)".contains("lone surrogate"), "\(lone): \(error)")
            }
        }
    }

    @Test(
        "a surrogate pair cut short is refused where it stops: in hex digits at their first byte, after a high surrogate at the byte after it"
    )
    func surrogatePairCutShort() {
        let text = Array(#""\uD800\uDC00""#.utf8)  // 14 bytes; the escapes' digits start at bytes 3 and 9
        for count in 3..<13 {
            let expected: (offset: Int, message: String) =
                switch count {
                case 3...6: (3, "unexpected end of hex escape")  // "\uD8…: the first escape's digits
                case 7, 8: (7, "unexpected end of hex escape (lone surrogate)")  // no "\u" after the high surrogate
                default: (9, "unexpected end of hex escape")  // "\uD800\u…: the second escape's digits
                }
            do {
                _ = try parseStrictJSON(Array(text.prefix(count)))
                Issue.record("\(count) bytes were accepted")
            } catch {
                #expect(error.offset == expected.offset && error.message == expected.message, "\(count) bytes: \(error)")
            }
        }
    }

    @Test("every prefix of a valid document is refused with an error inside it (or is a document itself), never read past its end")
    func everyPrefixRefused() {
        let documents = [
            #"{"a": [1, -2.5e3, true, false, null, "x\u00e9\"y"], "b": {"c": {}}, "d": []}"#,
            #"{"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"k":"v"}}"#,
            #"[[[]], {"": 0}, "\uD83D\uDE00", 1E+2, 0.5]"#,
        ]
        for document in documents {
            let bytes = Array(document.utf8)
            #expect((try? parseStrictJSON(bytes)) != nil, "\(document)")
            for count in 0..<bytes.count {
                let prefix = Array(bytes.prefix(count))
                do {
                    _ = try parseStrictJSON(prefix)
                    // Only a whole value can be a prefix that parses (a number cut short is still a number).
                    #expect(count > 0, "the empty text was accepted")
                } catch {
                    #expect(error.offset <= count, "\(count) bytes of \(document): \(error)")
                }
            }
        }
    }

    @Test("a trailing comma in an array or an object is refused, and the message says so")
    func trailingCommas() throws {
        for text in ["[1,]", "[1, 2 ,\n]", "[[],]", #"{"a": 1,}"#, #"{"a": [1,],"b": 2}"#] {
            do {
                _ = try parseStrictJSON(Array(text.utf8))
                Issue.record("\(text) was accepted")
            } catch {
                #expect("\(error)".contains("trailing comma"), "\(text): \(error)")
            }
        }
        #expect(try parseStrictJSON(Array("[]".utf8)) == .array([]) && parseStrictJSON(Array("[ ]".utf8)) == .array([]))
    }

    @Test("whitespace (space, tab, line feed, carriage return) may stand between any two tokens, and nowhere else changes a value")
    func whitespaceBetweenTokens() throws {
        let compact = #"{"a":[1,{"b":null},[]],"c":{},"d":"x y","e":true}"#
        let expected = try parseStrictJSON(Array(compact.utf8))
        // The compact text with a run of whitespace inserted at every boundary between tokens.
        let tokens = [
            "{", #""a""#, ":", "[", "1", ",", "{", #""b""#, ":", "null", "}", ",", "[", "]", "]", ",", #""c""#, ":", "{", "}", ",",
            #""d""#, ":", #""x y""#, ",", #""e""#, ":", "true", "}",
        ]
        #expect(tokens.joined() == compact)
        for gap in [" ", "\t", "\n", "\r\n", " \t\n\r "] {
            for boundary in 0...tokens.count {
                var spaced = tokens
                spaced.insert(gap, at: boundary)
                let text = spaced.joined()
                #expect(
                    (try? parseStrictJSON(Array(text.utf8))) == expected, "whitespace at boundary \(boundary) of \(text.debugDescription)")
            }
            let everywhere = gap + tokens.joined(separator: gap) + gap
            #expect((try? parseStrictJSON(Array(everywhere.utf8))) == expected, "\(everywhere.debugDescription)")
        }
        // Other characters are not whitespace: a form feed or a no-break space between tokens is refused.
        for other in ["\u{0C}", "\u{A0}", "\u{0B}"] {
            #expect((try? parseStrictJSON(Array(("[1," + other + "2]").utf8))) == nil, "\(other.unicodeScalars.first!.value) accepted")
        }
    }

    @Test("a JSON value may end the text: numbers, literals and strings at the very end are read, never read past")
    func valuesAtTheEnd() throws {
        func parsed(_ text: String) -> StrictJSONValue? { try? parseStrictJSON(Array(text.utf8)) }
        #expect(parsed("12") == .integer(12))
        #expect(
            parsed("1.5") == .float(1.5) && parsed("-2") == .float(-2) && parsed("1e3") == .float(1000) && parsed("2E-1") == .float(0.2))
        #expect(parsed("true") == .bool(true) && parsed("null") == .null && parsed(#""x""#) == .string("x"))
        for truncated in ["1.", "1e", "1e+", "-", "tru", #""x"#, "[1", #"{"a":"#] {
            #expect(parsed(truncated) == nil, "\(truncated) was accepted")
        }
    }

    @Test("nesting: a value maximumDepth levels below the top is read, one level deeper is refused")
    func nestingDepth() {
        for maximum in [1, 3, 64] {
            let deepest = String(repeating: "[", count: maximum) + "1" + String(repeating: "]", count: maximum)
            let deeper = "[" + deepest + "]"
            #expect((try? parseStrictJSON(Array(deepest.utf8), maximumDepth: maximum)) != nil, "depth \(maximum) refused")
            #expect((try? parseStrictJSON(Array(deeper.utf8), maximumDepth: maximum)) == nil, "depth \(maximum + 1) accepted")
        }
    }
}
