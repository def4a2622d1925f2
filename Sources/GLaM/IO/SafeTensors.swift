// The safetensors file format (see the "Checkpoints and parameter names" article), read strictly and written exactly.
//
//   [8 bytes: little-endian UInt64 N][N bytes: UTF-8 JSON header][data]
//   header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …,
//            "__metadata__": {"key": "value", …}}          offsets relative to the start of data
//
// Reading validates everything before touching the data: the header length, the JSON, every
// dtype, shape and offset pair, that the byte size equals shape × dtype size, and that the
// tensors tile the data exactly (no overlap, no gap, nothing past the end), as the reference
// Rust implementation requires. Any violation is a `SafeTensorsError` naming the file and the
// problem. Reads F32, F64, I32, I64 and BF16; writes F32 and I32.

import Foundation

/// The element types of a safetensors tensor that GLaM reads.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case float32 = "F32"
    case float64 = "F64"
    case int32 = "I32"
    case int64 = "I64"
    case bfloat16 = "BF16"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float32, .int32: 4
        case .float64, .int64: 8
        case .bfloat16: 2
        }
    }

    /// Whether the type holds integers.
    public var isInteger: Bool { self == .int32 || self == .int64 }
}

/// A problem with a safetensors file: which file, and what is wrong with it.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    /// The file (or a name for in-memory data).
    public let file: String
    /// What is wrong, in one line.
    public let reason: String

    /// `file: reason`.
    public var description: String { "\(file): \(reason)" }
}

/// One tensor of a safetensors file: its dtype, shape and raw little-endian bytes.
public struct SafeTensor: Sendable, Equatable {
    /// The stored element type.
    public let dtype: SafeTensorsDType
    /// The shape (`[]` is a scalar).
    public let shape: [Int]
    /// `shape.product × dtype.byteCount` little-endian bytes.
    public let bytes: [UInt8]

    /// The number of elements.
    public var scalarCount: Int { shape.reduce(1, *) }

    /// A tensor from raw parts.
    ///
    /// - Throws: `SafeTensorsError` when a dimension is negative, the shape's size overflows, or
    ///   `bytes.count` is not the shape's size times the dtype's.
    public init(dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws(SafeTensorsError) {
        var count = dtype.byteCount
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else {
                throw SafeTensorsError(
                    file: "SafeTensor", reason: "shape \(shape) of \(dtype.rawValue) is negative or too large to address")
            }
            count = product
        }
        guard bytes.count == count else {
            throw SafeTensorsError(
                file: "SafeTensor", reason: "\(bytes.count) bytes do not match \(dtype.rawValue) \(shape) (\(count) bytes)")
        }
        self.init(validated: dtype, shape: shape, bytes: bytes)
    }

    /// A tensor from parts already checked to fit.
    init(validated dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// An F32 tensor holding `tensor`.
    public init(_ tensor: Tensor<Float>) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(tensor.scalarCount * 4)
        for x in tensor.scalars { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        self.init(validated: .float32, shape: tensor.shape, bytes: bytes)  // a Tensor's shape matches its scalars
    }

    /// An I32 tensor holding `values` with the given shape.
    ///
    /// - Precondition: the shape's size is `values.count` (a programming error otherwise).
    public init(int32 values: [Int32], shape: [Int]) {
        var bytes = [UInt8]()
        bytes.reserveCapacity(values.count * 4)
        for x in values { withUnsafeBytes(of: x.littleEndian) { bytes.append(contentsOf: $0) } }
        do {
            try self.init(dtype: .int32, shape: shape, bytes: bytes)
        } catch {
            preconditionFailure("SafeTensor(int32:shape:): \(error.reason)")
        }
    }

    /// The values as a `Float` tensor (F64 rounded, BF16 widened exactly, integers converted).
    public func floatTensor() -> Tensor<Float> {
        let count = scalarCount
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            for i in 0..<count {
                switch dtype {
                case .float32: out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                case .float64:
                    out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
                case .bfloat16:
                    out[i] = Float(
                        bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16)
                case .int32: out[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .int64: out[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// The values as integers, or nil when the dtype is not I32 or I64.
    public func integers() -> [Int]? {
        guard dtype.isInteger else { return nil }
        return bytes.withUnsafeBytes { raw in
            (0..<scalarCount).map { i in
                dtype == .int32
                    ? Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                    : Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
            }
        }
    }
}

/// The contents of a safetensors file: named tensors and string metadata.
public struct SafeTensorsFile: Sendable, Equatable {
    /// The tensors by name.
    public var tensors: [String: SafeTensor]
    /// The `__metadata__` map (empty when absent).
    public var metadata: [String: String]

    /// A file's contents from parts.
    public init(tensors: [String: SafeTensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Reads and validates the file at `url`.
    public init(contentsOf url: URL) throws(SafeTensorsError) {
        let data: Data
        do {
            data = try FileAccess.contents(url)
        } catch {
            throw SafeTensorsError(file: url.path, reason: "cannot read the file (\(error.cause))")
        }
        try self.init(bytes: data, name: url.path)
    }

    /// Parses and validates safetensors bytes; `name` labels errors.
    public init(bytes data: Data, name: String) throws(SafeTensorsError) {
        func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(file: name, reason: reason) }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count - 8) bytes follow it)")
        }
        guard headerLength >= 2 else { throw fail("header length \(headerLength) is too short for a JSON object") }
        guard headerLength <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw fail("header length \(headerLength) exceeds the 100,000,000-byte limit (the reference reader's)")
        }
        let headerStart = data.startIndex + 8
        let dataStart = headerStart + Int(headerLength)
        let headerBytes = [UInt8](data[headerStart..<dataStart])
        guard String(validating: headerBytes, as: UTF8.self) != nil else { throw fail("header is not valid UTF-8") }
        let header: [(key: String, value: StrictJSONValue)]
        do {
            guard case .object(let members) = try parseStrictJSON(headerBytes) else {
                throw fail("header is not a JSON object")
            }
            header = members
        } catch let error as StrictJSONError {
            throw fail("header is not valid JSON: \(error.description)")
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw fail("header is not valid JSON")
        }

        // As the reference: a repeated name (tensor or metadata key) keeps its last value.
        var metadata: [String: String] = [:]
        var rawEntries: [String: StrictJSONValue] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                metadata = [:]
                switch value {
                case .null: break
                case .object(let map):
                    for (name, item) in map {
                        guard case .string(let text) = item else {
                            throw fail("__metadata__ value of \"\(name)\" is \(item.kind), not a string")
                        }
                        metadata[name] = text
                    }
                default: throw fail("__metadata__ is \(value.kind), not a JSON object")
                }
            } else {
                rawEntries[key] = value
            }
        }

        let dataLength = data.count - 8 - Int(headerLength)
        var entries: [(name: String, dtype: SafeTensorsDType, shape: [Int], begin: Int, end: Int)] = []
        for (name, rawEntry) in rawEntries {
            guard case .object(let fields) = rawEntry else { throw fail("entry \"\(name)\" is \(rawEntry.kind), not a JSON object") }
            var entry: [String: StrictJSONValue] = [:]
            for (field, value) in fields {
                guard entry.updateValue(value, forKey: field) == nil else {
                    throw fail("tensor \"\(name)\" has a duplicate field \(field)")
                }
            }
            guard case .string(let dtypeName)? = entry["dtype"] else { throw fail("tensor \"\(name)\" has no dtype string") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("tensor \"\(name)\" has unknown or unsupported dtype \"\(dtypeName)\" (glam reads F32, F64, I32, I64, BF16)")
            }
            guard let shape = SafeTensorsFile.integers(entry["shape"]) else {
                throw fail("tensor \"\(name)\" has no valid shape (an array of non-negative integers)")
            }
            guard let offsets = SafeTensorsFile.integers(entry["data_offsets"]), offsets.count == 2 else {
                throw fail("tensor \"\(name)\" has no valid data_offsets (two non-negative integers)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= dataLength else {
                throw fail("tensor \"\(name)\" has data_offsets [\(begin), \(end)] outside the \(dataLength) data bytes")
            }
            var count = 1
            for dimension in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= Int.max / 8 else { throw fail("tensor \"\(name)\" has a shape \(shape) too large to address") }
                count = product
            }
            guard end - begin == count * dtype.byteCount else {
                throw fail(
                    "tensor \"\(name)\": shape \(shape) of \(dtypeName) needs \(count * dtype.byteCount) bytes but data_offsets span \(end - begin)"
                )
            }
            entries.append((name, dtype, shape, begin, end))
        }
        // The tensors must tile the data exactly: sorted by offset, each starts where the last ended.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var expectedBegin = 0
        for entry in entries {
            if entry.begin < expectedBegin {
                throw fail(
                    "tensor \"\(entry.name)\" overlaps the previous tensor (data_offsets start at \(entry.begin), previous ends at \(expectedBegin))"
                )
            }
            if entry.begin > expectedBegin {
                throw fail("gap in the data before tensor \"\(entry.name)\" (bytes \(expectedBegin)..<\(entry.begin) belong to no tensor)")
            }
            expectedBegin = entry.end
        }
        guard expectedBegin == dataLength else {
            throw fail("\(dataLength - expectedBegin) trailing data bytes belong to no tensor")
        }
        var tensors: [String: SafeTensor] = [:]
        for entry in entries {
            let bytes = [UInt8](data[(dataStart + entry.begin)..<(dataStart + entry.end)])
            tensors[entry.name] = SafeTensor(validated: entry.dtype, shape: entry.shape, bytes: bytes)
        }
        self.init(tensors: tensors, metadata: metadata)
    }

    /// The largest header the reader accepts, as the reference reader (100 MB).
    public static let maximumHeaderLength = 100_000_000

    /// A JSON array of integer literals (no fraction, no exponent, not negative) that fit in `Int`, or nil.
    private static func integers(_ value: StrictJSONValue?) -> [Int]? {
        guard case .array(let elements)? = value else { return nil }
        var out: [Int] = []
        for element in elements {
            guard case .integer(let number) = element, number <= UInt64(Int.max) else { return nil }
            out.append(Int(number))
        }
        return out
    }

    /// The file's bytes: header sorted by name (deterministic), padded with spaces to a multiple of
    /// 8 bytes, then the tensors' data in name order.
    public func serialized() -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let tensor = tensors[name]!
            header[name] =
                ["dtype": tensor.dtype.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.bytes.count]]
                as [String: Any]
            offset += tensor.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { out.append(contentsOf: tensors[name]!.bytes) }
        return out
    }

    /// Writes the file atomically: to a temporary file beside `url`, then renamed over it, so a
    /// crash mid-write never leaves a truncated file at `url`.
    ///
    /// - Parameters:
    ///   - url: the target: absent or a regular file (a device, a FIFO or a directory is refused).
    ///   - inputs: files the caller read, which `url` must not be.
    /// - Throws: `SafeTensorsError` for a tensor named `__metadata__` (the format reserves the name,
    ///   so the file could not be read back), or `ModelError` naming the target and the cause.
    public func write(to url: URL, protecting inputs: [URL] = []) throws {
        if tensors["__metadata__"] != nil {
            throw SafeTensorsError(file: url.path, reason: "a tensor cannot be named __metadata__ (the format reserves that name)")
        }
        try FileAccess.writeAtomically(serialized(), to: url, protecting: inputs)
    }
}
