// A small command-line argument parser (no packages): `--name value`, `--name=value`, boolean
// `--flag`s and positional arguments. Anything unknown or malformed is a `UsageError`, which the
// tool reports on stderr with exit status 2.

import Foundation
import GLaM

/// Bad usage or bad input: reported as one line on stderr, exit status 2.
public struct UsageError: Error, CustomStringConvertible {
    /// The one-line message.
    public let description: String
    /// A usage error with `message`.
    public init(_ message: String) { description = message }
}

/// Parsed arguments of one subcommand.
struct Arguments {
    private(set) var options: [String: String] = [:]
    private var flags: Set<String> = []
    /// Arguments that are not options, in order.
    private(set) var positionals: [String] = []
    private let command: String

    /// Parses `arguments` for `command`, accepting the named value options and boolean flags.
    init(_ arguments: [String], command: String, options valueOptions: Set<String>, flags booleanFlags: Set<String>) throws(UsageError) {
        self.command = command
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--"), argument.count > 2 else {
                positionals.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String? = nil
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if booleanFlags.contains(name) {
                guard inlineValue == nil else { throw UsageError("\(command): --\(name) takes no value") }
                flags.insert(name)
            } else if valueOptions.contains(name) {
                if let inlineValue {
                    options[name] = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("\(command): --\(name) needs a value") }
                    options[name] = arguments[index]
                    index += 1
                }
            } else {
                throw UsageError("\(command): unknown option --\(name) (see 'glam \(command) --help')")
            }
        }
    }

    /// Whether the boolean flag was given.
    func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// The option's value, if given.
    func value(_ name: String) -> String? { options[name] }

    /// The option's value as an integer within `range`, or nil when absent.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let text = options[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError("\(command): --\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    /// The comma-separated integers of option `name` (each in `range`), or nil when absent.
    func integerList(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> [Int]? {
        guard let text = options[name] else { return nil }
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && range.contains($0!) }) else {
            throw UsageError(
                "\(command): --\(name) must be a comma-separated list of integers in \(range.lowerBound)...\(range.upperBound), got '\(text)'"
            )
        }
        return values.map { $0! }
    }

    /// Like `integerList`, but a value given twice is refused (each value names one run or one
    /// measurement, so a repeat would do the same work twice under one name).
    func distinctIntegerList(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> [Int]? {
        guard let values = try integerList(name, in: range) else { return nil }
        var seen: Set<Int> = []
        for value in values where !seen.insert(value).inserted {
            throw UsageError("\(command): --\(name) lists \(value) twice, got '\(options[name]!)'")
        }
        return values
    }

    /// The mesh of option `name`, `DxM`: D `data` × M `mdl` cores, at most 64 in all; nil when the
    /// option is not given.
    func mesh(_ name: String) throws -> DeviceMesh? {
        guard let text = options[name] else { return nil }
        let parts = text.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let d = parts[0], let m = parts[1], (1...64).contains(d), (1...64).contains(m), d * m <= 64 else {
            throw UsageError(
                "\(command): --\(name) must be DATAxMDL with positive integers and at most 64 cores in all, e.g. 2x2; got '\(text)'")
        }
        return try DeviceMesh(dataCores: d, modelCores: m)
    }

    /// The file named by output option `name`, checked before any work is done: it must not exist
    /// or be a regular file, and must not be one of `inputs` (``FileAccess/checkWritable(_:protecting:)``).
    /// Nil when the option is absent.
    func outputFile(_ name: String, protecting inputs: [URL] = []) throws(UsageError) -> URL? {
        guard let path = options[name] else { return nil }
        let url = URL(fileURLWithPath: path)
        do {
            try FileAccess.checkWritable(url, protecting: inputs)
        } catch {
            throw UsageError("\(command): --\(name): \(error)")
        }
        return url
    }
}
