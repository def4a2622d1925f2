// The "Follow one token" article, run: every `glam trace` command it shows runs (against a briefly
// trained checkpoint standing in for runs/small), the fixed lines of its excerpts are what the
// command prints, and its JSON table names every key `--json` writes.

import Foundation
import Testing

@testable import GLaMCLI

struct FollowOneTokenTests {
    static let article = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/GLaM/GLaM.docc/FollowOneToken.md")

    /// Splits a shell command line into words (double quotes group, as the article's commands use).
    static func words(_ line: String) -> [String] {
        var words: [String] = [], current = "", quoted = false, started = false
        for character in line {
            if character == "\"" {
                quoted.toggle()
                started = true
            } else if character == " " && !quoted {
                if started { words.append(current) }
                (current, started) = ("", false)
            } else {
                current.append(character)
                started = true
            }
        }
        if started { words.append(current) }
        return words
    }

    @Test("every glam trace command of the article runs, and its excerpts' fixed lines are printed as shown")
    func articleCommandsRun() throws {
        let text = try String(contentsOf: Self.article, encoding: .utf8)
        let commands = text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(".build/release/glam trace ") }
        #expect(commands.count >= 2)
        let scratch = ScratchDirectory()
        let checkpoint = scratch.url.appendingPathComponent("checkpoint.safetensors")
        let trainer = try tinyTrainer(steps: 1)
        _ = try trainer.trainStep()
        try trainer.checkpoint.write(to: checkpoint)
        var printed = ""
        for command in commands {
            let arguments = Array(
                Self.words(command.replacingOccurrences(of: "runs/small/checkpoint.safetensors", with: checkpoint.path)).dropFirst())
            let result = runGlam(arguments)
            #expect(result.status == 0, "\(command): \(result.err)")
            printed += result.out
        }
        // Lines of the excerpts that do not depend on the model's numbers: the table headers.
        let fixed = text.split(separator: "\n").filter { $0.hasPrefix("  pos token ") }
        #expect(!fixed.isEmpty)
        for line in fixed { #expect(printed.contains(line), "not printed any more: \(line)") }
        #expect(printed.contains("attention of position 1 \" hacker\": each head's strongest keys"))
        // The example where capacity binds (a fresh model, seed 0): C = 28 and position 13's second choice dropped.
        #expect(printed.contains("G = 1, S = 55, E = 4, capacity C = 28"))
        #expect(printed.split(separator: "\n").contains { $0.hasPrefix("  13  \"h\"") && $0.contains("28/28 DROPPED") })
    }

    @Test("the article's JSON table names every key glam trace --json writes")
    func articleNamesEveryJSONKey() throws {
        let text = try String(contentsOf: Self.article, encoding: .utf8)
        let result = runGlam(["trace", "--json", "--prompt", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "--mesh", "2x1"])
        #expect(result.status == 0, "\(result.err)")
        var keys = Set<String>()
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                for (key, inner) in object {
                    keys.insert(key)
                    collect(inner)
                }
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(try JSONSerialization.jsonObject(with: Data(result.out.utf8)))
        #expect(keys.contains("filled_by") && keys.contains("cores"))
        for key in keys { #expect(text.contains("`\(key)`"), "the article does not document \(key)") }
    }
}
