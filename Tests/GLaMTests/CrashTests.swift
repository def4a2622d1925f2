// The short version of Scripts/crash/kill_test.py: the real `glam` binary is killed with SIGKILL
// while it trains with a checkpoint after every step, resumed each time, and its logged losses
// must equal an uninterrupted run's, each step once, with no temporary file left behind.

import Foundation
import Testing

@testable import GLaMCLI

struct CrashTests {
    /// The `glam` executable built beside this test binary.
    static func glamExecutable() throws -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("glam")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "glam next to \(CommandLine.arguments[0])"])
    }

    /// step → loss of every step record of a run directory's metrics.jsonl, and the steps in order.
    static func losses(_ directory: URL) throws -> (byStep: [Int: Double], order: [Int]) {
        let lines = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            .filter { $0["ce"] != nil }
        let pairs = records.compactMap { record -> (Int, Double)? in
            guard let step = record["step"] as? Int, let loss = record["loss"] as? Double else { return nil }
            return (step, loss)
        }
        return (Dictionary(pairs, uniquingKeysWith: { first, _ in first }), pairs.map(\.0))
    }

    /// The number of complete step records (lines with a training loss) in a run directory's
    /// metrics.jsonl so far: 0 before the file exists.
    static func loggedSteps(_ directory: URL) -> Int {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("metrics.jsonl").path) else { return 0 }
        guard let lastNewline = data.lastIndex(of: UInt8(ascii: "\n")) else { return 0 }
        return String(decoding: data[...lastNewline], as: UTF8.self).split(separator: "\n").filter { $0.contains("\"ce\"") }.count
    }

    @Test("kill -9 during training, resume, repeat: the same losses as an uninterrupted run, nothing duplicated or left behind")
    func killAndResume() throws {
        let glam = try Self.glamExecutable()
        let scratch = ScratchDirectory()
        let corpus = scratch.path("corpus.txt")
        try Data(try corpusSample(bytes: 30_000).utf8).write(to: corpus)
        let steps = 24
        func arguments(_ directory: URL) -> [String] {
            [
                "train", "--config", "tiny", "--batch", "2", "--length", "32", "--corpus", corpus.path, "--steps", "\(steps)",
                "--checkpoint-every", "1", "--evaluate-every", "4", "--output", directory.path,
            ]
        }
        let reference = scratch.path("reference")
        #expect(runGlam(arguments(reference)).status == 0)

        let interrupted = scratch.path("interrupted")
        var kills = 0
        // Each run but the last is killed once it has logged two more steps than the file held when
        // it started (then after a few more milliseconds, so kills land at different points of a
        // step), whatever the speed of the machine; the last runs to the end.
        for extraDelay in [0.0, 0.013, 0.007, nil] {
            let hasCheckpoint = FileManager.default.fileExists(atPath: interrupted.appendingPathComponent("checkpoint.safetensors").path)
            let loggedBefore = Self.loggedSteps(interrupted)
            let process = Process()
            process.executableURL = glam
            process.arguments = arguments(interrupted) + [hasCheckpoint ? "--resume" : "--force"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            if let extraDelay {
                let deadline = Date().addingTimeInterval(120)
                while process.isRunning && Self.loggedSteps(interrupted) < loggedBefore + 2 && Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.002)
                }
                Thread.sleep(forTimeInterval: extraDelay)
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                }
            }
            process.waitUntilExit()
            if extraDelay == nil { #expect(process.terminationStatus == 0 && process.terminationReason == .exit) }
        }
        #expect(kills == 3, "only \(kills) of 3 runs were still going when killed")
        let (expected, _) = try Self.losses(reference)
        let (got, order) = try Self.losses(interrupted)
        #expect(order == Array(1...steps))
        #expect(got == expected)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: interrupted.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }
}
