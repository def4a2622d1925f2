// `glam train`: the README's main job. With no arguments it trains the small MoE configuration on
// the bundled corpus for a few minutes, printing progress, and saves a checkpoint.

import Foundation
import GLaM

enum TrainCommand: Subcommand {
    static let name = "train"
    static let summary = "Train a model on the bundled corpus (default: the small MoE model, a few minutes)."
    static let help = """
        USAGE: glam train [--config NAME] [--steps N] [--batch B] [--length T] [--seed S]
                          [--corpus FILE] [--output DIR] [--resume] [--checkpoint-every N]
                          [--evaluate-every N] [--constant-steps N] [--peak-lr X] [--threads T]

        Trains a GLaM model with Adafactor (glam-spec.md section 3) on a text corpus: a byte-level BPE
        tokenizer with the model's vocabulary size is trained on the training split, paragraphs are
        packed into rows of T tokens with segment ids, and every 20th paragraph is held out for
        validation. Each step prints loss (cross-entropy + 1e-4·z + 0.01·aux), tokens/s, ETA and expert
        balance (the busiest expert's load over the mean); validation perplexity every N steps. An
        update whose gradients hold NaN or Inf is skipped and counted.

        Writes to DIR (default runs/<config>): checkpoint.safetensors (atomically; parameters,
        optimizer state, step, tokenizer, options, checksum), metrics.jsonl (one object per step and
        per validation), loss.svg. --resume continues from DIR/checkpoint.safetensors to --steps,
        giving the same losses as an uninterrupted run.

        OPTIONS (defaults):
          --config NAME          small (see 'glam params')      --steps N           300
          --batch B              8                              --length T          128
          --seed S               0                              --corpus FILE       Fixtures/corpus/jargon-4.4.7.txt
          --checkpoint-every N   100                            --evaluate-every N  50
          --constant-steps N     10000 (lr = peak·√(N/max(t,N)))  --peak-lr X        0.01
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "train",
            options: [
                "config", "steps", "batch", "length", "seed", "corpus", "output", "checkpoint-every", "evaluate-every", "constant-steps",
                "peak-lr", "threads",
            ], flags: ["resume"])
        guard parsed.positionals.isEmpty else { throw UsageError("train: unexpected argument '\(parsed.positionals[0])'") }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let configName = parsed.value("config") ?? "small"
        guard let configuration = ModelConfiguration.named(configName) else {
            throw UsageError("train: unknown configuration '\(configName)' (see 'glam params')")
        }
        let corpusPath = parsed.value("corpus") ?? "Fixtures/corpus/jargon-4.4.7.txt"
        guard let corpus = try? String(contentsOfFile: corpusPath, encoding: .utf8) else {
            throw UsageError("train: cannot read the corpus at \(corpusPath) (run from the repository root or pass --corpus FILE)")
        }
        let directory = URL(fileURLWithPath: parsed.value("output") ?? "runs/\(configName)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let checkpointURL = directory.appendingPathComponent("checkpoint.safetensors")
        let steps = try parsed.integer("steps", in: 0...10_000_000)

        let trainer: Trainer
        let started = Date()
        if parsed.has("resume") {
            let checkpoint: TrainingCheckpoint
            do {
                checkpoint = try TrainingCheckpoint(contentsOf: checkpointURL)
            } catch {
                throw UsageError("train: cannot resume: \(error.description)")
            }
            var options = checkpoint.options
            if let steps { options.steps = steps }
            let dataset = TextDataset(text: corpus, tokenizer: checkpoint.tokenizer, length: options.sequenceLength)
            var resumed = checkpoint
            resumed.options = options
            trainer = try Trainer(resuming: resumed, dataset: dataset)
            output.line("resuming \(checkpointURL.path) at step \(checkpoint.step) of \(options.steps)")
        } else {
            var options = TrainingOptions()
            if let steps { options.steps = steps }
            options.batchSize = try parsed.integer("batch", in: 1...4096) ?? options.batchSize
            options.sequenceLength = try parsed.integer("length", in: 2...65536) ?? options.sequenceLength
            options.seed = UInt64(try parsed.integer("seed", in: 0...Int.max) ?? 0)
            options.checkpointEvery = try parsed.integer("checkpoint-every", in: 0...10_000_000) ?? options.checkpointEvery
            options.evaluateEvery = try parsed.integer("evaluate-every", in: 0...10_000_000) ?? options.evaluateEvery
            options.schedule.constantSteps = try parsed.integer("constant-steps", in: 1...10_000_000) ?? options.schedule.constantSteps
            if let peak = parsed.value("peak-lr") {
                guard let value = Float(peak), value > 0, value.isFinite else {
                    throw UsageError("train: --peak-lr must be a positive number")
                }
                options.schedule.peak = value
            }
            output.line("training a \(configuration.vocabSize)-token BPE tokenizer on the training split of \(corpusPath)…")
            let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: corpus), vocabularySize: configuration.vocabSize)
            let dataset = TextDataset(text: corpus, tokenizer: tokenizer, length: options.sequenceLength)
            trainer = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
            try? FileManager.default.removeItem(at: directory.appendingPathComponent("metrics.jsonl"))
        }
        let options = trainer.options
        let count = ParameterCount(configuration)
        output.line(
            "\(configName): \(count.total) parameters (\(count.activated) activated per token); \(trainer.dataset.training.count) training rows, "
                + "\(trainer.dataset.validation.count) validation rows of \(options.sequenceLength) tokens; batch \(options.batchSize); "
                + "\(Parallelism.threadCount) threads; tokenizer ready in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        if !FileManager.default.fileExists(atPath: metricsURL.path) {
            _ = FileManager.default.createFile(atPath: metricsURL.path, contents: nil)
        }
        let metrics = try FileHandle(forWritingTo: metricsURL)
        defer { try? metrics.close() }
        try metrics.seekToEnd()
        func log(_ object: [String: Any]) throws {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            try metrics.write(contentsOf: data + Data("\n".utf8))
        }

        let loopStart = Date()
        let firstStep = trainer.step
        var tokensSeen = 0
        while trainer.step < options.steps {
            let report = try trainer.trainStep()
            tokensSeen += report.tokens
            let elapsed = Date().timeIntervalSince(loopStart)
            let rate = Double(tokensSeen) / max(elapsed, 1e-9)
            let remaining = Double(options.steps - trainer.step) * elapsed / Double(trainer.step - firstStep)
            let meanLoad = report.expertLoad.isEmpty ? 0 : Double(report.expertLoad.reduce(0, +)) / Double(report.expertLoad.count)
            let balance = meanLoad > 0 ? Double(report.expertLoad.max()!) / meanLoad : 1
            try log([
                "step": report.step, "loss": report.loss, "ce": report.crossEntropy, "z_loss": report.zLoss, "aux_loss": report.auxLoss,
                "applied": report.applied, "lr": report.learningRate, "tokens_per_second": rate, "expert_load": report.expertLoad,
                "skipped_total": trainer.skippedSteps,
            ])
            if report.step % 10 == 0 || trainer.step == options.steps || !report.applied {
                output.line(
                    String(
                        format: "step %5d/%d  loss %.4f (ce %.4f, aux %.3f)  %6.0f tok/s  ETA %@  experts max/mean %.2f  skipped %d%@",
                        report.step + 1, options.steps, report.loss, report.crossEntropy, report.auxLoss, rate, duration(remaining),
                        balance,
                        trainer.skippedSteps, report.applied ? "" : "  (update skipped: non-finite gradient)"))
            }
            let evaluate = options.evaluateEvery > 0 && trainer.step % options.evaluateEvery == 0
            if evaluate || trainer.step == options.steps {
                let validation = try trainer.validationLoss()
                try log(["step": report.step, "validation_ce": validation, "validation_perplexity": Foundation.exp(validation)])
                output.line(
                    String(format: "  validation: cross-entropy %.4f nats/token, perplexity %.2f", validation, Foundation.exp(validation)))
            }
            if (options.checkpointEvery > 0 && trainer.step % options.checkpointEvery == 0) || trainer.step == options.steps {
                try trainer.checkpoint.write(to: checkpointURL)
            }
        }
        if trainer.step == firstStep { try trainer.checkpoint.write(to: checkpointURL) }
        try writeLossCurve(
            metricsURL: metricsURL, to: directory.appendingPathComponent("loss.svg"), title: "glam train --config \(configName)")
        output.line("saved \(checkpointURL.path), \(metricsURL.path), \(directory.appendingPathComponent("loss.svg").path)")
        output.line("continue a prompt: glam generate --checkpoint \(checkpointURL.path) --prompt \"The hacker\"")
        return 0
    }

    /// The training and validation loss curves of a metrics file as an SVG chart.
    static func writeLossCurve(metricsURL: URL, to url: URL, title: String) throws {
        let lines = (try String(contentsOf: metricsURL, encoding: .utf8)).split(separator: "\n")
        var training: [(x: Double, y: Double)] = [], validation: [(x: Double, y: Double)] = []
        for line in lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = (object["step"] as? NSNumber)?.doubleValue
            else { continue }
            if let ce = (object["ce"] as? NSNumber)?.doubleValue { training.append((step + 1, ce)) }
            if let ce = (object["validation_ce"] as? NSNumber)?.doubleValue { validation.append((step + 1, ce)) }
        }
        let svg = lineChartSVG(
            title: title, xLabel: "step", yLabel: "cross-entropy (nats/token)",
            series: [
                ChartSeries(name: "training batch", points: training, color: "#1f77b4"),
                ChartSeries(name: "validation", points: validation, color: "#d62728"),
            ])
        try Data(svg.utf8).write(to: url, options: .atomic)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
