// A strict JSON reader for safetensors headers, as strict as the reference reader (Rust's
// serde_json behind Hugging Face's `safetensors`), which Foundation's JSONSerialization is not:
//
//   - RFC 8259 only: no byte-order mark, comments, single quotes, trailing commas, NaN, leading
//     zeros or plus signs; whitespace is space, tab, line feed and carriage return; nothing but
//     whitespace after the value; no unescaped control characters; no lone surrogates;
//   - a number is an integer only when written without fraction or exponent and it fits in 64
//     bits (`-0`, `1.0` and `4e0` are floats, as serde_json reads them);
//   - objects keep their duplicate keys in order, so that the caller can apply the reference's
//     rule (an error inside a tensor entry, the last one wins elsewhere).
//
// The committed cases in Fixtures/safetensors/headers, judged by the reference, hold it to that.

/// A parsed JSON value.
enum StrictJSONValue: Equatable {
    case object([(key: String, value: StrictJSONValue)])
    case array([StrictJSONValue])
    case string(String)
    /// An integer literal that fits in UInt64 (negative ones are `float`, as they are never sizes).
    case integer(UInt64)
    /// Any other number.
    case float(Double)
    case bool(Bool)
    case null

    static func == (a: StrictJSONValue, b: StrictJSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)): return x.map(\.key) == y.map(\.key) && x.map(\.value) == y.map(\.value)
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.integer(let x), .integer(let y)): return x == y
        case (.float(let x), .float(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    /// What kind of value this is, for messages.
    var kind: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .integer: "an integer"
        case .float(let x): "the floating-point number \(x)"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// A JSON text that breaks the grammar: where, and what.
struct StrictJSONError: Error {
    let offset: Int
    let message: String
    var description: String { "\(message) at byte \(offset)" }
}

/// Parses `bytes` (UTF-8) as one JSON value with nothing but whitespace around it.
func parseStrictJSON(_ bytes: [UInt8], maximumDepth: Int = 64) throws(StrictJSONError) -> StrictJSONValue {
    var parser = StrictJSONParser(bytes: bytes, maximumDepth: maximumDepth)
    parser.skipWhitespace()
    let value = try parser.value(depth: 0)
    parser.skipWhitespace()
    guard parser.index == bytes.count else { throw StrictJSONError(offset: parser.index, message: "trailing characters") }
    return value
}

private struct StrictJSONParser {
    let bytes: [UInt8]
    let maximumDepth: Int
    var index = 0

    init(bytes: [UInt8], maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    func fail(_ message: String) -> StrictJSONError { StrictJSONError(offset: index, message: message) }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func expect(_ byte: UInt8) throws(StrictJSONError) {
        guard index < bytes.count, bytes[index] == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    mutating func value(depth: Int) throws(StrictJSONError) -> StrictJSONValue {
        guard depth <= maximumDepth else { throw fail("nested deeper than \(maximumDepth) levels") }
        guard index < bytes.count else { throw fail("expected a value, found the end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("expected a value")
        }
    }

    mutating func literal(_ word: String, _ value: StrictJSONValue) throws(StrictJSONError) -> StrictJSONValue {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else {
            throw fail("expected a value")
        }
        index += expected.count
        return value
    }

    mutating func object(depth: Int) throws(StrictJSONError) -> StrictJSONValue {
        try expect(UInt8(ascii: "{"))
        var members: [(key: String, value: StrictJSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw fail(members.isEmpty ? "key must be a string" : "trailing comma or key not a string")
            }
            let key = try string()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            members.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated object") }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            try expect(UInt8(ascii: ","))
        }
    }

    mutating func array(depth: Int) throws(StrictJSONError) -> StrictJSONValue {
        try expect(UInt8(ascii: "["))
        var elements: [StrictJSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { throw fail("trailing comma") }
            elements.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated array") }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            try expect(UInt8(ascii: ","))
        }
    }

    mutating func hex4() throws(StrictJSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("unexpected end of hex escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("invalid hex escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func string() throws(StrictJSONError) -> String {
        try expect(UInt8(ascii: "\""))
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []  // UTF-8 bytes since the last escape
        func flush() throws(StrictJSONError) {
            guard !raw.isEmpty else { return }
            guard let text = String(validating: raw, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
            scalars.append(contentsOf: text.unicodeScalars)
            raw.removeAll(keepingCapacity: true)
        }
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                try flush()
                return String(scalars)
            case 0x00..<0x20:
                throw fail("control character in a string")
            case UInt8(ascii: "\\"):
                try flush()
                guard index < bytes.count else { throw fail("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("unexpected end of hex escape (lone surrogate)")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw fail("lone surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid unicode escape") }
                    scalars.append(scalar)
                default:
                    throw fail("invalid escape")
                }
            default:
                raw.append(byte)
            }
        }
    }

    mutating func number() throws(StrictJSONError) -> StrictJSONValue {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        func digits() -> Int {
            let first = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - first
        }
        let integerStart = index
        let integerDigits = digits()
        guard integerDigits > 0 else { throw fail("invalid number") }
        if integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0") { throw fail("invalid number (leading zero)") }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw fail("invalid number") }
            isInteger = false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw fail("invalid number") }
            isInteger = false
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger && !negative, let value = UInt64(text) { return .integer(value) }
        guard let value = Double(text) else { throw fail("invalid number") }
        return .float(value)
    }
}
