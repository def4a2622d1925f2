// `glam compare`: the paper's central claim in miniature — at equal activated compute per token, a
// mixture-of-experts model reaches a lower validation loss than a dense one trained on the same
// tokens (Du et al. 2021, Fig. 3 and 4).

import Foundation
import GLaM

enum CompareCommand: Subcommand {
    static let name = "compare"
    static let summary = "Train a dense and a MoE model with equal activated FLOPs; compare validation loss."
    static let help = """
        USAGE: glam compare [--steps N] [--batch B] [--length T] [--evaluate-every N] [--seed S]
                            [--corpus FILE] [--output DIR] [--experts E]

        Trains two models on the same tokens in the same order with the same seed and schedule:
          dense: 'small-dense' (M 256, 4 layers, gated-GELU FFN H 512 in every layer)
          MoE:   the same with layers 0 and 2 replaced by E experts (default 8) of hidden size
                 3H/4 = 384, top-2 gating, capacity factor 2.
        A token's MoE layer then costs top-2 × 2·M·384 = 3·M·512 multiply-adds, exactly a dense GLU
        layer's, so both models have the same activated FLOPs per token (up to the router's M·E).
        Training FLOPs per token are counted as 3 × forward, forward = 2 × (activated matrix
        parameters outside the embedding lookup, plus the output projection V·M) + 4·T·N·D per layer
        for attention scores and values.

        Prints validation cross-entropy against training FLOPs for both as a table and writes
        DIR/compare.svg and DIR/compare.jsonl (default DIR: runs/compare).
        Defaults: 300 steps, B = 8, T = 128, validation every 50 steps, seed 0.
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "compare", options: ["steps", "batch", "length", "evaluate-every", "seed", "corpus", "output", "experts"],
            flags: [])
        guard parsed.positionals.isEmpty else { throw UsageError("compare: unexpected argument '\(parsed.positionals[0])'") }
        var options = TrainingOptions()
        options.steps = try parsed.integer("steps", in: 1...10_000_000) ?? 300
        options.batchSize = try parsed.integer("batch", in: 1...4096) ?? 8
        options.sequenceLength = try parsed.integer("length", in: 2...65536) ?? 128
        options.evaluateEvery = try parsed.integer("evaluate-every", in: 1...10_000_000) ?? 50
        options.seed = UInt64(try parsed.integer("seed", in: 0...Int.max) ?? 0)
        let experts = try parsed.integer("experts", in: 2...1024) ?? 8
        let corpusPath = parsed.value("corpus") ?? "Fixtures/corpus/jargon-4.4.7.txt"
        guard let corpus = try? String(contentsOfFile: corpusPath, encoding: .utf8) else {
            throw UsageError("compare: cannot read the corpus at \(corpusPath) (run from the repository root or pass --corpus FILE)")
        }
        let directory = URL(fileURLWithPath: parsed.value("output") ?? "runs/compare")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let dense = ModelConfiguration.named("small-dense")!
        var moe = dense
        moe.numExperts = experts
        moe.moeHiddenDim = dense.ffDim * 3 / 4
        let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: corpus), vocabularySize: dense.vocabSize)
        let dataset = TextDataset(text: corpus, tokenizer: tokenizer, length: options.sequenceLength)
        var curves: [(name: String, points: [(flops: Double, loss: Double, step: Int)])] = []
        var log = ""
        for (name, configuration) in [("dense", dense), ("MoE \(experts)E top-2", moe)] {
            let flopsPerToken = trainingFLOPsPerToken(configuration, length: options.sequenceLength)
            output.line(
                "\(name): \(ParameterCount(configuration).total) parameters, \(ParameterCount(configuration).activated) activated; "
                    + String(format: "%.1f MFLOP per training token", flopsPerToken / 1e6))
            let trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
            var points: [(flops: Double, loss: Double, step: Int)] = [(0, try trainer.validationLoss(), 0)]
            var tokens = 0
            let start = Date()
            while trainer.step < options.steps {
                let report = try trainer.trainStep()
                tokens += options.batchSize * options.sequenceLength
                if trainer.step % options.evaluateEvery == 0 || trainer.step == options.steps {
                    let loss = try trainer.validationLoss()
                    points.append((Double(tokens) * flopsPerToken, loss, trainer.step))
                    output.line(
                        String(
                            format: "  %@ step %d: validation %.4f nats/token (train batch %.4f), %.3g training FLOPs, %.0f s", name,
                            trainer.step,
                            loss, report.crossEntropy, Double(tokens) * flopsPerToken, Date().timeIntervalSince(start)))
                    log +=
                        #"{"model": "\#(name)", "step": \#(trainer.step), "training_flops": \#(Double(tokens) * flopsPerToken), "validation_ce": \#(loss)}"#
                        + "\n"
                }
            }
            curves.append((name, points))
        }
        try Data(log.utf8).write(to: directory.appendingPathComponent("compare.jsonl"))
        let svg = lineChartSVG(
            title: "Validation loss at equal activated FLOPs per token", xLabel: "training FLOPs",
            yLabel: "validation cross-entropy (nats/token)",
            series: zip(curves, ["#1f77b4", "#d62728"]).map { curve, color in
                ChartSeries(name: curve.name, points: curve.points.map { ($0.flops, $0.loss) }, color: color)
            })
        try Data(svg.utf8).write(to: directory.appendingPathComponent("compare.svg"))
        output.line("")
        output.line("| step | training FLOPs (each) | dense validation CE | MoE validation CE |")
        output.line("|---|---|---|---|")
        for (a, b) in zip(curves[0].points, curves[1].points) {
            output.line(String(format: "| %d | %.3g / %.3g | %.4f | %.4f |", a.step, a.flops, b.flops, a.loss, b.loss))
        }
        output.line("wrote \(directory.appendingPathComponent("compare.svg").path) and compare.jsonl")
        return 0
    }

    /// 3 × forward FLOPs per token (see the help text).
    static func trainingFLOPsPerToken(_ c: ModelConfiguration, length t: Int) -> Double {
        let count = ParameterCount(c)
        var matrix = Double(count.activated - count.embedding)  // includes norms and biases, negligible
        matrix += Double(c.vocabSize * c.modelDim)  // output projection (tied embedding)
        let attention = Double(c.numLayers * 4 * t * c.numHeads * c.headDim)
        return 3 * (2 * matrix + attention)
    }
}
