// Zero-, one- and few-shot evaluation (GPT-3's protocol, which GLaM's Table 2 follows):
//
//   prompt(x) = d₁.context + d₁.answer ⊕ … ⊕ d_k.context + d_k.answer ⊕ x.context,  ⊕ = the task's separator,
//
// with d₁…d_k drawn without replacement from the task's train split by (seed, example index), never
// the example itself. Multiple choice: the prediction is the choice with the largest summed
// log-likelihood (acc) and, separately, the largest log-likelihood per character of the choice
// (acc_norm, lm-eval's normalisation); generation: greedy decoding, cut at the first stop string,
// equal to the target (exact match). Each accuracy comes with the standard error of a mean,
// √(Σ(xᵢ − x̄)² / (n − 1)) / √n, as lm-eval reports it.

import Foundation

/// One task's result at one number of shots.
public struct TaskResult: Sendable, Equatable {
    /// The task's name.
    public let task: String
    /// k, the demonstrations in each prompt.
    public let shots: Int
    /// The examples scored.
    public let count: Int
    /// Multiple choice: the share whose right choice has the largest summed log-likelihood.
    /// Generation: the share whose greedy continuation equals the target.
    public let accuracy: Double
    /// The standard error of `accuracy`.
    public let accuracyStandardError: Double
    /// Multiple choice only: the share whose right choice has the largest log-likelihood per
    /// character (nil for generation).
    public let normalizedAccuracy: Double?
    /// The standard error of `normalizedAccuracy`.
    public let normalizedStandardError: Double?
    /// Per example, in the task's order: whether the prediction (acc) was right.
    public let correct: [Bool]
    /// Multiple choice only: per example, whether the per-character prediction (acc_norm) was right.
    public let normalizedCorrect: [Bool]?
}

/// The index of the largest of `values` (not empty), the first of equal maxima, as numpy's argmax
/// picks.
func firstIndexOfMaximum(_ values: [Double]) -> Int {
    values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }!
}

/// The standard error of the mean of `values`: √(Σ(xᵢ − x̄)² / (n − 1)) / √n (0 for n < 2).
func standardErrorOfMean(_ values: [Double]) -> Double {
    let n = Double(values.count)
    guard values.count >= 2 else { return 0 }
    let mean = values.reduce(0, +) / n
    return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / (n - 1)).squareRoot() / n.squareRoot()
}

extension EvaluationTask {
    /// The prompt of test example `index` with `shots` demonstrations drawn by `seed`.
    ///
    /// - Throws: `EvaluationError` when the train split has fewer than `shots` other examples.
    public func prompt(for index: Int, shots: Int, seed: UInt64) throws(EvaluationError) -> String {
        let example = test[index]
        guard shots > 0 else { return example.context }
        let pool = train.indices.filter { train[$0].id != example.id }
        guard pool.count >= shots else {
            throw EvaluationError("task \(name): \(shots)-shot prompts need \(shots) train examples, it has \(pool.count)")
        }
        // A partial Fisher–Yates shuffle of the pool, by (seed, index).
        var generator = SeededGenerator(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        var order = pool
        for k in 0..<shots {
            let j = k + Int(generator.next() % UInt64(order.count - k))
            order.swapAt(k, j)
        }
        let demonstrations = order.prefix(shots).map { train[$0].context + train[$0].correctContinuation }
        return (demonstrations + [example.context]).joined(separator: separator)
    }

    /// Scores every test example with `scorer` at `shots` demonstrations. Generation examples
    /// decode at most `maximumTokens` tokens. `progress(done, total)` counts scored sequences.
    public func evaluate(
        with scorer: ContinuationScorer, shots: Int, seed: UInt64 = 1234, maximumTokens: Int = 32,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> TaskResult {
        var prompts: [String] = []
        for index in test.indices { prompts.append(try prompt(for: index, shots: shots, seed: seed)) }
        // Every (prompt, choice) of the multiple-choice examples, scored in one call.
        var requests: [(context: String, continuation: String)] = []
        var generations = 0
        for (index, example) in test.enumerated() {
            switch example.answer {
            case .choices(let choices, _): requests += choices.map { (prompts[index], $0) }
            case .target: generations += 1
            }
        }
        let total = requests.count + generations
        let scores = try scorer.score(requests) { done, _ in progress(done, total) }
        var correct: [Bool] = [], normalized: [Bool] = []
        var next = 0, generated = 0
        for (index, example) in test.enumerated() {
            switch example.answer {
            case .choices(let choices, let gold):
                let lls = scores[next..<(next + choices.count)].map(\.logLikelihood)
                next += choices.count
                let best = firstIndexOfMaximum(Array(lls))
                let perCharacter = zip(lls, choices).map { $0 / Double(max($1.unicodeScalars.count, 1)) }
                correct.append(best == gold)
                normalized.append(firstIndexOfMaximum(perCharacter) == gold)
            case .target(let target, let until):
                let text = try scorer.generate(after: prompts[index], until: until, maximumTokens: maximumTokens)
                correct.append(text == target)
                generated += 1
                progress(requests.count + generated, total)
            }
        }
        let hits = correct.map { $0 ? 1.0 : 0.0 }, normalizedHits = normalized.map { $0 ? 1.0 : 0.0 }
        let isChoice = generations == 0
        return TaskResult(
            task: name, shots: shots, count: test.count, accuracy: hits.reduce(0, +) / Double(max(hits.count, 1)),
            accuracyStandardError: standardErrorOfMean(hits),
            normalizedAccuracy: isChoice ? normalizedHits.reduce(0, +) / Double(max(normalizedHits.count, 1)) : nil,
            normalizedStandardError: isChoice ? standardErrorOfMean(normalizedHits) : nil, correct: correct,
            normalizedCorrect: isChoice ? normalized : nil)
    }
}
