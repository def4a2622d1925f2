// In-context evaluation tasks (GPT-3's protocol, which GLaM follows): examples read from JSON Lines,
// one object per line, either multiple choice (rank the choices by likelihood) or generation
// (greedy, exact match). The committed tasks and their format: Fixtures/tasks/SOURCE.md.

import Foundation

/// A task file or example that cannot be read: which file, which line, and what is wrong.
public struct EvaluationError: Error, CustomStringConvertible, Equatable {
    /// The message.
    public let description: String
    /// An error with `message`.
    public init(_ message: String) { description = message }
}

/// One evaluation example: a context and what should follow it.
public struct EvaluationExample: Sendable, Equatable {
    /// What should follow the context.
    public enum Answer: Sendable, Equatable {
        /// Rank classification: `choices[gold]` is right; each choice is appended to the context as
        /// it is (so it carries its own leading space).
        case choices([String], gold: Int)
        /// Generation: greedy decoding, cut at the first of `until`, must equal `target` exactly.
        case target(String, until: [String])
    }

    /// The example's id, unique within its file.
    public let id: String
    /// The text the model reads.
    public let context: String
    /// The right continuation, or the choices among which it is.
    public let answer: Answer

    /// An example.
    public init(id: String, context: String, answer: Answer) {
        self.id = id
        self.context = context
        self.answer = answer
    }

    /// The right continuation: the gold choice or the target (what a k-shot demonstration shows).
    public var correctContinuation: String {
        switch answer {
        case .choices(let choices, let gold): choices[gold]
        case .target(let target, _): target
        }
    }
}

/// A task: test examples, and train examples from which k-shot demonstrations are drawn.
public struct EvaluationTask: Sendable, Equatable {
    /// The task's name.
    public let name: String
    /// The examples scored.
    public let test: [EvaluationExample]
    /// The examples k-shot prompts draw from (may be empty for zero-shot only).
    public let train: [EvaluationExample]
    /// What joins demonstrations and the test context in a k-shot prompt.
    public let separator: String

    /// A task from its examples.
    public init(name: String, test: [EvaluationExample], train: [EvaluationExample] = [], separator: String = "\n\n") {
        self.name = name
        self.test = test
        self.train = train
        self.separator = separator
    }

    /// The task `name` of a directory laid out as Fixtures/tasks: `name/test.jsonl` and, when
    /// present, `name/train.jsonl`.
    public init(directory: URL, name: String, separator: String = "\n\n") throws(EvaluationError) {
        func read(_ split: String) throws(EvaluationError) -> [EvaluationExample]? {
            let url = directory.appendingPathComponent(name).appendingPathComponent("\(split).jsonl")
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            let data: Data
            do {
                data = try Data(contentsOf: url)
            } catch {
                throw EvaluationError("\(url.path): cannot be read (\(error.localizedDescription))")
            }
            return try Self.examples(jsonLines: data, file: url.path)
        }
        guard let test = try read("test") else {
            throw EvaluationError("task \(name): no \(name)/test.jsonl in \(directory.path)")
        }
        self.init(name: name, test: test, train: try read("train") ?? [], separator: separator)
    }

    /// The examples of a JSON Lines text (blank lines skipped). Every line must be an object with
    /// a string `id` and `context` and either `choices` (strings) with an integer `gold` among
    /// them, or a string `target` with optional `until` (strings); ids must be unique.
    public static func examples(jsonLines data: Data, file: String) throws(EvaluationError) -> [EvaluationExample] {
        var examples: [EvaluationExample] = []
        var seen = Set<String>()
        for (number, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let bytes = Array(line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...])
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            func fail(_ message: String) -> EvaluationError { EvaluationError("\(file):\(number + 1): \(message)") }
            let value: StrictJSONValue
            do {
                value = try parseStrictJSON(bytes)
            } catch {
                throw fail("not JSON: \(error.description)")
            }
            guard case .object(let members) = value else { throw fail("expected an object, got \(value.kind)") }
            var fields: [String: StrictJSONValue] = [:]
            for (key, member) in members { fields[key] = member }
            func string(_ key: String) throws(EvaluationError) -> String {
                guard let member = fields[key] else { throw fail("missing \"\(key)\"") }
                guard case .string(let text) = member else { throw fail("\"\(key)\" must be a string, got \(member.kind)") }
                return text
            }
            func strings(_ key: String) throws(EvaluationError) -> [String]? {
                guard let member = fields[key] else { return nil }
                guard case .array(let items) = member else { throw fail("\"\(key)\" must be an array of strings, got \(member.kind)") }
                var texts: [String] = []
                for item in items {
                    guard case .string(let text) = item else { throw fail("\"\(key)\" must hold strings only, got \(item.kind)") }
                    texts.append(text)
                }
                return texts
            }
            let id = try string("id"), context = try string("context")
            guard seen.insert(id).inserted else { throw fail("id \"\(id)\" appears twice") }
            let answer: EvaluationExample.Answer
            if let choices = try strings("choices") {
                guard fields["target"] == nil else { throw fail("an example has either \"choices\" or \"target\", not both") }
                guard !choices.isEmpty else { throw fail("\"choices\" is empty") }
                guard let member = fields["gold"] else { throw fail("missing \"gold\"") }
                guard case .integer(let gold) = member, gold < UInt64(choices.count) else {
                    throw fail("\"gold\" must be an integer in 0...\(choices.count - 1), got \(member.kind)")
                }
                answer = .choices(choices, gold: Int(gold))
            } else if fields["target"] != nil {
                let until = try strings("until") ?? []
                guard !until.contains("") else { throw fail("\"until\" holds an empty string") }
                answer = .target(try string("target"), until: until)
            } else {
                throw fail("an example needs \"choices\" and \"gold\", or \"target\"")
            }
            examples.append(EvaluationExample(id: id, context: context, answer: answer))
        }
        guard !examples.isEmpty else { throw EvaluationError("\(file): no examples") }
        return examples
    }
}
