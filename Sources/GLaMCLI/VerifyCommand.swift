// `glam verify PATH...`: runs golden fixtures and reports per tensor (the "Golden fixtures" and
// "The glam command line" articles).

import Foundation
import GLaM

enum VerifyCommand: Subcommand {
    static let name = "verify"
    static let summary = "Run golden fixtures: 'glam verify Fixtures/' (one line per tensor, then a summary)."
    static let help = """
        USAGE: glam verify PATH...

        Runs every golden fixture (format: the "Golden fixtures" article of the documentation) named,
        or found under a named directory (files ending .safetensors, searched recursively; ones that
        are not glam fixtures are skipped with a note). For each expected tensor it prints PASS or
        FAIL, the largest absolute difference and the tolerance, and for a failure the index
        [i, j, …] of the first element out of tolerance; then a summary line "N passed, N failed"
        (counting tensors). Checks are strict: a tensor name the fixture's kind does not read (a
        misspelt expected.combined) or a missing config key is an error, not a skipped check.

        Kinds: \(GoldenFixture.knownKinds.joined(separator: ", ")).
        Exit status: 0 all passed; 1 a tensor disagreed; 2 bad usage, or a fixture that is malformed or
        of an unknown kind, or a path with no fixture at all (named on stderr with the reason).
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(arguments, command: "verify", options: [], flags: [])
        guard !parsed.positionals.isEmpty else { throw UsageError("verify: name at least one fixture file or directory") }
        var files: [(url: URL, explicit: Bool)] = []
        for path in parsed.positionals {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw UsageError("verify: \(path): no such file or directory")
            }
            if isDirectory.boolValue {
                let found = fixtureFiles(under: URL(fileURLWithPath: path))
                guard !found.isEmpty else { throw UsageError("verify: \(path): no .safetensors files under this directory") }
                files += found.map { ($0, false) }
            } else {
                files.append((URL(fileURLWithPath: path), true))
            }
        }
        var passed = 0, failed = 0, malformed = 0, fixtures = 0
        for (url, explicit) in files {
            if explicit { fixtures += 1 }  // a named file is a fixture to check, whatever it holds
            do throws(FixtureError) {
                let file: SafeTensorsFile
                do {
                    file = try SafeTensorsFile(contentsOf: url)
                } catch {
                    throw FixtureError(file: url.path, reason: error.reason)
                }
                if !explicit && !GoldenFixture.isFixture(file) {
                    output.line("skip  \(url.path): not a glam fixture")
                    continue
                }
                if !explicit { fixtures += 1 }
                let result = try GoldenFixture(file, name: url.path).run()
                for comparison in result.comparisons {
                    let verdict = comparison.passed ? "PASS" : "FAIL"
                    let difference = String(format: "%.3g", comparison.maxAbsoluteDifference)
                    var line = "\(verdict)  \(url.path)  \(comparison.name)  max|Δ| \(difference)  (\(comparison.tolerance))"
                    if !comparison.passed, let detail = comparison.detail { line += "  \(detail)" }
                    output.line(line)
                    if comparison.passed { passed += 1 } else { failed += 1 }
                }
            } catch {
                output.error("glam verify: \(error.description)\n")
                malformed += 1
            }
        }
        output.line("\(passed) passed, \(failed) failed")
        guard fixtures > 0 else {
            output.error("glam verify: no glam fixtures in \(parsed.positionals.joined(separator: " ")) (nothing was checked)\n")
            return 2
        }
        if malformed > 0 { return 2 }
        return failed > 0 ? 1 : 0
    }

    /// Every `*.safetensors` file under `directory`, sorted by path.
    static func fixtureFiles(under directory: URL) -> [URL] {
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        return enumerator.compactMap { $0 as? URL }.filter { $0.pathExtension == "safetensors" }.sorted { $0.path < $1.path }
    }
}
