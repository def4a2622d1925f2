// The `glam` command line: subcommand dispatch and help. Each subcommand lives in its own file.
//
// Exit status (the "The glam command line" article): 0 success, 1 a check failed, 2 bad usage or bad input
// (with a one-line message on stderr naming the problem).

import Foundation
import GLaM

/// One `glam` subcommand.
protocol Subcommand {
    /// The word after `glam`.
    static var name: String { get }
    /// One line for the command list.
    static var summary: String { get }
    /// The full `--help` text.
    static var help: String { get }
    /// Runs with the arguments after the subcommand name; returns the exit status.
    static func run(_ arguments: [String], output: inout Output) throws -> Int32
    /// The `--help` text for these arguments (a subcommand with subcommands of its own, such as
    /// `glam bench`, gives the one named).
    static func help(for arguments: [String]) -> String
}

extension Subcommand {
    static func help(for arguments: [String]) -> String { help }
}

/// Where a command writes: standard output and standard error (captured in tests).
public struct Output {
    /// Receives standard-output text.
    public var standard: (String) -> Void
    /// Receives standard-error text.
    public var error: (String) -> Void

    /// An output that forwards to the two closures.
    public init(standard: @escaping (String) -> Void, error: @escaping (String) -> Void) {
        self.standard = standard
        self.error = error
    }

    /// Writes a line to standard output.
    func line(_ text: String = "") { standard(text + "\n") }
}

/// The `glam` tool.
public enum CommandLineTool {
    static var subcommands: [any Subcommand.Type] {
        [
            TrainCommand.self, GenerateCommand.self, EvalCommand.self, TraceCommand.self, CompareCommand.self, VerifyCommand.self,
            FixtureCommand.self,
            ParamsCommand.self, PlanCommand.self,
            BenchCommand.self,
        ]
    }

    static var overview: String {
        let list = subcommands.map { "  \($0.name.padding(toLength: 10, withPad: " ", startingAt: 0))\($0.summary)" }.joined(
            separator: "\n")
        return """
            glam: GLaM (Du et al. 2021) in Swift: a decoder-only mixture-of-experts language model.

            USAGE: glam <subcommand> [options]

            SUBCOMMANDS:
            \(list)

            Run 'glam <subcommand> --help' for a subcommand's options.
            Exit status: 0 success, 1 a check failed, 2 bad usage or bad input.
            """
    }

    /// Runs `glam` with `arguments` (without the program name) and returns the exit status.
    public static func run(_ arguments: [String], output: Output) -> Int32 {
        var output = output
        guard let first = arguments.first else {
            output.line(overview)
            return 0
        }
        if first == "--help" || first == "-h" || first == "help" {
            output.line(overview)
            return 0
        }
        guard let command = subcommands.first(where: { $0.name == first }) else {
            output.error("glam: unknown subcommand '\(first)' (see 'glam --help')\n")
            return 2
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("--help") || rest.contains("-h") {
            output.line(command.help(for: rest))
            return 0
        }
        // A debug build says so once, before a command whose speed matters (the library's own note,
        // printed by a Trainer, is then not repeated).
        if ["train", "compare", "bench"].contains(command.name), DebugBuildNote.claim() {
            output.error(DebugBuildNote.text)
        }
        do {
            return try command.run(rest, output: &output)
        } catch let error as UsageError {
            output.error("glam: \(error.description)\n")
            return 2
        } catch {
            output.error("glam \(command.name): \(message(error))\n")
            return 2
        }
    }

    /// An error in one line: the library's own errors by their description, Foundation's file
    /// errors by the file and the POSIX cause (never `Error Domain=NSCocoaErrorDomain Code=512 "(null)"`).
    static func message(_ error: any Error) -> String {
        let bridged = error as NSError
        guard bridged.domain == NSCocoaErrorDomain || bridged.domain == NSPOSIXErrorDomain else { return "\(error)" }
        let cause = FileAccess.describe(error)
        guard let path = bridged.userInfo[NSFilePathErrorKey] as? String ?? (bridged.userInfo[NSURLErrorKey] as? URL)?.path else {
            return cause
        }
        return "\(path): \(cause)"
    }
}
