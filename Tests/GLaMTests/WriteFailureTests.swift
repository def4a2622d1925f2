// Writes that fail after the work is done. Root may write anywhere permissions allow, so these
// tests seal a directory with Linux's immutable attribute (FS_IMMUTABLE_FL, `chattr +i`), which
// refuses new entries to root too: every command that writes there must end with exit status 2
// and one line naming the file, and a resume that cannot trim its metrics must not train. Where the
// attribute cannot be set (another file system, or not root) the suite is skipped.

import Foundation
import Testing

@testable import GLaM

/// A directory in which no entry can be created or removed, even by root, until `release()`.
final class ImmutableDirectory {
    let url: URL
    private var sealed = false

    /// Seals `url`, or nil when the file system or the user cannot.
    init?(_ url: URL) {
        self.url = url
        guard Self.setImmutable(url, true) else { return nil }
        sealed = true
    }

    /// Unseals the directory (also on deinit).
    func release() {
        if sealed { _ = Self.setImmutable(url, false) }
        sealed = false
    }

    deinit { release() }

    /// Sets or clears the immutable attribute of the directory at `url`.
    static func setImmutable(_ url: URL, _ on: Bool) -> Bool {
        #if os(Linux)
            let descriptor = open(url.path, O_RDONLY | O_DIRECTORY)
            guard descriptor >= 0 else { return false }
            defer { close(descriptor) }
            var flags: Int32 = 0
            // FS_IOC_GETFLAGS, FS_IOC_SETFLAGS and FS_IMMUTABLE_FL (linux/fs.h).
            let (getFlags, setFlags, immutable): (UInt, UInt, Int32) = (0x8008_6601, 0x4008_6602, 0x10)
            guard ioctl(descriptor, getFlags, &flags) == 0 else { return false }
            flags = on ? flags | immutable : flags & ~immutable
            return ioctl(descriptor, setFlags, &flags) == 0
        #else
            return false
        #endif
    }

    /// Whether a directory can be sealed here, and a sealed one then refuses a new file.
    static let isSupported: Bool = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("glam-immutable-probe-\(UUID())")
        guard (try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)) != nil else { return false }
        defer { try? FileManager.default.removeItem(at: probe) }
        guard let sealed = ImmutableDirectory(probe) else { return false }
        defer { sealed.release() }
        return !FileManager.default.createFile(atPath: probe.appendingPathComponent("x").path, contents: Data([1]))
    }()
}

@Suite(.enabled(if: ImmutableDirectory.isSupported, "needs the immutable attribute (Linux, root, ext4 or similar)"))
struct WriteFailureTests {
    @Test("a resume that cannot trim metrics.jsonl back to its checkpoint stops at once, naming the file, and trains nothing")
    func resumeThatCannotTrimItsMetrics() throws {
        let scratch = ScratchDirectory()
        let (run, common) = try scratch.tinyRun()
        try #require(runGlam(["train", "--steps", "2"] + common).status == 0)
        // Records of steps 3 and 4 after the step-2 checkpoint, as a crash before their checkpoint leaves.
        let metrics = run.appendingPathComponent("metrics.jsonl")
        var text = try String(contentsOf: metrics, encoding: .utf8)
        text += #"{"step": 3, "loss": 1}"# + "\n" + #"{"step": 4, "loss": 1}"# + "\n"
        try Data(text.utf8).write(to: metrics)
        let checkpoint = try Data(contentsOf: run.appendingPathComponent("checkpoint.safetensors"))
        do {
            let sealed = try #require(ImmutableDirectory(run))
            defer { sealed.release() }
            let resumed = runGlam(["train", "--resume", "--steps", "4"] + common)
            #expect(resumed.status == 2 && resumed.err.contains("cannot rewrite \(metrics.path)"), "\(resumed.err)")
            #expect(resumed.err.split(separator: "\n").count == 1, "\(resumed.err)")
        }
        #expect(try String(contentsOf: metrics, encoding: .utf8) == text)
        #expect(try Data(contentsOf: run.appendingPathComponent("checkpoint.safetensors")) == checkpoint)
        // Unsealed, the same resume trims and trains.
        let again = runGlam(["train", "--resume", "--steps", "4"] + common)
        #expect(again.status == 0 && again.out.contains("removed 2 records after step 2"), "\(again.err)")
    }

    @Test(
        "trace's dump and chart, eval's results and fixture's file: a write that fails after the work is exit 2 and one line naming the file"
    )
    func outputsThatCannotBeWritten() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let checkpoint = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        let requests = scratch.path("requests.jsonl")
        try Data((#"{"request": "loglikelihood", "context": "The hacker", "continuation": " wrote"}"# + "\n").utf8).write(to: requests)
        let out = scratch.path("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let sealed = try #require(ImmutableDirectory(out))
        defer { sealed.release() }
        for (arguments, file) in [
            (["trace", "--checkpoint", checkpoint.path, "--prompt", "The hacker", "--dump"], "dump.json"),
            (["trace", "--checkpoint", checkpoint.path, "--prompt", "The hacker", "--svg"], "routing.svg"),
            (["eval", "--checkpoint", checkpoint.path, "--requests", requests.path, "--output"], "answers.jsonl"),
            (["fixture", "--kind", "top2_gating", "--experts", "4", "--group-size", "8", "--out"], "gating.safetensors"),
        ] {
            let target = out.appendingPathComponent(file)
            let result = runGlam(arguments + [target.path])
            #expect(result.status == 2 && result.err.contains(target.path), "\(arguments[0]) \(file): \(result.err)")
            #expect(result.err.split(separator: "\n").count == 1, "\(result.err)")
            #expect(!FileManager.default.fileExists(atPath: target.path))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }
}
