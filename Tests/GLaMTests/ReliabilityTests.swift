// Nothing lost, nothing silently wrong: output streams that fail, writers pointed at what is not a
// regular file or at their own input, one process per run directory, resumes that would change
// the run, damaged metrics and sweep files, sizes past what can be counted, and error messages.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

/// How the `glam` child process's standard output is set up.
enum ChildOutput {
    /// File descriptor 1 closed.
    case closed
    /// A pipe whose reading end is closed before the child starts.
    case brokenPipe
    /// A pipe the parent reads.
    case pipe
}

/// Runs the real `glam` binary with standard output set up as `output` and standard error closed
/// or captured; returns its exit status (nil when a signal ended it), the signal, and what it wrote
/// to standard output and standard error.
func spawnGlam(_ arguments: [String], output: ChildOutput, closeStandardError: Bool = false) throws -> (
    status: Int32?, signal: Int32?, out: String, err: String
) {
    let glam = try CrashTests.glamExecutable().path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
    switch output {
    case .closed:
        posix_spawn_file_actions_addclose(&actions, 1)
    case .brokenPipe, .pipe:
        guard pipe(&outPipe) == 0 else { throw POSIXError(.EMFILE) }
        if output == .brokenPipe {
            close(outPipe[0])
            outPipe[0] = -1
        } else {
            posix_spawn_file_actions_addclose(&actions, outPipe[0])
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_addclose(&actions, outPipe[1])
    }
    if closeStandardError {
        posix_spawn_file_actions_addclose(&actions, 2)
    } else {
        guard pipe(&errPipe) == 0 else { throw POSIXError(.EMFILE) }
        posix_spawn_file_actions_addclose(&actions, errPipe[0])
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, errPipe[1])
    }
    let argv: [UnsafeMutablePointer<CChar>?] = ([glam] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, glam, &actions, nil, argv, environ)
    if outPipe[1] >= 0 { close(outPipe[1]) }
    if errPipe[1] >= 0 { close(errPipe[1]) }
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
    func drain(_ descriptor: Int32) -> String {
        guard descriptor >= 0 else { return "" }
        var bytes: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        close(descriptor)
        return String(decoding: bytes, as: UTF8.self)
    }
    // Standard output first: a child never fills the stderr pipe with the short messages it writes.
    let out = drain(outPipe[0]), err = drain(errPipe[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signal = status & 0x7F
    return signal == 0 ? ((status >> 8) & 0xFF, nil, out, err) : (nil, signal, out, err)
}

struct ReliabilityTests {
    // MARK: output streams

    @Test("a write to a closed or broken standard output ends glam with exit 2 and one line naming the stream, not a trap or SIGPIPE")
    func failingStandardOutput() throws {
        let scratch = ScratchDirectory()
        try Data(try corpusSample(bytes: 30_000).utf8).write(to: scratch.path("corpus.txt"))
        let train = [
            "train", "--config", "tiny", "--steps", "1", "--batch", "2", "--length", "32", "--corpus", scratch.path("corpus.txt").path,
            "--output", scratch.path("run").path,
        ]
        // (train opens files before its first line: with descriptor 1 closed, one of them would
        // have become its standard output.)
        for command in [["params"], ["--help"], ["plan", "--config", "glam-64b-64e", "--mesh", "64x16"], train] {
            for output in [ChildOutput.closed, .brokenPipe] {
                let result = try spawnGlam(command, output: output)
                #expect(result.signal == nil && result.status == 2, "\(command) \(output): \(result)")
                let lines = result.err.split(separator: "\n")
                #expect(lines.count == 1 && lines[0].hasPrefix("glam: cannot write to standard output: "), "\(result.err)")
                let cause = output == .closed ? String(cString: strerror(EBADF)) : String(cString: strerror(EPIPE))
                #expect(result.err.contains(cause), "\(result.err)")
            }
            if command == train {
                // Nothing of its output went into the run's files, and the next run is not blocked.
                let lock = try String(contentsOf: scratch.path("run/.glam.lock"), encoding: .utf8)
                #expect(Int(lock.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(lock)")
                try FileManager.default.removeItem(at: scratch.path("run"))
                continue
            }
            // The same command with a working pipe succeeds and prints what the in-process run prints.
            let working = try spawnGlam(command, output: .pipe)
            #expect(working.status == 0 && working.err.isEmpty && working.out == runGlam(command).out)
        }
    }

    @Test("an error message to a closed standard error still exits with the command's status")
    func failingStandardError() throws {
        let bad = try spawnGlam(["params", "--no-such-option"], output: .pipe, closeStandardError: true)
        #expect(bad.signal == nil && bad.status == 2 && bad.out.isEmpty)
        let good = try spawnGlam(["params"], output: .pipe, closeStandardError: true)
        #expect(good.signal == nil && good.status == 0 && good.out.contains("tiny"))
    }

    // MARK: writers

    @Test("every writer refuses a target that is not a regular file, and leaves it as it was")
    func writersRefuseNonRegularTargets() throws {
        let scratch = ScratchDirectory()
        let fifo = scratch.path("fifo")
        #expect(mkfifo(fifo.path, 0o644) == 0)
        let directory = scratch.path("directory")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func kind(_ url: URL) -> mode_t {
            var information = stat()
            return lstat(url.path, &information) == 0 ? information.st_mode & S_IFMT : 0
        }
        for (target, word) in [(fifo, "a FIFO"), (directory, "a directory")] {
            for command in [
                ["fixture", "--kind", "top2_gating", "--experts", "4", "--group-size", "8", "--out", target.path],
                ["trace", "--prompt", "hi", "--dump", target.path], ["trace", "--prompt", "hi", "--svg", target.path],
            ] {
                let result = runGlam(command)
                #expect(result.status == 2 && result.err.contains(word) && result.err.split(separator: "\n").count == 1, "\(result.err)")
                #expect(result.out.isEmpty)
            }
            #expect(throws: ModelError.self) { try FileAccess.writeAtomically(Data("x".utf8), to: target) }
            #expect(throws: ModelError.self) { try SafeTensorsFile(tensors: [:], metadata: [:]).write(to: target) }
        }
        #expect(kind(fifo) == S_IFIFO && kind(directory) == S_IFDIR)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        // A character device is refused by the check itself (only the check runs on a real device).
        do {
            try FileAccess.checkWritable(URL(fileURLWithPath: "/dev/null"))
            Issue.record("/dev/null was accepted as an output file")
        } catch {
            #expect(error.description.contains("a character device"), "\(error)")
        }
        // A regular file, a link to one and a new path are fine.
        let file = scratch.path("file.svg")
        try FileAccess.writeAtomically(Data("one".utf8), to: file)
        try FileAccess.writeAtomically(Data("two".utf8), to: file)
        #expect(try String(contentsOf: file, encoding: .utf8) == "two")
    }

    @Test("every output file in a directory that does not exist: exit 2 before any work, one line naming the path, nothing written")
    func writersNameAMissingDirectory() throws {
        let scratch = ScratchDirectory()
        let checkpoint = try HostileInputTests.checkpoint(in: scratch)
        let requests = scratch.path("requests.jsonl")
        try Data(#"{"request": "loglikelihood", "context": "The", "continuation": " end"}"#.utf8 + [10]).write(to: requests)
        let target = scratch.path("missing").appendingPathComponent("out.file")
        for command in [
            ["fixture", "--kind", "top2_gating", "--experts", "4", "--group-size", "8", "--out", target.path],
            ["trace", "--prompt", "hi", "--dump", target.path], ["trace", "--prompt", "hi", "--svg", target.path],
            ["eval", "--checkpoint", checkpoint.path, "--requests", requests.path, "--output", target.path],
            ["eval", "--checkpoint", checkpoint.path, "--task", "kjv_last_word", "--limit", "2", "--shots", "0", "--output", target.path],
        ] {
            let result = runGlam(command)
            #expect(result.status == 2, "\(command): \(result.status) \(result.err)")
            let lines = result.err.split(separator: "\n")
            // Refused before any work: the one line is the error, with no progress before it.
            #expect(lines.count == 1 && lines[0].hasPrefix("glam") && lines[0].contains(target.path), "\(command): \(result.err)")
            #expect(lines.first?.contains("directory") == true && !result.err.contains("Domain="), "\(command): \(result.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("missing").path))
    }

    @Test("trace refuses to write its dump or chart over its own checkpoint, by path or by another link to it")
    func writersProtectTheirInputs() throws {
        let scratch = ScratchDirectory()
        let checkpoint = try HostileInputTests.checkpoint(in: scratch)
        let before = try Data(contentsOf: checkpoint)
        let link = scratch.path("link.safetensors")
        #expect(Foundation.link(checkpoint.path, link.path) == 0)
        for target in [checkpoint, link] {
            for option in ["--dump", "--svg"] {
                let result = runGlam(["trace", "--checkpoint", checkpoint.path, "--prompt", "The", option, target.path])
                #expect(result.status == 2 && result.err.contains("input") && result.out.isEmpty, "\(result.err)")
            }
        }
        #expect(try Data(contentsOf: checkpoint) == before)
        let same = runGlam(["trace", "--prompt", "The", "--dump", scratch.path("x").path, "--svg", scratch.path("x").path])
        #expect(same.status == 2 && same.err.contains("same file"))
        // Another path is written.
        let dump = scratch.path("trace.safetensors")
        let traced = runGlam(["trace", "--checkpoint", checkpoint.path, "--prompt", "The", "--dump", dump.path])
        #expect(traced.status == 0 && FileManager.default.fileExists(atPath: dump.path), "\(traced.err)")
    }

    @Test("readers refuse what is not a regular file, or not UTF-8 text, saying what it is and where")
    func readersNameTheProblem() throws {
        let scratch = ScratchDirectory()
        let fifo = scratch.path("fifo")
        #expect(mkfifo(fifo.path, 0o644) == 0)
        // A FIFO would block a reader forever: it is refused by what it is, before any read.
        for (url, word) in [(fifo, "a FIFO"), (scratch.url, "a directory"), (scratch.path("absent"), String(cString: strerror(ENOENT)))] {
            #expect(
                throws: ModelError("cannot read \(url.path): \(url == scratch.path("absent") ? word : "it is \(word), not a regular file")")
            ) {
                _ = try FileAccess.read(url)
            }
            let generated = runGlam(["generate", "--checkpoint", url.path, "--prompt", "x"])
            #expect(generated.status == 2 && generated.err.contains(word) && !generated.err.contains("Domain="), "\(generated.err)")
            let train = runGlam(["train", "--corpus", url.path, "--output", scratch.path("run").path])
            #expect(train.status == 2 && train.err.contains("cannot read the corpus") && train.err.contains(word), "\(train.err)")
        }
        // A corpus cut inside a multi-byte character: the offset of the first bad byte, not "run from the repository root".
        for (bytes, offset) in [(Array("naïve\n\nend ".utf8) + [0xC3], 12), (Array("ab".utf8) + [0xFF] + Array("cd".utf8), 2), ([0x80], 0)]
        {
            let url = scratch.path("corpus-\(offset).txt")
            try Data(bytes).write(to: url)
            #expect(
                throws: ModelError(
                    "cannot read \(url.path): it is not UTF-8 text (the first invalid byte is at byte \(offset) of \(bytes.count))")
            ) {
                _ = try FileAccess.readText(url)
            }
            let train = runGlam(["train", "--corpus", url.path, "--output", scratch.path("run").path])
            #expect(train.status == 2 && train.err.contains("not UTF-8") && !train.err.contains("repository root"), "\(train.err)")
        }
    }

    @Test("a run directory that cannot be made is named with what is in the way")
    func directoriesThatCannotBeMade() throws {
        let scratch = ScratchDirectory()
        let file = scratch.path("file")
        try Data("x".utf8).write(to: file)
        for command in [["train", "--config", "tiny"], ["compare"] + CompareTests.small] {
            let result = runGlam(command + ["--corpus", CompareTests.corpus, "--output", file.appendingPathComponent("run").path])
            #expect(result.status == 2 && result.err.contains("\(file.path) is a regular file, not a directory"), "\(result.err)")
            #expect(!result.err.contains("Domain=") && result.err.split(separator: "\n").count == 1)
        }
        try FileAccess.createDirectory(scratch.path("a/b/c"))
        try FileAccess.createDirectory(scratch.path("a/b/c"))  // existing: fine
        var information = stat()
        #expect(stat(scratch.path("a/b/c").path, &information) == 0 && information.st_mode & S_IFMT == S_IFDIR)
    }

    @Test("Foundation's errors reach the user as the file and the POSIX cause, never as NSCocoaErrorDomain codes")
    func foundationErrorsInOneLine() {
        let underlying = NSError(domain: NSPOSIXErrorDomain, code: Int(EACCES))
        let error = NSError(
            domain: NSCocoaErrorDomain, code: 513, userInfo: [NSFilePathErrorKey: "/some/file", NSUnderlyingErrorKey: underlying])
        #expect(CommandLineTool.message(error) == "/some/file: \(String(cString: strerror(EACCES)))")
        #expect(CommandLineTool.message(NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))) == String(cString: strerror(ENOSPC)))
        #expect(CommandLineTool.message(ModelError("a message")) == "a message")
    }

    // MARK: run directories

    @Test("a run directory has one owner: a second train or compare is refused at once, naming the owner's pid")
    func oneProcessPerRunDirectory() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        let directory = scratch.path("run")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let common = [
            "--config", "tiny", "--corpus", corpus.path, "--output", directory.path, "--batch", "2", "--length", "32", "--steps", "1",
        ]
        let lock = try RunDirectoryLock(directory, command: "test")
        let refused = runGlam(["train"] + common)
        #expect(refused.status == 2 && refused.err.contains("in use by another glam process (pid \(getpid()))"), "\(refused.err)")
        #expect(refused.out.isEmpty && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("metrics.jsonl").path))
        #expect(throws: UsageError.self) { _ = try RunDirectoryLock(directory, command: "test") }
        lock.unlock()
        #expect(runGlam(["train"] + common).status == 0)
        // compare takes each run's directory the same way.
        let sweep = scratch.path("sweep")
        let arguments = CompareTests.small + ["--experts", "4", "--corpus", CompareTests.corpus, "--output", sweep.path]
        #expect(runGlam(["compare"] + arguments).status == 0)
        let held = try RunDirectoryLock(sweep.appendingPathComponent("runs/dense-seed0"), command: "test")
        let compare = runGlam(["compare", "--resume"] + arguments)
        #expect(compare.status == 2 && compare.err.contains("in use by another glam process (pid \(getpid()))"), "\(compare.err)")
        held.unlock()
        #expect(runGlam(["compare", "--resume"] + arguments).status == 0)
    }

    @Test("a released run lock is free at once, even while another thread is spawning processes; a held one is refused")
    func releasedLockIsFreeWhileSpawning() throws {
        let scratch = ScratchDirectory()
        let directory = scratch.path("run")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A child shares its parent's open files from fork to exec: a lock that lived in the open
        // file (flock) would stay held for that moment after its release.
        final class Flag: @unchecked Sendable { var stop = false; let lock = NSLock() }
        let flag = Flag()
        let spawner = Thread {
            while flag.lock.withLock({ !flag.stop }) {
                let child = Process()
                child.executableURL = URL(fileURLWithPath: "/bin/true")
                try? child.run()
                child.waitUntilExit()
            }
        }
        spawner.start()
        defer { flag.lock.withLock { flag.stop = true } }
        for attempt in 0..<300 {
            let lock = try #require(try? RunDirectoryLock(directory, command: "test"), "attempt \(attempt) refused")
            let again = #expect(throws: UsageError.self) { _ = try RunDirectoryLock(directory, command: "test") }
            #expect(again?.description.contains("(pid \(getpid()))") == true)
            lock.unlock()
        }
    }

    @Test("resume refuses, by name, every option that would change the run, and names the run's own configuration")
    func resumeRefusesConflictingOptions() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        let directory = scratch.path("run")
        let base = ["--corpus", corpus.path, "--output", directory.path]
        let first = runGlam(
            [
                "train", "--config", "tiny", "--batch", "2", "--length", "32", "--seed", "4", "--steps", "2", "--checkpoint-every", "1",
                "--evaluate-every", "2", "--constant-steps", "5", "--peak-lr", "0.02",
            ] + base)
        #expect(first.status == 0, "\(first.err)")
        let checkpoint = try Data(contentsOf: directory.appendingPathComponent("checkpoint.safetensors"))
        for (option, value, stored) in [
            ("--config", "small", "tiny"), ("--batch", "4", "2"), ("--length", "64", "32"), ("--seed", "5", "4"),
            ("--checkpoint-every", "3", "1"), ("--evaluate-every", "3", "2"), ("--constant-steps", "6", "5"), ("--peak-lr", "0.5", "0.02"),
        ] {
            let result = runGlam(["train", "--resume", "--steps", "3", option, value] + base)
            #expect(result.status == 2 && result.out.isEmpty, "\(option): \(result.err)")
            #expect(result.err.contains("\(option) \(value)") && result.err.contains(stored), "\(result.err)")
            #expect(result.err.split(separator: "\n").count == 1)
        }
        #expect(try Data(contentsOf: directory.appendingPathComponent("checkpoint.safetensors")) == checkpoint)
        // The same values are no conflict; the banner names the run's configuration, not the default.
        let same = runGlam(["train", "--resume", "--steps", "3", "--batch", "2", "--seed", "4", "--peak-lr", "0.02"] + base)
        #expect(same.status == 0, "\(same.err)")
        #expect(same.out.contains("(tiny) at step 2 of 3") && same.out.contains("\ntiny: ") && !same.out.contains("small"), "\(same.out)")
        // Another corpus is refused: its rows differ from the ones the checkpoint recorded.
        let other = scratch.path("other.txt")
        try Data(try corpusSample(bytes: 60_000).utf8).write(to: other)
        let moved = runGlam(["train", "--resume", "--steps", "4", "--corpus", other.path, "--output", directory.path])
        #expect(moved.status == 2 && moved.err.contains("is not the corpus the run trained on"), "\(moved.err)")
    }

    @Test("a mesh trainer resumes exactly what a one-device trainer resumes, and refuses the rest with the same message")
    func meshResumesWhatOneDeviceResumes() throws {
        let trainer = try tinyTrainer(steps: 2)
        var checkpoint = trainer.checkpoint
        checkpoint.dataFingerprint = nil  // an older checkpoint: any data of the right shape is taken
        let mesh = try DeviceMesh(shape: [1, 1], axisNames: ["data", "mdl"])
        let v = trainer.parameters.configuration.vocabSize
        var badOptions = checkpoint
        badOptions.options.batchSize = 0
        let cases: [(String, TrainingCheckpoint, TextDataset)] = [
            ("the run's data", checkpoint, trainer.dataset),
            (
                "rows of another length", checkpoint,
                TextDataset(text: try corpusSample(bytes: 30_000), tokenizer: trainer.tokenizer, length: 16)
            ),
            (
                "fewer rows than a batch", checkpoint,
                TextDataset(text: try corpusSample(bytes: 400), tokenizer: trainer.tokenizer, length: 32)
            ),
            (
                "an id outside the vocabulary", checkpoint,
                TextDataset(tokenDocuments: [Array(0..<200).map { $0 % v } + [v]], endOfText: 0, length: 32)
            ),
            ("options with a problem", badOptions, trainer.dataset),
        ]
        for (label, checkpoint, dataset) in cases {
            let one = Result { () throws(ModelError) in try Trainer(resuming: checkpoint, dataset: dataset) }
            let onMesh = Result { try MeshTrainer(resuming: checkpoint, dataset: dataset, mesh: mesh) }
            switch (one, onMesh) {
            case (.success, .success): #expect(label == "the run's data")
            case (.failure(let a), .failure(let b)): #expect(label != "the run's data" && "\(a)" == "\(b)", "\(label): \(a) / \(b)")
            default: Issue.record("\(label): one device \(one), mesh \(onMesh)")
            }
        }
    }

    @Test("a resumed trainer refuses data other than the run's, on one device and on a mesh")
    func resumedTrainerRefusesOtherData() throws {
        let trainer = try tinyTrainer(steps: 2)
        _ = try trainer.trainStep()
        let checkpoint = trainer.checkpoint
        #expect(checkpoint.dataFingerprint == trainer.dataset.fingerprint)
        let other = TextDataset(text: try corpusSample(bytes: 60_000), tokenizer: trainer.tokenizer, length: 32)
        #expect(other.fingerprint != trainer.dataset.fingerprint)
        #expect(
            TextDataset(text: try corpusSample(bytes: 30_000), tokenizer: trainer.tokenizer, length: 32).fingerprint
                == trainer.dataset.fingerprint)
        #expect(throws: ModelError.self) { _ = try Trainer(resuming: checkpoint, dataset: other) }
        let mesh = try DeviceMesh(shape: [1, 1], axisNames: ["data", "mdl"])
        #expect(throws: ModelError.self) { _ = try MeshTrainer(resuming: checkpoint, dataset: other, mesh: mesh) }
        #expect(throws: Never.self) { _ = try Trainer(resuming: checkpoint, dataset: trainer.dataset) }
        // Checkpoints that recorded no fingerprint (older ones) resume on any data of the right shape.
        var older = checkpoint
        older.dataFingerprint = nil
        #expect(throws: Never.self) { _ = try Trainer(resuming: older, dataset: other) }
        // The fingerprint survives the file.
        let scratch = ScratchDirectory()
        try checkpoint.write(to: scratch.path("c.safetensors"))
        #expect(try TrainingCheckpoint(contentsOf: scratch.path("c.safetensors")).dataFingerprint == checkpoint.dataFingerprint)
    }

    @Test("a run that stopped before its first checkpoint is not offered --resume; damaged metrics are refused, torn ones cut")
    func runsWithoutCheckpointsAndDamagedMetrics() throws {
        let scratch = ScratchDirectory()
        let corpus = try scratch.corpus()
        let directory = scratch.path("run")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        try Data(#"{"step": 1, "loss": 5}"#.utf8 + [0x0A]).write(to: metricsURL)
        let common = ["--config", "tiny", "--corpus", corpus.path, "--output", directory.path, "--batch", "2", "--length", "32"]
        let fresh = runGlam(["train", "--steps", "2"] + common)
        #expect(fresh.status == 2 && fresh.err.contains("before its first checkpoint") && fresh.err.contains("--force"), "\(fresh.err)")
        #expect(!fresh.err.contains("--resume"))
        let resumed = runGlam(["train", "--resume", "--steps", "2"] + common)
        #expect(
            resumed.status == 2 && resumed.err.contains("no checkpoint.safetensors") && resumed.err.contains("--force"), "\(resumed.err)")
        let forced = runGlam(["train", "--steps", "2", "--force"] + common)
        #expect(forced.status == 0, "\(forced.err)")

        // A torn last record (the kill came mid-line) is cut with the records after the checkpoint.
        var text = try Data(contentsOf: metricsURL)
        text += Data(#"{"step": 3, "loss": 1}"#.utf8 + [0x0A]) + Data(#"{"step": 4, "lo"#.utf8)
        try text.write(to: metricsURL)
        let cut = runGlam(["train", "--resume", "--steps", "3"] + common)
        #expect(cut.status == 0 && cut.out.contains("removed 2 records after step 2"), "\(cut.err) \(cut.out)")
        let steps = try CrashTests.losses(directory).order
        #expect(steps == [1, 2, 3], "\(steps)")

        // A record in the middle that is not JSON (here an invalid UTF-8 byte) is refused: skipping
        // it would keep a stale step beside its rerun.
        var damaged = try Data(contentsOf: metricsURL)
        let firstNewline = try #require(damaged.firstIndex(of: 0x0A))
        damaged[firstNewline - 3] = 0xFF
        try damaged.write(to: metricsURL)
        let refused = runGlam(["train", "--resume", "--steps", "4"] + common)
        #expect(refused.status == 2 && refused.err.contains("metrics.jsonl line 1 is not a metrics record"), "\(refused.err)")
        #expect(try Data(contentsOf: metricsURL) == damaged)

        // metrics.jsonl as a FIFO is refused at once instead of blocking the run forever.
        try FileManager.default.removeItem(at: metricsURL)
        #expect(mkfifo(metricsURL.path, 0o644) == 0)
        let fifo = runGlam(["train", "--resume", "--steps", "4"] + common)
        #expect(fifo.status == 2 && fifo.err.contains("a FIFO"), "\(fifo.err)")
    }

    @Test("metrics records write every non-finite number as null, at any depth, and keep the rest")
    func nonFiniteMetricsAreNull() throws {
        let record: [String: Any] = [
            "loss": Float.nan, "ce": Double.infinity, "lr": 0.01, "step": 3, "applied": false,
            "moe_layers": [["router_entropy": -Double.infinity, "dropped_fraction": 0.25, "load_before_capacity": [1, 2]]],
        ]
        let data = Data(JSONText.line(record).utf8)
        let back = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(back["loss"] is NSNull && back["ce"] is NSNull && back["lr"] as? Double == 0.01 && back["step"] as? Int == 3)
        let layer = try #require((back["moe_layers"] as? [[String: Any]])?.first)
        #expect(
            layer["router_entropy"] is NSNull && layer["dropped_fraction"] as? Double == 0.25
                && layer["load_before_capacity"] as? [Int] == [1, 2])
        // Booleans and integers keep their JSON type, from Swift values and from Foundation's
        // (a decoded configuration written back out).
        #expect(JSONText.line(["applied": false, "step": 3, "lr": 0.5] as [String: Any]) == #"{"applied":false,"lr":0.5,"step":3}"#)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(#"{"b":true,"n":512,"x":1.5}"#.utf8)) as? [String: Any])
        #expect(JSONText.line(decoded) == #"{"b":true,"n":512,"x":1.5}"#)
    }

    // MARK: compare

    @Test("compare reports rows by step: a model without a point at a step shows no value there, not another step's")
    func compareRowsAreKeyedByStep() throws {
        let parsed = try Arguments(["--experts", "4", "--steps", "4"], command: "compare", options: ["experts", "steps"], flags: [])
        let settings = try SweepSettings(parsed)
        let variants = settings.variants
        func point(_ step: Int, _ ce: Double) -> RunPoint {
            RunPoint(step: step, trainingFLOPs: Double(step) * 1e9, validationCE: ce, layers: [])
        }
        let records = [
            RunRecord(variant: variants[0].name, seed: 0, points: [point(0, 9), point(2, 7), point(4, 5)]),
            RunRecord(variant: variants[1].name, seed: 0, points: [point(0, 9.5), point(3, 6), point(4, 4.25)]),
        ]
        let lines = CompareReport(records: records, variants: variants, settings: settings).tables()
        func row(_ step: Int) -> [String] {
            let line = lines.first { $0.hasPrefix("| \(step) | ") } ?? ""
            return line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        #expect(row(0) == ["0", "0", "9.0000", "9.5000"])
        #expect(row(2) == ["2", "2e+09", "7.0000", "–"])
        #expect(row(3) == ["3", "3e+09", "–", "6.0000"])
        #expect(row(4) == ["4", "4e+09", "5.0000", "4.2500"])
        #expect(lines.contains { $0.hasPrefix("| \(variants[1].name) | -0.7500 |") }, "\(lines)")
    }

    @Test("compare refuses damaged points, runs without their settings, repeated values and malformed shards; NaN losses round-trip")
    func compareRefusesWhatItCannotTrust() throws {
        let scratch = ScratchDirectory()
        let sweep = scratch.path("sweep")
        let arguments = CompareTests.small + ["--experts", "4", "--corpus", CompareTests.corpus, "--output", sweep.path]
        #expect(runGlam(["compare"] + arguments).status == 0)
        let points = sweep.appendingPathComponent("runs/dense-seed0/points.jsonl")
        let good = try String(contentsOf: points, encoding: .utf8)
        var lines = good.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        lines[1] = String(lines[1].dropLast(5))
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: points)
        let damaged = runGlam(["compare", "--resume"] + arguments)
        #expect(damaged.status == 2 && damaged.err.contains("points.jsonl line 2 is not a point record"), "\(damaged.err)")
        try Data((good.split(separator: "\n").reversed().joined(separator: "\n") + "\n").utf8).write(to: points)
        let disordered = runGlam(["compare", "--resume"] + arguments)
        #expect(disordered.status == 2 && disordered.err.contains("after step"), "\(disordered.err)")
        // A step repeated is as damaged as one out of order.
        let repeated = [lines[0], String(good.split(separator: "\n")[1]), String(good.split(separator: "\n")[1])]
        try Data((repeated.joined(separator: "\n") + "\n").utf8).write(to: points)
        let twice = runGlam(["compare", "--resume"] + arguments)
        #expect(twice.status == 2 && twice.err.contains("line 3 has step"), "\(twice.err)")
        // A run whose checkpoint is another variant's (same seed) is not resumed as this one: two
        // runs kept with their checkpoints, the first cut back to before its end, the checkpoints swapped.
        let kept = scratch.path("kept")
        let keptArguments = CompareTests.small + ["--experts", "4", "--corpus", CompareTests.corpus, "--output", kept.path]
        #expect(runGlam(["compare", "--keep-checkpoints"] + keptArguments).status == 0)
        let runs = kept.appendingPathComponent("runs")
        let variants = try FileManager.default.contentsOfDirectory(atPath: runs.path).sorted()
        #expect(variants.count == 2, "\(variants)")
        let ownPoints = runs.appendingPathComponent("\(variants[0])/points.jsonl")
        let ownLines = try String(contentsOf: ownPoints, encoding: .utf8).split(separator: "\n")
        try Data((ownLines.prefix(2).joined(separator: "\n") + "\n").utf8).write(to: ownPoints)
        try Data(contentsOf: runs.appendingPathComponent("\(variants[1])/checkpoint.safetensors"))
            .write(to: runs.appendingPathComponent("\(variants[0])/checkpoint.safetensors"))
        let swapped = runGlam(["compare", "--resume", "--keep-checkpoints"] + keptArguments)
        #expect(
            swapped.status == 2 && swapped.err.contains("is not a run of \(variants[0].split(separator: "-seed")[0])"), "\(swapped.err)")
        try Data(good.utf8).write(to: points)

        // Without sweep.json nothing says whose runs these are.
        try FileManager.default.removeItem(at: sweep.appendingPathComponent("sweep.json"))
        for flags in [[String](), ["--resume"]] {
            let orphaned = runGlam(["compare"] + flags + arguments)
            #expect(orphaned.status == 2 && orphaned.err.contains("no sweep.json"), "\(orphaned.err)")
        }
        #expect(runGlam(["compare", "--force"] + arguments).status == 0)

        // Temporary files of a killed process are removed on resume.
        var dead: Int32 = 999_999
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = sweep.appendingPathComponent("runs/dense-seed0/.checkpoint.safetensors.tmp-\(dead)-7")
        try Data([1, 2, 3]).write(to: stale)
        #expect(runGlam(["compare", "--resume"] + arguments).status == 0)
        #expect(!FileManager.default.fileExists(atPath: stale.path))

        for (option, value) in [
            ("--experts", "4,4"), ("--experts", "8,4,8"), ("--shard", "0/x/2"), ("--shard", "0//2"), ("--shard", "1/2/"),
        ] {
            let result = runGlam(["compare", option, value, "--output", scratch.path("bad").path])
            #expect(result.status == 2 && result.err.contains(option), "\(option) \(value): \(result.err)")
        }
        #expect(runGlam(["bench", "decode", "--batch", "1,1"]).status == 2)
        // The ends of --shard's range: a shard with no runs of its own reports the others' finished runs.
        #expect(runGlam(["compare", "--resume", "--shard", "1023/1024"] + arguments).status == 0)
        #expect(runGlam(["compare", "--resume", "--shard", "0/1025"] + arguments).status == 2)

        // A diverged run's NaN validation loss is written and read back (before, encoding threw).
        let url = scratch.path("points.jsonl")
        try SweepRun.writePoints([RunPoint(step: 2, trainingFLOPs: 1, validationCE: .nan, layers: [])], to: url)
        let read = try SweepRun.readPoints(url)
        #expect(read.count == 1 && read[0].validationCE.isNaN)
    }

    // MARK: sizes

    @Test("checked size arithmetic equals exact 128-bit arithmetic below Int.max and saturates above it")
    func checkedSizeArithmetic() {
        var generator = SeededGenerator(seed: 27)
        for _ in 0..<2000 {
            let count = Int(generator.next() % 6)
            let factors = (0..<count).map { _ -> Int in
                switch generator.next() % 4 {
                case 0: return Int(generator.next() % 16)
                case 1: return Int(generator.next() % (1 << 20))
                case 2: return Int(generator.next() % (1 << 40))
                default: return Int(generator.next() >> 1)  // up to Int.max
                }
            }
            // Each factor is below 2^63, so a running product kept at most 2^63 never overflows 128 bits.
            var exact: Int128 = 1
            for factor in factors where exact <= Int128(Int.max) { exact *= Int128(factor) }
            let expectedProduct = factors.contains(0) ? 0 : exact > Int128(Int.max) ? Int.max : Int(exact)
            #expect(CheckedSize.product(factors) == expectedProduct, "\(factors)")
            let total = factors.reduce(Int128(0)) { $0 + Int128($1) }
            #expect(CheckedSize.sum(factors) == (total > Int128(Int.max) ? Int.max : Int(total)), "\(factors)")
        }
        #expect(CheckedSize.product([]) == 1 && CheckedSize.sum([]) == 0)
        #expect(CheckedSize.product([-3, 5]) == 0 && CheckedSize.sum([-3, 5]) == 5)
    }

    @Test("what a user can size is refused with a message before any allocation: GEMM operands, MoE benches, decoding, fixtures")
    func sizesAreCheckedBeforeAllocation() {
        let scratch = ScratchDirectory()
        let out = scratch.path("never-written").path
        for (arguments, fragment) in [
            (["bench", "gemm", "--shape", "65536,65536,1"], "2^28"),  // C is 2^32 elements though A and B are small
            (["bench", "gemm", "--shape", "1,65536,65536"], "2^28"),  // B
            (["bench", "gemm", "--shape", "8,8,8", "--size", "64"], "cannot be combined"),
            (["bench", "moe", "--groups", "4096", "--group-size", "65536", "--model-dim", "4096"], "needs about"),
            (["bench", "decode", "--config", "small", "--batch", "1024", "--prompt", "65536"], "may need up to"),
            (
                [
                    "fixture", "--kind", "moe_layer", "--experts", "4096", "--model-dim", "16384", "--hidden", "65536", "--out", out,
                ], "limit"
            ),
            (
                [
                    "fixture", "--kind", "top2_gating", "--groups", "1048576", "--group-size", "1048576", "--experts", "4096",
                    "--capacity-factor", "1000", "--out", out,
                ], "limit"
            ),
            (["plan", "--config", "glam-64b-64e", "--mesh", "2xx2"], "--mesh"),
            (["plan", "--config", "glam-64b-64e", "--mesh", "x64x16x"], "--mesh"),
            (["plan", "--config", "glam-64b-64e", "--mesh", "64x"], "--mesh"),
        ] {
            let result = runGlam(arguments)
            #expect(result.status == 2 && result.err.contains(fragment) && result.out.isEmpty, "\(arguments): \(result.err)")
        }
    }
}
