// Every integer option of the command line accepts exactly the range the "The glam command line"
// article's table states: for each row, a value that is not an integer is refused with a message
// naming that range. The table is the users' contract; a range changed in the code and not in the
// table (or the other way round) fails here.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct OptionRangeTests {
    /// The rows of the table: the command's words, the option, the range as printed.
    static func documentedRanges() throws -> [(command: [String], option: String, isList: Bool, range: String)] {
        let article = fixturesDirectory.deletingLastPathComponent().appendingPathComponent("Sources/GLaM/GLaM.docc/CommandLine.md")
        let text = try String(contentsOf: article, encoding: .utf8)
        var rows: [(command: [String], option: String, isList: Bool, range: String)] = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 3, cells[1].hasPrefix("`--"), cells[2].contains("...") else { continue }
            let command = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")).split(separator: " ").map(String.init)
            let option = String(cells[1].split(separator: "`")[0].dropFirst(2))
            rows.append((command, option, cells[1].contains("(list)"), cells[2]))
        }
        return rows
    }

    @Test("each integer option is refused outside the documented range, with a message naming that range")
    func rangesAreTheDocumentedOnes() throws {
        let rows = try Self.documentedRanges()
        #expect(rows.count >= 50)
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        for row in rows {
            // What each command needs before it reads its integer options.
            var base: [String]
            switch row.command[0] {
            case "train": base = ["--corpus", corpus.path, "--output", scratch.path("train-\(row.option)").path]
            case "compare": base = ["--corpus", corpus.path, "--output", scratch.path("compare-\(row.option)").path]
            case "generate": base = ["--checkpoint", scratch.path("none.safetensors").path, "--prompt", "x"]
            case "eval": base = ["--checkpoint", scratch.path("none.safetensors").path]
            case "trace": base = ["--prompt", "x"]
            case "plan": base = ["--config", "tiny", "--mesh", "1x1"]
            case "fixture": base = ["--out", scratch.path("fixture-\(row.option).safetensors").path]
            default: base = []
            }
            let result = runGlam(row.command + base + ["--\(row.option)", "x"])
            let message =
                "--\(row.option) must be \(row.isList ? "a comma-separated list of integers" : "an integer") in \(row.range), got 'x'"
            #expect(
                result.status == 2 && result.err.contains(message), "\(row.command.joined(separator: " ")) --\(row.option): \(result.err)")
        }
    }

    @Test("--mesh DxM takes each axis in 1...64 and at most 64 cores in all, and refuses anything else naming the rule")
    func meshBounds() throws {
        func parse(_ text: String) throws -> DeviceMesh? {
            try Arguments(["--mesh", text], command: "train", options: ["mesh"], flags: []).mesh("mesh")
        }
        for (d, m) in [(1, 1), (64, 1), (1, 64), (8, 8), (2, 32), (32, 2), (3, 21)] {
            let mesh = try #require(try parse("\(d)x\(m)"))
            #expect(mesh.shape == [d, m] && mesh.coreCount == d * m)
        }
        for text in ["0x1", "1x0", "65x1", "1x65", "9x8", "64x2", "2x33", "-1x1", "2x", "x2", "2x2x2", "2"] {
            do {
                let mesh = try parse(text)
                Issue.record("--mesh \(text) was read as \(mesh.map { "\($0.shape)" } ?? "nil")")
            } catch {
                #expect("\(error)".contains("at most 64 cores in all") && "\(error)".contains("'\(text)'"), "\(error)")
            }
        }
    }
}
