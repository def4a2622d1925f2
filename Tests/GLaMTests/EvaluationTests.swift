// In-context evaluation: the committed tasks read, malformed task files are refused by line, k-shot
// prompts are drawn as stated, continuation scores are the log-softmax of the model's own logits
// (recomputed here in Double from one plain forward pass per sequence), and a sequence's score
// does not depend on what it is batched with.

import Foundation
import Testing

@testable import GLaM

struct EvaluationTests {
    static let tasksDirectory = fixturesDirectory.appendingPathComponent("tasks")

    /// A fresh tiny model with the byte-level tokenizer (ids 0…256 fit its vocabulary of 512).
    static func scorer(maximumLength: Int = 1024, batchSize: Int = 8) throws -> ContinuationScorer {
        let parameters = try ModelParameters(configuration: try namedConfiguration("tiny"), seed: 5)
        return try ContinuationScorer(
            parameters: parameters, tokenizer: try BytePairTokenizer(merges: []), maximumLength: maximumLength, batchSize: batchSize)
    }

    /// log p(ids[k+1…] | ids[…k]) by one forward pass of `ids` alone (one group), in Double.
    static func referenceScore(_ scorer: ContinuationScorer, ids: [Int], continuation count: Int) throws -> (Double, Bool) {
        var configuration = scorer.parameters.configuration
        configuration.numGroups = 1
        let model = GLaMModel(configuration: configuration) { scorer.parameters[$0] }.constants
        let t = ids.count - 1
        let output: DecoderOutput<Float> = try model(TokenBatch(batchSize: 1, length: t, tokens: Array(ids.dropLast())))
        let logits = output.logits.value.scalars.map(Double.init)  // [1, T, V]
        let v = configuration.vocabSize
        var total = 0.0
        var greedy = true
        for position in (t - count)..<t {
            let row = Array(logits[(position * v)..<((position + 1) * v)])
            let logSum = Foundation.log(row.map { Foundation.exp($0) }.reduce(0, +))
            total += row[ids[position + 1]] - logSum
            greedy = greedy && row.firstIndex(of: row.max()!) == ids[position + 1]
        }
        return (total, greedy)
    }

    @Test("every committed task reads: ids unique, gold among the choices, as many examples as tasks.json says")
    func committedTasksRead() throws {
        let index = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: Self.tasksDirectory.appendingPathComponent("tasks.json")))
                as? [String: Any])
        let tasks = try #require(index["tasks"] as? [[String: Any]])
        #expect(tasks.count == 3)
        for entry in tasks {
            let name = try #require(entry["name"] as? String)
            let task = try EvaluationTask(directory: Self.tasksDirectory, name: name)
            let sizes = try #require(entry["examples"] as? [String: Int])
            #expect(task.test.count == sizes["test"] && task.train.count == sizes["train"], "\(name)")
            let kind = try #require(entry["kind"] as? String)
            for example in task.test + task.train {
                switch example.answer {
                case .choices(let choices, let gold):
                    #expect(kind == "multiple_choice" && choices.count == 4 && choices.indices.contains(gold))
                case .target(let target, let until): #expect(kind == "generate" && target.hasPrefix(" ") && !until.isEmpty)
                }
            }
            // No test context is also a train context: the splits come from different chapters.
            #expect(Set(task.test.map(\.context)).isDisjoint(with: task.train.map(\.context)), "\(name)")
        }
    }

    @Test("malformed task lines are refused with the file, the line number and the problem")
    func malformedLines() {
        let good = #"{"id": "a", "context": "x", "choices": [" y", " z"], "gold": 1}"#
        let cases: [(String, String)] = [
            ("\(good)\nnot json", ":2: not JSON"),
            (#"[1]"#, ":1: expected an object"),
            (#"{"context": "x", "target": " y"}"#, ":1: missing \"id\""),
            (#"{"id": "a", "context": "x", "choices": [" y"], "gold": 1}"#, ":1: \"gold\" must be an integer in 0...0"),
            (#"{"id": "a", "context": "x", "choices": [" y"], "gold": -1}"#, ":1: \"gold\" must be an integer"),
            (#"{"id": "a", "context": "x", "choices": [], "gold": 0}"#, ":1: \"choices\" is empty"),
            (#"{"id": "a", "context": "x", "choices": [1], "gold": 0}"#, ":1: \"choices\" must hold strings only"),
            (#"{"id": "a", "context": "x"}"#, ":1: an example needs"),
            (#"{"id": "a", "context": "x", "target": " y", "choices": [" y"], "gold": 0}"#, ":1: an example has either"),
            (#"{"id": "a", "context": "x", "target": " y", "until": [""]}"#, ":1: \"until\" holds an empty string"),
            ("\(good)\n\(good)", ":2: id \"a\" appears twice"),
            ("\n \n", "no examples"),
        ]
        for (text, fragment) in cases {
            do {
                let examples = try EvaluationTask.examples(jsonLines: Data(text.utf8), file: "t.jsonl")
                Issue.record("\(text) was read: \(examples)")
            } catch {
                #expect(error.description.contains("t.jsonl") && error.description.contains(fragment), "\(text): \(error)")
            }
        }
        #expect((try? EvaluationTask.examples(jsonLines: Data("\(good)\r\n\n".utf8), file: "t.jsonl"))?.count == 1)
    }

    @Test("k-shot prompts: k distinct train demonstrations, never the example, each with its answer, drawn by the seed")
    func kShotPrompts() throws {
        let train = (0..<6).map { EvaluationExample(id: "t\($0)", context: "C\($0):", answer: .choices([" a\($0)", " b\($0)"], gold: 1)) }
        let test = [EvaluationExample(id: "t2", context: "Q:", answer: .target(" x", until: ["\n"]))]
        let task = EvaluationTask(name: "toy", test: test, train: train, separator: " | ")
        #expect(try task.prompt(for: 0, shots: 0, seed: 1) == "Q:")
        for seed in 0..<20 {
            let prompt = try task.prompt(for: 0, shots: 3, seed: UInt64(seed))
            let parts = prompt.components(separatedBy: " | ")
            #expect(parts.count == 4 && parts.last == "Q:")
            let used = parts.dropLast().map { part in train.first { $0.context + $0.correctContinuation == part }?.id }
            #expect(used.allSatisfy { $0 != nil && $0 != "t2" } && Set(used).count == 3, "\(prompt)")
            #expect(try task.prompt(for: 0, shots: 3, seed: UInt64(seed)) == prompt, "the same seed, the same prompt")
        }
        let prompts = Set(try (0..<20).map { try task.prompt(for: 0, shots: 3, seed: UInt64($0)) })
        #expect(prompts.count > 5, "the seed changes the draw")
        #expect(throws: EvaluationError.self) { try task.prompt(for: 0, shots: 6, seed: 1) }
    }

    @Test("a continuation's score is the log-softmax of the model's logits at its tokens, and whether each is the arg max")
    func scoresAreLogSoftmax() throws {
        let scorer = try Self.scorer()
        let requests = [("In the beginning", " God created"), ("", "And"), ("a", " b"), ("The LORD is my shepherd;", " I shall not want.")]
        let scores = try scorer.score(requests.map { (context: $0.0, continuation: $0.1) })
        for (request, score) in zip(requests, scores) {
            let (ids, count) = scorer.sequence(context: request.0, continuation: request.1)
            #expect(count == request.1.utf8.count && score.tokenCount == count)
            #expect(ids.first == (request.0.isEmpty ? 256 : Int(request.0.utf8.first!)), "an empty context starts with end of text")
            let (expected, greedy) = try Self.referenceScore(scorer, ids: ids, continuation: count)
            #expect(
                abs(score.logLikelihood - expected) <= 1e-4 * max(1, abs(expected)), "\(request): \(score.logLikelihood) vs \(expected)")
            #expect(score.isGreedy == greedy && score.logLikelihood < 0)
        }
    }

    @Test("each sequence is its own routing group: its score has the same bits alone, in any batch, in any order")
    func scoresDoNotDependOnTheBatch() throws {
        let requests = (0..<7).map { (context: "line \($0 % 3) of the text", continuation: " word \($0)") }
        let together = try Self.scorer(batchSize: 8).score(requests)
        let alone = try requests.flatMap { try Self.scorer(batchSize: 1).score([$0]) }
        let reversed = try Self.scorer(batchSize: 3).score(requests.reversed()).reversed()
        #expect(together.map(\.logLikelihood.bitPattern) == alone.map(\.logLikelihood.bitPattern))
        #expect(together.map(\.logLikelihood.bitPattern) == reversed.map(\.logLikelihood.bitPattern))
        #expect(together.map(\.isGreedy) == alone.map(\.isGreedy))
    }

    @Test("a sequence over the maximum length loses context from the left, and scores as the cut sequence does")
    func longContextsAreCutFromTheLeft() throws {
        // At every length around the limit: at most T + 1 ids (T inputs predicting T tokens), the
        // last ones the continuation's, the first ones cut.
        let bounded = try Self.scorer(maximumLength: 8)
        for contextLength in 1...12 {
            let context = String(repeating: "a", count: contextLength)
            let (ids, count) = bounded.sequence(context: context, continuation: "bc")
            #expect(ids.count == min(contextLength + 2, 9) && count == 2, "context of \(contextLength): \(ids.count) ids")
        }
        let scorer = try Self.scorer(maximumLength: 16)
        let (ids, count) = scorer.sequence(context: String(repeating: "abcdefgh", count: 4), continuation: " xyz")
        #expect(ids.count == 17 && count == 4 && ids.suffix(4) == Array(" xyz".utf8).map(Int.init))
        let cut = try scorer.score([(context: String(String(repeating: "abcdefgh", count: 4).suffix(13)), continuation: " xyz")])
        let long = try scorer.score([(context: String(repeating: "abcdefgh", count: 4), continuation: " xyz")])
        #expect(cut == long)
    }

    @Test("a task's accuracy is the share of examples whose gold choice scores best; acc_norm divides by characters")
    func accuracyFromScores() throws {
        let scorer = try Self.scorer()
        let task = try EvaluationTask(directory: Self.tasksDirectory, name: "kjv_next_verse")
        let small = EvaluationTask(name: task.name, test: Array(task.test.prefix(6)), train: task.train, separator: task.separator)
        let result = try small.evaluate(with: scorer, shots: 1, seed: 7)
        var hits: [Double] = [], normalizedHits: [Double] = []
        for index in small.test.indices {
            guard case .choices(let choices, let gold) = small.test[index].answer else { Issue.record("not multiple choice"); return }
            let prompt = try small.prompt(for: index, shots: 1, seed: 7)
            let lls = try scorer.score(choices.map { (context: prompt, continuation: $0) }).map(\.logLikelihood)
            hits.append(lls.firstIndex(of: lls.max()!) == gold ? 1 : 0)
            let normalized = zip(lls, choices).map { $0 / Double($1.unicodeScalars.count) }
            normalizedHits.append(normalized.firstIndex(of: normalized.max()!) == gold ? 1 : 0)
        }
        let mean = hits.reduce(0, +) / 6
        #expect(result.count == 6 && result.shots == 1 && result.accuracy == mean)
        #expect(result.correct == hits.map { $0 == 1 })
        #expect(result.normalizedAccuracy == normalizedHits.reduce(0, +) / 6)
        #expect(result.normalizedCorrect == normalizedHits.map { $0 == 1 })
        // The standard error of a mean of 0/1 values: √(p(1 − p) · n / (n − 1)) / √n.
        #expect(abs(result.accuracyStandardError - (mean * (1 - mean) * 6 / 5).squareRoot() / 6.0.squareRoot()) < 1e-12)
    }

    @Test("the standard error of a mean: the sample standard deviation over √n; 0 for fewer than two values, never NaN")
    func standardErrors() {
        #expect(standardErrorOfMean([]) == 0 && standardErrorOfMean([0.75]) == 0)
        // [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, sample variance 14 / 3.
        #expect(abs(standardErrorOfMean([1, 2, 3, 6]) - (14.0 / 3).squareRoot() / 2) < 1e-15)
        #expect(standardErrorOfMean([5, 5]) == 0)
    }

    @Test("the chosen answer is the first of equal maxima (numpy's argmax), wherever the maxima stand")
    func firstMaximum() {
        #expect(firstIndexOfMaximum([1, 3, 3, 2]) == 1 && firstIndexOfMaximum([5, 5]) == 0 && firstIndexOfMaximum([-2]) == 0)
        #expect(firstIndexOfMaximum([-4, -1, -3, -1, -1]) == 1 && firstIndexOfMaximum([0, 0, 0, 7]) == 3)
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<200 {
            // Few distinct values, so that ties are common.
            let values = (0..<Int(generator.next() % 6 + 1)).map { _ in Double(generator.next() % 3) }
            #expect(firstIndexOfMaximum(values) == values.firstIndex(of: values.max()!)!, "\(values)")
        }
    }

    @Test("generation: greedy, cut at the first stop string, exact match against the target")
    func generationExactMatch() throws {
        let scorer = try Self.scorer()
        let context = "And God said, Let there be"
        let free = try scorer.generate(after: context, until: [], maximumTokens: 6)
        #expect(free.unicodeScalars.count <= 6, "at most one character per byte token")
        // Cut before the first occurrence of any stop string, whichever comes first.
        if let first = free.first {
            #expect(try scorer.generate(after: context, until: [String(first)], maximumTokens: 6) == "")
        }
        let task = EvaluationTask(
            name: "echo", test: [EvaluationExample(id: "0", context: context, answer: .target(free, until: []))])
        let result = try task.evaluate(with: scorer, shots: 0, maximumTokens: 6)
        #expect(result.accuracy == 1 && result.correct == [true] && result.normalizedAccuracy == nil)
        let wrong = EvaluationTask(
            name: "echo", test: [EvaluationExample(id: "0", context: context, answer: .target(free + "!", until: []))])
        #expect(try wrong.evaluate(with: scorer, shots: 0, maximumTokens: 6).accuracy == 0)
    }
}

extension EvaluationTests {
    @Test("glam eval reports the library's accuracies per task and shots, as text and JSON, and refuses bad input with exit 2")
    func commandLine() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let checkpoint = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        let common = ["eval", "--checkpoint", checkpoint.path, "--tasks", Self.tasksDirectory.path, "--limit", "3"]
        let output = scratch.path("results.json")
        let json = runGlam(common + ["--task", "kjv_next_verse,kjv_last_word", "--shots", "0,1", "--json", "--output", output.path])
        try #require(json.status == 0, "\(json.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let written = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: output)) as? [String: Any])
        #expect(NSDictionary(dictionary: object) == NSDictionary(dictionary: written), "--output holds what --json prints")
        #expect(try Data(contentsOf: output) == Data(json.out.utf8), "--output holds the bytes --json prints, its newline too")
        let results = try #require(object["results"] as? [[String: Any]])
        #expect(
            results.map { "\($0["task"] ?? "") \($0["shots"] ?? "")" } == [
                "kjv_next_verse 0", "kjv_next_verse 1", "kjv_last_word 0", "kjv_last_word 1",
            ])
        // The same numbers from the library, on the same checkpoint.
        let scorer = try ContinuationScorer(parameters: trainer.parameters, tokenizer: trainer.tokenizer)
        for entry in results {
            let name = try #require(entry["task"] as? String), shots = try #require(entry["shots"] as? Int)
            let full = try EvaluationTask(directory: Self.tasksDirectory, name: name)
            let task = EvaluationTask(name: name, test: Array(full.test.prefix(3)), train: full.train, separator: full.separator)
            let expected = try task.evaluate(with: scorer, shots: shots, seed: 1234)
            #expect(entry["count"] as? Int == 3 && entry["acc"] as? Double == expected.accuracy, "\(name) \(shots)")
            #expect(entry["acc_stderr"] as? Double == expected.accuracyStandardError, "\(name) \(shots)")
            #expect((entry["acc_norm"] as? Double) == expected.normalizedAccuracy, "\(name) \(shots)")
            #expect(entry["correct"] as? [Bool] == expected.correct, "\(name) \(shots)")
            #expect(entry["correct_norm"] as? [Bool] == expected.normalizedCorrect, "\(name) \(shots)")
        }
        let text = runGlam(common + ["--task", "kjv_continuation", "--shots", "0"])
        #expect(text.status == 0 && text.out.contains("kjv_continuation") && text.out.contains(" ± "), "\(text.err)")
        #expect(text.err.contains("kjv_continuation 0-shot: done"))
        for (arguments, fragment) in [
            (["eval"], "--checkpoint FILE is required"),
            (common + ["--task", "nope"], "no task 'nope'"),
            (["eval", "--checkpoint", checkpoint.path, "--tasks", scratch.path("empty").path], "no tasks in"),
            (
                ["eval", "--checkpoint", scratch.path("missing.safetensors").path, "--tasks", Self.tasksDirectory.path],
                "missing.safetensors"
            ),
            (common + ["--output", checkpoint.path], checkpoint.lastPathComponent),
            (common + ["--shots", "0,0"], "--shots"),
        ] {
            let refused = runGlam(arguments)
            #expect(refused.status == 2 && refused.err.contains(fragment), "\(arguments): \(refused.err)")
        }
    }
}

extension EvaluationTests {
    @Test("a text's rolling log-likelihood: after end of text, in windows of the maximum length, each after the tokens before it that fit")
    func rollingWindows() throws {
        let whole = try Self.scorer()
        let text = "abcdefghij"
        #expect(try whole.rollingLogLikelihood(of: text) == whole.score([(context: "", continuation: text)])[0].logLikelihood)
        let windowed = try Self.scorer(maximumLength: 4)
        let parts = try windowed.score([
            (context: "", continuation: "abcd"), (context: "d", continuation: "efgh"), (context: "fgh", continuation: "ij"),
        ])
        #expect(try windowed.rollingLogLikelihood(of: text) == parts.map(\.logLikelihood).reduce(0, +))
        #expect(try windowed.rollingLogLikelihood(of: "") == 0)
    }

    @Test("glam eval --requests answers a harness's requests in order, with the library's numbers")
    func harnessRequests() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let checkpoint = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        let requests: [[String: Any]] = [
            ["request": "loglikelihood", "context": "The hacker", "continuation": " wrote"],
            ["request": "generate_until", "context": "The hacker", "until": ["\n", "."], "max_tokens": 5],
            ["request": "loglikelihood_rolling", "text": "A hacker is a person."],
            ["request": "loglikelihood", "context": "", "continuation": "Hello"],
        ]
        let file = scratch.path("requests.jsonl")
        try Data(requests.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) + "\n" }.joined().utf8)
            .write(to: file)
        let result = runGlam(["eval", "--checkpoint", checkpoint.path, "--requests", file.path])
        try #require(result.status == 0, "\(result.err)")
        let answers = try result.out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        try #require(answers.count == 4)
        let scorer = try ContinuationScorer(parameters: trainer.parameters, tokenizer: trainer.tokenizer)
        let scores = try scorer.score([(context: "The hacker", continuation: " wrote"), (context: "", continuation: "Hello")])
        func near(_ x: Any?, _ y: Double) -> Bool { (x as? Double).map { abs($0 - y) <= 1e-12 * max(1, abs(y)) } ?? false }
        #expect(near(answers[0]["loglikelihood"], scores[0].logLikelihood) && answers[0]["is_greedy"] as? Bool == scores[0].isGreedy)
        #expect(answers[1]["text"] as? String == (try scorer.generate(after: "The hacker", until: ["\n", "."], maximumTokens: 5)))
        #expect(near(answers[2]["loglikelihood"], try scorer.rollingLogLikelihood(of: "A hacker is a person.")))
        #expect(near(answers[3]["loglikelihood"], scores[1].logLikelihood))
        for (line, fragment) in [
            (#"{"request": "perplexity"}"#, ":1: \"request\" must be"),
            (#"{"request": "loglikelihood", "context": "a"}"#, ":1: \"continuation\" must be a string"),
            (#"{"request": "generate_until", "context": "a", "max_tokens": 0}"#, "\"max_tokens\" must be"),
            ("[1]", ":1: not a JSON object"),
        ] {
            try Data((line + "\n").utf8).write(to: file)
            let refused = runGlam(["eval", "--checkpoint", checkpoint.path, "--requests", file.path])
            #expect(refused.status == 2 && refused.err.contains(fragment), "\(line): \(refused.err)")
        }
        #expect(runGlam(["eval", "--checkpoint", checkpoint.path, "--requests", file.path, "--shots", "1"]).err.contains("does not apply"))
    }

    @Test("progress counts every scored sequence once: choices and generations, never past the total, ending at it")
    func progressCountsEverySequence() throws {
        let scorer = try Self.scorer()
        let examples = [
            EvaluationExample(id: "0", context: "In the", answer: .choices([" beginning", " end", " middle"], gold: 0)),
            EvaluationExample(id: "1", context: "And God", answer: .target(" said", until: ["\n"])),
            EvaluationExample(id: "2", context: "Let there", answer: .choices([" be", " not"], gold: 0)),
            EvaluationExample(id: "3", context: "light", answer: .target(" and", until: [])),
        ]
        for test in [examples, examples.filter { if case .target = $0.answer { false } else { true } }, [examples[1]]] {
            var calls: [(Int, Int)] = []
            _ = try EvaluationTask(name: "mixed", test: test).evaluate(with: scorer, shots: 0, maximumTokens: 2) { calls.append(($0, $1)) }
            let total = test.reduce(0) {
                if case .choices(let choices, _) = $1.answer { return $0 + choices.count }
                return $0 + 1
            }
            #expect(calls.allSatisfy { $0.1 == total } && calls.last.map { $0.0 == total } == true, "\(calls) of \(total)")
            #expect(zip(calls, calls.dropFirst()).allSatisfy { $0.0 <= $1.0 } && calls.allSatisfy { $0.0 >= 0 && $0.0 <= total })
        }
    }

    @Test("the sizes' smallest values work and the next smaller are refused: a window of 1 scores the last token on the one before")
    func smallestSizes() throws {
        let one = try Self.scorer(maximumLength: 1, batchSize: 1)
        let (ids, count) = one.sequence(context: "ab", continuation: "c")
        #expect(ids == [98, 99] && count == 1)
        let score = try #require(try one.score([(context: "ab", continuation: "c")]).first)
        let (reference, greedy) = try Self.referenceScore(one, ids: ids, continuation: 1)
        #expect(abs(score.logLikelihood - reference) <= 1e-5 * max(1, abs(reference)) && score.isGreedy == greedy)
        for (length, batch) in [(0, 1), (1, 0), (-1, 8)] {
            #expect(throws: ModelError("maximum length and batch size must be at least 1, got \(length) and \(batch)")) {
                _ = try Self.scorer(maximumLength: length, batchSize: batch)
            }
        }
    }

    @Test("a generate_until request's max_tokens takes 1 through 4096, as the message says, and nothing outside")
    func maximumTokensBounds() throws {
        let scratch = ScratchDirectory()
        let trainer = try tinyTrainer(steps: 1)
        let checkpoint = scratch.path("checkpoint.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        // Every printable character stops the generation: it ends after a few tokens whatever the limit.
        let until = (32..<127).map { String(UnicodeScalar(UInt8($0))) } + ["\n"]
        for (count, accepted) in [(1, true), (4096, true), (0, false), (4097, false)] {
            let request: [String: Any] = ["request": "generate_until", "context": "The", "until": until, "max_tokens": count]
            let file = scratch.path("requests-\(count).jsonl")
            try Data(JSONSerialization.data(withJSONObject: request) + [10]).write(to: file)
            let result = runGlam(["eval", "--checkpoint", checkpoint.path, "--requests", file.path])
            if accepted {
                #expect(result.status == 0 && result.out.split(separator: "\n").count == 1, "\(count): \(result.err)")
            } else {
                #expect(
                    result.status == 2 && result.err.contains(":1: \"max_tokens\" must be an integer in 1...4096"),
                    "\(count): \(result.err)")
            }
        }
    }
}
