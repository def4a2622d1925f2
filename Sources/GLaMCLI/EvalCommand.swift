// `glam eval`: zero-, one- and few-shot evaluation of a checkpoint on in-context tasks (GPT-3's
// protocol, which GLaM's headline results follow), with the library's EvaluationTask and
// ContinuationScorer (Sources/GLaM/Evaluation).

import Foundation
import GLaM

enum EvalCommand: Subcommand {
    static let name = "eval"
    static let summary = "Zero-, one- and few-shot accuracy of a checkpoint on in-context tasks."
    /// Every option's default, stated once: used by `run` and printed by `help`.
    static let defaults = (
        tasks: "Fixtures/tasks", shots: [0, 1], seed: 1234, batch: 8, maximumLength: 1024, maximumTokens: 32
    )
    static let help = """
        USAGE: glam eval --checkpoint FILE [--tasks DIR] [--task NAME[,NAME…]] [--shots K[,K…]] [--limit N]
                         [--seed S] [--batch B] [--max-length T] [--max-tokens N] [--output FILE] [--json]
               glam eval --checkpoint FILE --requests FILE [--batch B] [--max-length T] [--output FILE]

        Evaluates a checkpoint on each task of DIR (default \(defaults.tasks): the tasks its tasks.json
        lists, or every NAME/test.jsonl) at each number of shots K (default \(defaults.shots.map(String.init).joined(separator: ","))), as GPT-3 and GLaM do:
          a k-shot prompt is k demonstrations from the task's train split (drawn by --seed S, default
          \(defaults.seed), never the example itself), each its context and right answer, joined by the
          task's separator and followed by the example's context;
          multiple choice: the choice with the largest summed log-likelihood (acc) and the largest
          log-likelihood per character (acc_norm);
          generation: greedy decoding of at most N tokens (default \(defaults.maximumTokens)), cut at the first
          stop string, equal to the target (exact match).
        Each sequence is routed as its own group, so a score does not depend on the batch; sequences
        of equal length run B at a time (default \(defaults.batch)); a prompt over T tokens (default \(defaults.maximumLength)) loses
        its oldest tokens. --limit N scores the first N test examples of each task.

        Prints per task and K the accuracy ± its standard error (√(Σ(xᵢ − x̄)² / (n − 1)) / √n);
        --json prints one JSON object instead (with, per example in order, whether it was right:
        "correct", and "correct_norm" for acc_norm); --output FILE also writes it (atomically). Progress
        goes to standard error. The task format: Fixtures/tasks/SOURCE.md.

        --requests FILE answers the requests of a harness instead (Scripts/eval/glam_lm.py, the
        adapter for EleutherAI's lm-eval), one JSON object per line, in order, on standard output or
        in --output FILE:
          {"request": "loglikelihood", "context": C, "continuation": X}  → {"loglikelihood": ll, "is_greedy": b}
          {"request": "loglikelihood_rolling", "text": X}                → {"loglikelihood": ll}
          {"request": "generate_until", "context": C, "until": [S…], "max_tokens": N} → {"text": T}
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "eval",
            options: [
                "checkpoint", "tasks", "task", "shots", "limit", "seed", "batch", "max-length", "max-tokens", "output", "requests",
            ],
            flags: ["json"])
        guard parsed.positionals.isEmpty else { throw UsageError("eval: unexpected argument '\(parsed.positionals[0])'") }
        guard let path = parsed.value("checkpoint") else { throw UsageError("eval: --checkpoint FILE is required") }
        let checkpointURL = URL(fileURLWithPath: path)
        let outputURL = try parsed.outputFile("output", protecting: [checkpointURL])
        let shots = try parsed.distinctIntegerList("shots", in: 0...64) ?? defaults.shots
        let limit = try parsed.integer("limit", in: 1...1_000_000)
        let seed = try parsed.integer("seed", in: 0...Int.max) ?? defaults.seed
        let batch = try parsed.integer("batch", in: 1...1024) ?? defaults.batch
        let maximumLength = try parsed.integer("max-length", in: 1...65536) ?? defaults.maximumLength
        let maximumTokens = try parsed.integer("max-tokens", in: 1...4096) ?? defaults.maximumTokens
        if let requests = parsed.value("requests") {
            for option in ["tasks", "task", "shots", "limit", "seed", "max-tokens"] where parsed.value(option) != nil {
                throw UsageError("eval: --\(option) does not apply to --requests (each request says what it needs)")
            }
            if parsed.has("json") { throw UsageError("eval: --requests always answers in JSON lines") }
            let scorer = try Self.scorer(checkpoint: checkpointURL, maximumLength: maximumLength, batchSize: batch).scorer
            let lines = try answer(requestsAt: URL(fileURLWithPath: requests), with: scorer)
            let text = lines.map { $0 + "\n" }.joined()
            if let outputURL {
                try FileAccess.writeAtomically(Data(text.utf8), to: outputURL, protecting: [checkpointURL])
            } else {
                output.standard(text)
            }
            return 0
        }
        let directory = URL(fileURLWithPath: parsed.value("tasks") ?? defaults.tasks)
        let (names, separators) = try taskNames(in: directory)
        var chosen = names
        if let wanted = parsed.value("task") {
            chosen = wanted.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if let unknown = chosen.first(where: { !names.contains($0) }) {
                throw UsageError("eval: no task '\(unknown)' in \(directory.path) (it has \(names.joined(separator: ", ")))")
            }
        }
        let (checkpoint, scorer) = try Self.scorer(checkpoint: checkpointURL, maximumLength: maximumLength, batchSize: batch)
        var tasks: [EvaluationTask] = []
        for name in chosen {
            do {
                var task = try EvaluationTask(directory: directory, name: name, separator: separators[name] ?? "\n\n")
                if let limit {
                    task = EvaluationTask(name: name, test: Array(task.test.prefix(limit)), train: task.train, separator: task.separator)
                }
                tasks.append(task)
            } catch {
                throw UsageError("eval: \(error.description)")
            }
        }
        var results: [TaskResult] = []
        for task in tasks {
            for k in shots {
                let label = "\(task.name) \(k)-shot"
                let result: TaskResult
                do {
                    result = try task.evaluate(with: scorer, shots: k, seed: UInt64(seed), maximumTokens: maximumTokens) { done, total in
                        output.error("\r  \(label): \(done)/\(total)")
                    }
                } catch {
                    throw UsageError("eval: \(error)")
                }
                output.error("\r  \(label): done\(String(repeating: " ", count: 12))\n")
                results.append(result)
            }
        }
        let object = resultsObject(results, checkpoint: path, step: checkpoint.step, seed: seed)
        let json = JSONText.line(object)
        if let outputURL {
            try FileAccess.writeAtomically(Data((json + "\n").utf8), to: outputURL, protecting: [checkpointURL])
        }
        if parsed.has("json") {
            output.line(json)
            return 0
        }
        output.line("\(path)\(checkpoint.step.map { " (step \($0))" } ?? ""), seed \(seed):")
        output.line("  task                 shots       n   acc              acc_norm")
        for result in results {
            let accuracy = String(format: "%.4f ± %.4f", result.accuracy, result.accuracyStandardError)
            let normalized =
                result.normalizedAccuracy.map {
                    String(format: "%.4f ± %.4f", $0, result.normalizedStandardError ?? 0)
                } ?? "—"
            output.line(
                "  " + result.task.padding(toLength: 20, withPad: " ", startingAt: 0) + " "
                    + String(format: "%5d  %6d", result.shots, result.count) + "   " + accuracy + "  " + normalized)
        }
        return 0
    }

    /// The model file or training checkpoint at `url` and a scorer of its model.
    static func scorer(checkpoint url: URL, maximumLength: Int, batchSize: Int) throws -> (
        checkpoint: ModelFile, scorer: ContinuationScorer
    ) {
        do {
            let model = try ModelFile(contentsOf: url)
            let scorer = try ContinuationScorer(
                parameters: model.parameters, tokenizer: try model.requireTokenizer(for: "eval"), maximumLength: maximumLength,
                batchSize: batchSize)
            return (model, scorer)
        } catch {
            throw UsageError("eval: \(error.description)")
        }
    }

    /// The answers to a file of harness requests, one JSON text per request, in order.
    static func answer(requestsAt url: URL, with scorer: ContinuationScorer) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw UsageError("eval: cannot read the requests \(url.path)")
        }
        enum Request {
            case loglikelihood(Int)  // index into the batched (context, continuation) pairs
            case rolling(String)
            case generate(context: String, until: [String], maximumTokens: Int)
        }
        var requests: [Request] = [], pairs: [(context: String, continuation: String)] = []
        for (number, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
            func fail(_ message: String) -> UsageError { UsageError("eval: \(url.path):\(number + 1): \(message)") }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            func text(_ key: String) throws -> String {
                guard let value = object[key] as? String else { throw fail("\"\(key)\" must be a string") }
                return value
            }
            switch object["request"] as? String {
            case "loglikelihood":
                requests.append(.loglikelihood(pairs.count))
                pairs.append((try text("context"), try text("continuation")))
            case "loglikelihood_rolling":
                requests.append(.rolling(try text("text")))
            case "generate_until":
                guard let until = (object["until"] ?? [String]()) as? [String], !until.contains("") else {
                    throw fail("\"until\" must be an array of non-empty strings")
                }
                guard let count = object["max_tokens"] as? Int, (1...4096).contains(count) else {
                    throw fail("\"max_tokens\" must be an integer in 1...4096")
                }
                requests.append(.generate(context: try text("context"), until: until, maximumTokens: count))
            default:
                throw fail("\"request\" must be loglikelihood, loglikelihood_rolling or generate_until")
            }
        }
        do {
            let scores = try scorer.score(pairs)
            return try requests.map { request -> String in
                switch request {
                case .loglikelihood(let index):
                    return JSONText.line(["loglikelihood": scores[index].logLikelihood, "is_greedy": scores[index].isGreedy])
                case .rolling(let text):
                    return JSONText.line(["loglikelihood": try scorer.rollingLogLikelihood(of: text)])
                case .generate(let context, let until, let count):
                    return JSONText.line(["text": try scorer.generate(after: context, until: until, maximumTokens: count)])
                }
            }
        } catch {
            throw UsageError("eval: \(error)")
        }
    }

    /// The tasks of `directory`: those its tasks.json lists (with their few-shot separators), or
    /// else every subdirectory holding a test.jsonl, sorted.
    static func taskNames(in directory: URL) throws -> (names: [String], separators: [String: String]) {
        let index = directory.appendingPathComponent("tasks.json")
        if let data = FileManager.default.contents(atPath: index.path) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let entries = object["tasks"] as? [[String: Any]]
            else {
                throw UsageError("eval: \(index.path) is not a JSON object with a \"tasks\" array")
            }
            var names: [String] = [], separators: [String: String] = [:]
            for entry in entries {
                guard let name = entry["name"] as? String, !name.isEmpty, !name.contains("/") else {
                    throw UsageError("eval: \(index.path): a task without a valid \"name\"")
                }
                names.append(name)
                if let separator = entry["fewshot_separator"] as? String { separators[name] = separator }
            }
            guard !names.isEmpty else { throw UsageError("eval: \(index.path) lists no task") }
            return (names, separators)
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let names = contents.filter {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).appendingPathComponent("test.jsonl").path)
        }.sorted()
        guard !names.isEmpty else { throw UsageError("eval: no tasks in \(directory.path) (no tasks.json, no NAME/test.jsonl)") }
        return (names, [:])
    }

    /// The results JSON: the checkpoint, the seed, and per task and shots the accuracies.
    static func resultsObject(_ results: [TaskResult], checkpoint: String, step: Int?, seed: Int) -> [String: Any] {
        [
            "checkpoint": checkpoint, "step": step.map { $0 as Any } ?? NSNull(), "seed": seed, "glam_version": glamVersion,
            "results": results.map { result -> [String: Any] in
                var entry: [String: Any] = [
                    "task": result.task, "shots": result.shots, "count": result.count, "acc": result.accuracy,
                    "acc_stderr": result.accuracyStandardError, "correct": result.correct,
                ]
                if let normalized = result.normalizedAccuracy {
                    entry["acc_norm"] = normalized
                    entry["acc_norm_stderr"] = result.normalizedStandardError ?? 0
                    entry["correct_norm"] = result.normalizedCorrect ?? []
                }
                return entry
            },
        ]
    }
}
