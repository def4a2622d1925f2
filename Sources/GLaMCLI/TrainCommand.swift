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
                          [--groups G] [--mesh DxM] [--force]

        Trains a GLaM model with Adafactor (the "Training" article of the documentation) on a text
        corpus: a byte-level BPE tokenizer with the model's vocabulary size is trained on the training
        split, paragraphs are packed into rows of T tokens with segment ids, and every 20th paragraph
        is held out for validation. Steps count from 1 (step N is logged after N updates). Every 10th
        step prints loss (cross-entropy + 1e-4·z + 0.01·aux), tokens/s, ETA and, per MoE layer L, the
        busiest expert's load over the mean as the router asked → as capacity kept, and the share of
        assignments dropped; validation perplexity every N steps. An update whose gradients hold NaN
        or Inf is skipped and counted.

        Writes to DIR (default runs/<config>): checkpoint.safetensors (atomically; parameters,
        optimizer state, step, tokenizer, options, checksum), metrics.jsonl (one object per step and
        per validation), loss.svg. --resume continues from DIR/checkpoint.safetensors to --steps,
        giving the same losses as an uninterrupted run. A directory that already holds a run is
        refused unless --resume continues it or --force starts over in it. A configuration that does
        not fit this machine's memory, or whose vocabulary the corpus cannot provide, is refused
        before any work, with the list of those that can be trained.

        --mesh DxM trains on a virtual mesh of D `data` × M `mdl` cores (Sources/GLaM/Mesh): batch rows
        and experts split over data, each expert's hidden units over mdl, Adafactor statistics split
        like their weights; each step's MoE layers exchange tokens by all-to-all. Steps print the bytes
        each core sent beside the communication model's prediction. The losses equal one core's to
        rounding. D must divide the experts, the batch and the groups (--groups G sets num_groups, the
        number of groups the B·T tokens of a batch are routed in, for one device or a mesh alike), M
        the expert hidden size.

        OPTIONS (defaults):
          --config NAME          small (see 'glam params')
          --steps N              \(defaults.steps)
          --batch B              \(defaults.batchSize)
          --length T             \(defaults.sequenceLength)
          --seed S               \(defaults.seed)
          --corpus FILE          \(defaultCorpus)
          --checkpoint-every N   \(defaults.checkpointEvery)
          --evaluate-every N     \(defaults.evaluateEvery)
          --constant-steps N     \(defaults.schedule.constantSteps) (lr = peak·√(N/max(t,N)))
          --peak-lr X            \(defaults.schedule.peak)
          --groups G             the configuration's num_groups
          --mesh DxM             none (one device)
        """

    /// The options a run takes when none is given: the library's own defaults, which the help
    /// prints from here rather than restating them.
    static let defaults = TrainingOptions()

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "train",
            options: [
                "config", "steps", "batch", "length", "seed", "corpus", "output", "checkpoint-every", "evaluate-every", "constant-steps",
                "peak-lr", "threads", "mesh", "groups",
            ], flags: ["resume", "force"])
        guard parsed.positionals.isEmpty else { throw UsageError("train: unexpected argument '\(parsed.positionals[0])'") }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let configName = parsed.value("config") ?? "small"
        guard var configuration = ModelConfiguration.named(configName) else {
            throw UsageError("train: unknown configuration '\(configName)' (see 'glam params')")
        }
        if let groups = try parsed.integer("groups", in: 1...1 << 20) {
            guard !parsed.has("resume") else {
                throw UsageError("train: --groups cannot change a resumed run (its checkpoint fixes num_groups, which decides the routing)")
            }
            configuration.numGroups = groups
        }
        let mesh = try parsed.mesh("mesh")
        let corpusPath = parsed.value("corpus") ?? Self.defaultCorpus
        let corpus = try Self.corpus(corpusPath, command: "train")
        let directory = URL(fileURLWithPath: parsed.value("output") ?? "runs/\(configName)")
        let checkpointURL = directory.appendingPathComponent("checkpoint.safetensors")
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        let lossCurveURL = directory.appendingPathComponent("loss.svg")
        do { try FileAccess.createDirectory(directory) } catch { throw UsageError("train: \(error.description)") }
        // One process per run directory, from here to the end.
        let lock = try RunDirectoryLock(directory, command: "train")
        defer { lock.unlock() }
        for url in [checkpointURL, metricsURL, lossCurveURL] {
            do { try FileAccess.checkWritable(url) } catch { throw UsageError("train: \(error.description)") }
        }
        let hasCheckpoint = FileManager.default.fileExists(atPath: checkpointURL.path)
        let hasMetrics = FileManager.default.fileExists(atPath: metricsURL.path)
        if parsed.has("resume") && !hasCheckpoint {
            throw UsageError(
                "train: cannot resume: \(directory.path) has no checkpoint.safetensors"
                    + (hasMetrics
                        ? " (the run stopped before its first save); pass --force to start it over"
                        : "; start a run there without --resume"))
        }
        if (hasCheckpoint || hasMetrics) && !parsed.has("resume") && !parsed.has("force") {
            throw UsageError(
                hasCheckpoint
                    ? "train: \(directory.path) already holds a run (checkpoint.safetensors\(hasMetrics ? ", metrics.jsonl" : "")); pass --resume to continue it or --force to start over in it"
                    : "train: \(directory.path) holds metrics.jsonl of a run that stopped before its first checkpoint; pass --force to start over in it"
            )
        }
        for path in FileAccess.removeStaleTemporaries(of: checkpointURL) {
            output.line("removed \(path), left by an interrupted checkpoint write")
        }
        let steps = try parsed.integer("steps", in: 0...10_000_000)

        let trainer: any TrainingSession
        let started = Date()
        var runName = configName
        if parsed.has("resume") {
            let checkpoint: TrainingCheckpoint
            do {
                checkpoint = try TrainingCheckpoint(contentsOf: checkpointURL)
            } catch {
                throw UsageError("train: cannot resume: \(error.description)")
            }
            runName = Self.name(of: checkpoint.parameters.configuration)
            try Self.checkResumeOptions(parsed, checkpoint: checkpoint, named: configuration)
            var options = checkpoint.options
            if let steps { options.steps = steps }
            try Self.checkMemory(checkpoint.parameters.configuration, name: runName, options: options, maximumVocabulary: nil)
            let dataset = TextDataset(text: corpus, tokenizer: checkpoint.tokenizer, length: options.sequenceLength)
            if let recorded = checkpoint.dataFingerprint, recorded != dataset.fingerprint {
                throw UsageError(
                    "train: cannot resume: --corpus \(corpusPath) is not the corpus the run trained on (its rows' fingerprint is \(dataset.fingerprint), the checkpoint recorded \(recorded)); pass the run's corpus, or start a new run"
                )
            }
            var resumed = checkpoint
            resumed.options = options
            trainer = try session(mesh: mesh) {
                if let mesh {
                    try MeshTrainer(resuming: resumed, dataset: dataset, mesh: mesh)
                } else {
                    try Trainer(resuming: resumed, dataset: dataset)
                }
            }
            output.line("resuming \(checkpointURL.path) (\(runName)) at step \(checkpoint.step) of \(options.steps)")
        } else {
            var options = TrainingOptions()
            if let steps { options.steps = steps }
            options.batchSize = try parsed.integer("batch", in: 1...4096) ?? options.batchSize
            options.sequenceLength = try parsed.integer("length", in: 2...65536) ?? options.sequenceLength
            options.seed = try parsed.integer("seed", in: 0...Int.max).map(UInt64.init) ?? options.seed
            options.checkpointEvery = try parsed.integer("checkpoint-every", in: 0...10_000_000) ?? options.checkpointEvery
            options.evaluateEvery = try parsed.integer("evaluate-every", in: 0...10_000_000) ?? options.evaluateEvery
            options.schedule.constantSteps = try parsed.integer("constant-steps", in: 1...10_000_000) ?? options.schedule.constantSteps
            if let peak = parsed.value("peak-lr") {
                guard let value = Float(peak), value > 0, value.isFinite else {
                    throw UsageError("train: --peak-lr must be a positive number")
                }
                options.schedule.peak = value
            }
            // Refuse what cannot work before the tokenizer is trained.
            do { try Trainer.checkGroups(options: options, configuration: configuration) } catch {
                throw UsageError("train: \(error.description)")
            }
            let trainingText = TextDataset.trainingText(of: corpus)
            let most = BytePairTokenizer.maximumVocabularySize(for: trainingText)
            try Self.checkMemory(configuration, name: configName, options: options, maximumVocabulary: most)
            guard configuration.vocabSize <= most else {
                throw UsageError(
                    "train: \(configName) has a \(configuration.vocabSize)-token vocabulary, but a BPE tokenizer learned from \(corpusPath) (\(trainingText.utf8.count) bytes of training text) has at most \(most) ids; trainable here: \(Self.trainable(options: options, maximumVocabulary: most))"
                )
            }
            if let mesh {
                do { try MeshLayout(mesh: mesh).check(configuration, batchSize: options.batchSize) } catch {
                    throw unfitting(mesh, error, configuration: configuration)
                }
            }
            output.line("training a \(configuration.vocabSize)-token BPE tokenizer on the training split of \(corpusPath)…")
            let tokenizer = try BytePairTokenizer.train(on: trainingText, vocabularySize: configuration.vocabSize)
            guard tokenizer.vocabularySize == configuration.vocabSize else {
                throw UsageError(
                    "train: the corpus \(corpusPath) ran out of byte pairs after \(tokenizer.vocabularySize) of the \(configuration.vocabSize) ids \(configName) needs; use a larger --corpus or a configuration with a smaller vocabulary"
                )
            }
            let dataset = TextDataset(text: corpus, tokenizer: tokenizer, length: options.sequenceLength)
            trainer = try session(mesh: mesh) {
                if let mesh {
                    try MeshTrainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset, mesh: mesh)
                } else {
                    try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
                }
            }
            try? FileManager.default.removeItem(at: metricsURL)
        }
        let options = trainer.options
        let count = ParameterCount(trainer.configuration)
        output.line(
            "\(runName): \(count.total) parameters (\(count.activated) activated per token); \(trainer.dataset.training.count) training rows, "
                + "\(trainer.dataset.validation.count) validation rows of \(options.sequenceLength) tokens; batch \(options.batchSize); "
                + "\(Parallelism.threadCount) threads; tokenizer ready in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        if parsed.has("resume") {
            // Steps after the checkpoint's were lost with the process that ran them; they run again.
            let dropped = try Self.cutMetrics(metricsURL, after: trainer.step)
            if dropped > 0 { output.line("metrics.jsonl: removed \(dropped) records after step \(trainer.step), which run again") }
        }
        if !FileManager.default.fileExists(atPath: metricsURL.path) {
            guard FileManager.default.createFile(atPath: metricsURL.path, contents: nil) else {
                throw UsageError("train: cannot create \(metricsURL.path): \(String(cString: strerror(errno)))")
            }
        }
        let metrics: FileHandle
        do {
            metrics = try FileHandle(forWritingTo: metricsURL)
            try metrics.seekToEnd()
        } catch {
            throw UsageError("train: cannot open \(metricsURL.path): \(FileAccess.describe(error))")
        }
        defer { try? metrics.close() }
        func log(_ object: [String: Any]) throws {
            do {
                try metrics.write(contentsOf: Data((JSONText.line(object) + "\n").utf8))
            } catch {
                throw UsageError("train: cannot write \(metricsURL.path): \(FileAccess.describe(error))")
            }
        }

        let meshTrainer = trainer as? MeshTrainer
        let predicted = try meshTrainer.map { try predictedCommunication($0, output: &output) }
        let loopStart = Date()
        let firstStep = trainer.step
        var tokensSeen = 0
        while trainer.step < options.steps {
            let sentBefore = meshTrainer.map(\.bytesSentPerCore) ?? (data: 0, model: 0)
            let report = try trainer.trainStep()
            let sent = meshTrainer.map { ($0.bytesSentPerCore.data - sentBefore.data, $0.bytesSentPerCore.model - sentBefore.model) }
            let expected = report.applied ? predicted : predicted?.withoutOptimizer  // a skipped step has no optimizer sums
            tokensSeen += report.tokens
            let elapsed = Date().timeIntervalSince(loopStart)
            let rate = Double(tokensSeen) / max(elapsed, 1e-9)
            let remaining = Double(options.steps - trainer.step) * elapsed / Double(trainer.step - firstStep)
            var record: [String: Any] = [
                "step": report.step + 1, "loss": report.loss, "ce": report.crossEntropy, "z_loss": report.zLoss, "aux_loss": report.auxLoss,
                "applied": report.applied, "lr": report.learningRate, "tokens": report.tokens, "elapsed_seconds": elapsed,
                "tokens_per_second": rate, "eta_seconds": remaining, "skipped_total": trainer.skippedSteps,
                "moe_layers": report.experts.map { layer -> [String: Any] in
                    [
                        "layer": layer.layer, "load_before_capacity": layer.requested, "load_after_capacity": layer.kept,
                        "dropped_fraction": layer.droppedFraction, "router_entropy": layer.routerEntropy,
                    ]
                },
            ]
            if let sent, let predicted = expected {
                record["sent_bytes_per_core"] = ["data": sent.0, "mdl": sent.1]
                record["predicted_bytes_per_core"] = ["data": predicted.data, "mdl": predicted.model]
            }
            try log(record)
            if report.step == 0 || (report.step + 1) % 10 == 0 || trainer.step == options.steps || !report.applied {
                // Per MoE layer: busiest expert over the mean, as the router asked → as capacity kept; dropped share.
                let experts = report.experts.map {
                    String(format: "L%d %.2f→%.2f drop %.1f%%", $0.layer, $0.requestedImbalance, $0.keptImbalance, 100 * $0.droppedFraction)
                }
                output.line(
                    String(
                        format: "step %5d/%d  loss %.4f (ce %.4f, aux %.3f)  %6.0f tok/s  ETA %@%@  skipped %d%@",
                        report.step + 1, options.steps, report.loss, report.crossEntropy, report.auxLoss, rate, Formats.duration(remaining),
                        experts.isEmpty ? "" : "  experts max/mean " + experts.joined(separator: ", "),
                        trainer.skippedSteps, report.applied ? "" : "  (update skipped: non-finite gradient)"))
                if let sent, let predicted = expected {
                    output.line(
                        "  sent per core: data \(bytes(sent.0)) (predicted \(bytes(predicted.data))), mdl \(bytes(sent.1)) (predicted \(bytes(predicted.model)))"
                    )
                }
            }
            let evaluate = options.evaluateEvery > 0 && trainer.step % options.evaluateEvery == 0
            if evaluate || trainer.step == options.steps {
                let validation = try trainer.validationLoss()
                try log(["step": report.step + 1, "validation_ce": validation, "validation_perplexity": Foundation.exp(validation)])
                output.line(
                    String(
                        format: "  validation at step %d: cross-entropy %.4f nats/token, perplexity %.2f", report.step + 1, validation,
                        Foundation.exp(validation)))
            }
            if (options.checkpointEvery > 0 && trainer.step % options.checkpointEvery == 0) || trainer.step == options.steps {
                try trainer.checkpoint.write(to: checkpointURL)
            }
        }
        if trainer.step == firstStep { try trainer.checkpoint.write(to: checkpointURL) }
        try writeLossCurve(metricsURL: metricsURL, to: lossCurveURL, title: "glam train --config \(runName)")
        output.line("saved \(checkpointURL.path), \(metricsURL.path), \(lossCurveURL.path)")
        output.line("continue a prompt: \(executableName) generate --checkpoint \(checkpointURL.path) --prompt \"The hacker\"")
        output.line("follow it through the model: \(executableName) trace --checkpoint \(checkpointURL.path) --prompt \"The hacker\"")
        return 0
    }

    /// Builds a trainer, turning a mesh that does not fit into a usage error.
    static func session(mesh: DeviceMesh?, _ make: () throws -> any TrainingSession) throws -> any TrainingSession {
        do {
            return try make()
        } catch let error as MeshError {
            guard let mesh else { throw error }
            throw unfitting(mesh, error)
        }
    }

    /// Removes the records of `metricsURL` logged after step `step` (1-based steps; the records of
    /// steps a resumed run repeats). Returns how many were removed; the file is rewritten atomically.
    ///
    /// A last line without its newline is a record the killed process did not finish: it is removed
    /// too. Any other line that is not a JSON record with a step is refused (the file is not what
    /// this run wrote), rather than kept or skipped: skipping it would leave steps logged twice.
    static func cutMetrics(_ metricsURL: URL, after step: Int) throws -> Int {
        guard FileManager.default.fileExists(atPath: metricsURL.path) else { return 0 }
        let data: Data
        do { data = try FileAccess.read(metricsURL) } catch { throw UsageError("train: \(error.description)") }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var dropped = 0
        if let last = lines.last, !last.isEmpty {
            lines.removeLast()  // torn: written up to the kill
            dropped += 1
        } else if !lines.isEmpty {
            lines.removeLast()  // the empty piece after the final newline
        }
        var kept: [Data.SubSequence] = []
        for (index, line) in lines.enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                let logged = (object["step"] as? NSNumber)?.intValue
            else {
                throw UsageError(
                    "train: \(metricsURL.path) line \(index + 1) is not a metrics record of glam train; move the file away to resume, or pass --force to start over"
                )
            }
            if logged > step { dropped += 1 } else { kept.append(line) }
        }
        guard dropped > 0 else { return 0 }
        var text = Data()
        for line in kept { text.append(contentsOf: line + [UInt8(ascii: "\n")]) }
        do {
            try FileAccess.writeAtomically(text, to: metricsURL)
        } catch {
            throw UsageError("train: cannot rewrite \(metricsURL.path): \(error)")
        }
        return dropped
    }

    /// Refuses, on `--resume`, any option that would change the run: it continues with the
    /// checkpoint's settings, so a different value would be silently ignored. `--steps` (to extend
    /// or shorten the run), `--mesh`, `--threads` and `--checkpoint-every`/`--evaluate-every` of the
    /// same value are accepted.
    static func checkResumeOptions(_ parsed: Arguments, checkpoint: TrainingCheckpoint, named: ModelConfiguration) throws {
        let stored = checkpoint.options
        var conflicts: [String] = []
        // num_groups is the run's routing setting (`--groups`), not part of the configuration's name.
        var named = named
        named.numGroups = checkpoint.parameters.configuration.numGroups
        if parsed.value("config") != nil, named != checkpoint.parameters.configuration {
            conflicts.append("--config \(parsed.value("config")!) (the run is \(name(of: checkpoint.parameters.configuration)))")
        }
        let integers: [(option: String, range: ClosedRange<Int>, stored: Int)] = [
            ("batch", 1...4096, stored.batchSize), ("length", 2...65536, stored.sequenceLength),
            ("seed", 0...Int.max, Int(exactly: stored.seed) ?? -1),
            ("checkpoint-every", 0...10_000_000, stored.checkpointEvery), ("evaluate-every", 0...10_000_000, stored.evaluateEvery),
            ("constant-steps", 1...10_000_000, stored.schedule.constantSteps),
        ]
        for (option, range, value) in integers {
            if let given = try parsed.integer(option, in: range), given != value {
                conflicts.append("--\(option) \(given) (the run's is \(value))")
            }
        }
        if let text = parsed.value("peak-lr"), Float(text) != stored.schedule.peak {
            conflicts.append("--peak-lr \(text) (the run's is \(stored.schedule.peak))")
        }
        guard conflicts.isEmpty else {
            throw UsageError(
                "train: --resume continues the run with its own settings, which these options would change: \(conflicts.joined(separator: ", ")); drop them, or start a new run in another --output"
            )
        }
    }

    /// The name of `configuration` among the named ones (`glam params`), with its num_groups when
    /// that is not the named one's, or a description of it.
    static func name(of configuration: ModelConfiguration) -> String {
        for named in ModelConfiguration.named {
            var candidate = named.configuration
            candidate.numGroups = configuration.numGroups
            if candidate == configuration {
                return named.name
                    + (named.configuration.numGroups == configuration.numGroups ? "" : " with num_groups \(configuration.numGroups)")
            }
        }
        return
            "an unnamed configuration (\(configuration.numLayers) layers, M \(configuration.modelDim), \(configuration.numExperts) experts)"
    }

    /// The corpus a run trains on.
    static let defaultCorpus = "Fixtures/corpus/jargon-4.4.7.txt"

    /// The UTF-8 text of the corpus at `path`, or a usage error naming what is wrong with it.
    static func corpus(_ path: String, command: String) throws(UsageError) -> String {
        do {
            return try FileAccess.readText(URL(fileURLWithPath: path))
        } catch {
            let missingDefault = path == defaultCorpus && !FileManager.default.fileExists(atPath: path)
            // "cannot read PATH: cause" → "cannot read the corpus PATH: cause"
            let message = "cannot read the corpus " + error.description.dropFirst("cannot read ".count)
            throw UsageError("\(command): \(message)\(missingDefault ? " (run from the repository root or pass --corpus FILE)" : "")")
        }
    }

    /// Refuses a run whose estimated memory exceeds 80% of this machine's.
    static func checkMemory(_ configuration: ModelConfiguration, name: String, options: TrainingOptions, maximumVocabulary: Int?) throws {
        let estimate = MemoryEstimate(configuration: configuration, batchSize: options.batchSize, length: options.sequenceLength)
        guard estimate.fits() else {
            throw UsageError(
                "train: \(name) with B = \(options.batchSize), T = \(options.sequenceLength) needs about \(MemoryEstimate.describe(estimate.totalBytes)) (parameters and optimizer \(MemoryEstimate.describe(estimate.parameterBytes)), activations \(MemoryEstimate.describe(estimate.activationBytes))), more than 80% of this machine's \(MemoryEstimate.describe(MemoryEstimate.physicalMemory)); trainable here: \(trainable(options: options, maximumVocabulary: maximumVocabulary))"
            )
        }
    }

    /// The named configurations that fit this machine with `options` (and whose vocabulary a
    /// corpus giving `maximumVocabulary` ids can provide).
    static func trainable(options: TrainingOptions, maximumVocabulary: Int?) -> String {
        let names = ModelConfiguration.named.filter {
            MemoryEstimate(configuration: $0.configuration, batchSize: options.batchSize, length: options.sequenceLength).fits()
                && $0.configuration.vocabSize <= (maximumVocabulary ?? Int.max)
        }.map(\.name)
        return names.isEmpty ? "none at this batch size and length" : names.joined(separator: ", ")
    }

    /// How to call this `glam` again: the running executable's path when it is `glam`, else the
    /// release build's.
    static var executableName: String {
        let path = CommandLine.arguments.first ?? ""
        return URL(fileURLWithPath: path).lastPathComponent == "glam" ? path : ".build/release/glam"
    }

    /// The usage error of a mesh that does not fit, with the `--groups` to give when the routing
    /// groups of a fresh run's `configuration` do not split over the data cores.
    static func unfitting(_ mesh: DeviceMesh, _ error: MeshError, configuration: ModelConfiguration? = nil) -> UsageError {
        let d = mesh.shape[0]
        var message = "train: the \(d)x\(mesh.shape[1]) mesh does not fit: \(error.description)"
        if let c = configuration, c.isMoE, c.numGroups % d != 0 {
            message += "; give --groups G, a multiple of \(d) that divides B·T (--groups \(d): one routing group per data core)"
        }
        return UsageError(message)
    }

    /// Prints the mesh layout and the communication model's bytes per core per step.
    static func predictedCommunication(_ trainer: MeshTrainer, output: inout Output) throws -> StepCommunication {
        let (d, m) = (trainer.layout.dataCores, trainer.layout.modelCores)
        let c = trainer.configuration
        let predicted = try stepCommunication(
            c, batchSize: trainer.options.batchSize, length: trainer.options.sequenceLength, dataCores: d, modelCores: m)
        output.line(
            "mesh \(d)x\(m) (data × mdl): each core holds \(trainer.options.batchSize / d) rows in \(c.numGroups / d) groups"
                + (c.isMoE ? ", experts [\(c.numExperts / d), M, \(c.moeHiddenDim / m)] of each MoE layer" : ""))
        output.line(
            "  predicted per core per step: data \(bytes(predicted.data)) (all-to-all \(bytes(predicted.allToAll)), gradient all-reduce "
                + "\(bytes(predicted.gradientAllReduce)), optimizer \(bytes(predicted.optimizerData))), mdl \(bytes(predicted.model)) "
                + "(expert partial sums \(bytes(predicted.expertAllReduce)), optimizer \(bytes(predicted.optimizerModel)))")
        return predicted
    }

    static func bytes(_ count: Int) -> String {
        count >= 1_000_000
            ? String(format: "%.3f MB", Double(count) / 1e6) : count >= 1000 ? String(format: "%.1f kB", Double(count) / 1e3) : "\(count) B"
    }

    /// The training and validation loss curves of a metrics file as an SVG chart.
    static func writeLossCurve(metricsURL: URL, to url: URL, title: String) throws {
        let lines = String(decoding: try FileAccess.read(metricsURL), as: UTF8.self).split(separator: "\n")
        var training: [(x: Double, y: Double)] = [], validation: [(x: Double, y: Double)] = []
        for line in lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let step = (object["step"] as? NSNumber)?.doubleValue
            else { continue }
            if let ce = (object["ce"] as? NSNumber)?.doubleValue { training.append((step, ce)) }
            if let ce = (object["validation_ce"] as? NSNumber)?.doubleValue { validation.append((step, ce)) }
        }
        let svg = lineChartSVG(
            title: title, xLabel: "step", yLabel: "cross-entropy (nats/token)",
            series: [
                ChartSeries(name: "training batch", points: training, color: "#1f77b4"),
                ChartSeries(name: "validation", points: validation, color: "#d62728"),
            ])
        try FileAccess.writeAtomically(Data(svg.utf8), to: url)
    }

}
