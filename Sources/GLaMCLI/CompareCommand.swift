// `glam compare`: the paper's central claim in miniature — at equal activated compute per token, does
// a mixture-of-experts model reach a lower validation loss than a dense one trained on the same
// tokens (Du et al. 2021, Fig. 3 and 4)? Trains the dense baseline and MoE variants over several
// seeds, resumably, and reports mean and spread over seeds (CompareReport.swift).

import Foundation
import GLaM

enum CompareCommand: Subcommand {
    static let name = "compare"
    static let summary = "Dense vs MoE models at equal activated FLOPs, over seeds; validation loss with spreads."
    static let help = """
        USAGE: glam compare [--experts E[,E…]] [--seeds N] [--seed S] [--steps N] [--batch B] [--length T]
                            [--evaluate-every N] [--evaluation-batches N] [--corpus FILE] [--output DIR]
                            [--capacity-factor F] [--aux-loss-weight W] [--peak-lr X] [--threads T] [--shard I/N]
                            [--resume] [--force] [--keep-checkpoints]

        Trains, for each seed, the dense baseline and one MoE model per E on the same tokens in the same
        order (the seed fixes initialisation and data order, so seed s is a paired comparison):
          dense:  'small-dense' (M 256, 4 layers, gated-GELU FFN H 512 in every layer)
          MoE E:  the same with layers 0 and 2 replaced by E experts of hidden size 3H/4 = 384, top-2
                  gating, capacity factor \(SweepSettings.defaults.capacityFactor) (or --capacity-factor F), aux-loss weight
                  \(SweepSettings.defaults.auxLossWeight) (or W).
        A token's MoE layer costs top-2 × 2·M·384 = 3·M·512 multiply-adds, exactly a dense GLU layer's,
        so all models have the same activated FLOPs per token (up to the router's M·E). Training FLOPs
        per token are 3 × forward, forward = 2 × (activated matrix parameters outside the embedding
        lookup + the output projection V·M) + 4·T·N·D per layer for attention.

        Prints progress with an ETA over the whole sweep, then validation cross-entropy against training
        FLOPs as mean ± half the range over seeds, the paired MoE − dense differences per seed, and per
        MoE layer over training the dropped share, router entropy, busiest and quietest expert's load,
        the share of idle expert-steps (an expert that computes no token gets a zero gradient) and
        the longest idle run of one expert within an evaluation interval. Writes to DIR
        (default runs/compare): sweep.json (the settings), compare.jsonl (one object per run and
        evaluation), compare.svg (mean curves with min–max bands), and runs/<model>-seed<S>/ with each
        run's checkpoint, so that --resume continues an interrupted sweep where it stopped (finished
        runs are kept, an unfinished one continues from its last evaluation, bit for bit). A DIR holding
        a sweep with other settings is refused unless --force starts over. A finished run's checkpoint
        is deleted (its points are the result) unless --keep-checkpoints keeps it, the model at its last
        step, for `glam eval`, `glam generate` or `glam trace`.

        --shard I/N runs only the runs whose index modulo N is I (runs are ordered by seed, then model),
        so that N processes (for example two with --threads 1 on two cores) share one sweep directory;
        a shard prints the report once every run is finished, otherwise `glam compare --resume` with the
        same settings and no --shard writes it from the finished runs.

        Defaults (a few minutes): E \(SweepSettings.defaults.experts.map(String.init).joined(separator: ",")), \(SweepSettings.defaults.seedCount) seed (seed \(SweepSettings.defaults.firstSeed)), \(TrainCommand.defaults.steps) steps, B \(TrainCommand.defaults.batchSize), T \(TrainCommand.defaults.sequenceLength), validation every
        \(TrainCommand.defaults.evaluateEvery) steps over \(TrainCommand.defaults.evaluationBatches) batches, corpus \(TrainCommand.defaultCorpus). The long sweep of the README:
          glam compare --corpus Fixtures/corpus/kjv-bible.txt --experts 8,16,32,64 --seeds 3 --steps 1000 \\
                       --evaluation-batches 16 --output runs/sweep
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "compare",
            options: [
                "steps", "batch", "length", "evaluate-every", "evaluation-batches", "seed", "seeds", "corpus", "output", "experts",
                "capacity-factor", "aux-loss-weight", "peak-lr", "threads", "shard",
            ], flags: ["resume", "force", "keep-checkpoints"])
        guard parsed.positionals.isEmpty else { throw UsageError("compare: unexpected argument '\(parsed.positionals[0])'") }
        if let threads = try parsed.integer("threads", in: 1...256) { Parallelism.threadCount = threads }
        let settings = try SweepSettings(parsed)
        var shard = (index: 0, count: 1)
        if let text = parsed.value("shard") {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let i = parts[0], let n = parts[1], n >= 1, n <= 1024, (0..<n).contains(i) else {
                throw UsageError("compare: --shard must be I/N with 0 ≤ I < N ≤ 1024, got '\(text)'")
            }
            shard = (i, n)
        }
        let directory = URL(fileURLWithPath: parsed.value("output") ?? "runs/compare")
        do { try FileAccess.createDirectory(directory) } catch { throw UsageError("compare: \(error.description)") }
        let settingsURL = directory.appendingPathComponent("sweep.json")
        let runsURL = directory.appendingPathComponent("runs")
        if !FileManager.default.fileExists(atPath: settingsURL.path) {
            // Runs without their settings: nothing says they belong to this sweep.
            let held = (try? FileManager.default.contentsOfDirectory(atPath: runsURL.path)) ?? []
            if !held.isEmpty && !parsed.has("force") {
                throw UsageError(
                    "compare: \(directory.path) holds runs (\(runsURL.path)) but no sweep.json naming their settings; pass --force to start over in it, or another --output"
                )
            }
            if parsed.has("force") { try? FileManager.default.removeItem(at: runsURL) }
        } else if parsed.has("force") {
            try? FileManager.default.removeItem(at: runsURL)
        } else {
            let stored: String
            do {
                stored = try FileAccess.readText(settingsURL)
            } catch {
                throw UsageError("compare: \(error.description); pass --force to start over")
            }
            if stored != settings.json {
                throw UsageError(
                    "compare: \(directory.path) holds a sweep with other settings; pass --force to start over in it, or another --output")
            } else if !parsed.has("resume") {
                throw UsageError(
                    "compare: \(directory.path) already holds this sweep; pass --resume to continue it or --force to start over")
            }
        }
        try FileAccess.writeAtomically(Data(settings.json.utf8), to: settingsURL)

        let corpus = try TrainCommand.corpus(settings.corpus, command: "compare")
        let variants = settings.variants
        let trainingText = TextDataset.trainingText(of: corpus)
        let most = BytePairTokenizer.maximumVocabularySize(for: trainingText)
        guard most >= variants[0].configuration.vocabSize else {
            throw UsageError(
                "compare: the corpus \(settings.corpus) gives at most \(most) token ids; the models need \(variants[0].configuration.vocabSize)"
            )
        }
        let tokenizer = try BytePairTokenizer.train(on: trainingText, vocabularySize: variants[0].configuration.vocabSize)
        let dataset = TextDataset(text: corpus, tokenizer: tokenizer, length: settings.options.sequenceLength)
        guard dataset.training.count >= settings.options.batchSize, dataset.validation.count >= 1 else {
            throw UsageError("compare: the corpus has too few rows for a batch of \(settings.options.batchSize)")
        }
        let tokensPerEpoch = dataset.training.count * settings.options.sequenceLength
        output.line(
            "corpus \(settings.corpus): \(dataset.training.count) training rows (\(tokensPerEpoch) positions), \(dataset.validation.count) validation rows; "
                + "a run of \(settings.options.steps) steps reads \(String(format: "%.2f", Double(settings.options.steps * settings.options.batchSize) / Double(dataset.training.count))) epochs"
        )
        for variant in variants {
            let count = ParameterCount(variant.configuration)
            output.line(
                "\(variant.name): \(count.total) parameters, \(count.activated) activated; "
                    + String(format: "%.1f MFLOP per training token", variant.flopsPerToken(length: settings.options.sequenceLength) / 1e6))
        }

        let runs = settings.seeds.flatMap { seed in variants.map { (variant: $0, seed: seed) } }
        let totalSteps = runs.indices.filter { $0 % shard.count == shard.index }.count * settings.options.steps  // this shard's
        var records: [RunRecord] = []
        var stepsDone = 0, stepsTimed = 0
        let start = Date()
        for (index, run) in runs.enumerated() where index % shard.count == shard.index {
            let runDirectory = directory.appendingPathComponent("runs/\(run.variant.name)-seed\(run.seed)")
            let record = try SweepRun(
                variant: run.variant, seed: run.seed, settings: settings, dataset: dataset, tokenizer: tokenizer, directory: runDirectory,
                keepsCheckpoint: parsed.has("keep-checkpoints")
            ).train { step, loss, newSteps, resumed in
                stepsDone += newSteps
                if !resumed { stepsTimed += newSteps }
                let elapsed = Date().timeIntervalSince(start)
                let eta = stepsTimed > 0 ? elapsed / Double(stepsTimed) * Double(totalSteps - stepsDone) : 0
                output.line(
                    String(
                        format: "[%d/%d %@ seed %d] step %d/%d  validation %.4f  %@ elapsed, ETA %@%@", index + 1, runs.count,
                        run.variant.name, run.seed, step, settings.options.steps, loss, Formats.duration(elapsed), Formats.duration(eta),
                        resumed ? "  (done earlier)" : ""))
            }
            records.append(record)
        }
        // Other shards' runs, read once this shard's own are done: used when they are finished.
        var missing: [String] = []
        for (index, run) in runs.enumerated() where index % shard.count != shard.index {
            let points = try SweepRun.readPoints(directory.appendingPathComponent("runs/\(run.variant.name)-seed\(run.seed)/points.jsonl"))
            if let last = points.last, last.step == settings.options.steps {
                records.append(RunRecord(variant: run.variant.name, seed: run.seed, points: points))
            } else {
                missing.append("\(run.variant.name)-seed\(run.seed)")
            }
        }
        guard missing.isEmpty else {
            output.line(
                "shard \(shard.index)/\(shard.count) done; not yet finished by the other shards: \(missing.joined(separator: ", ")). "
                    + "When they are, `glam compare --resume` with the same settings and no --shard writes the report.")
            return 0
        }
        // Dense first, then by E.
        let report = CompareReport(records: records, variants: variants.sorted { $0.experts < $1.experts }, settings: settings)
        try FileAccess.writeAtomically(Data(report.jsonl().utf8), to: directory.appendingPathComponent("compare.jsonl"))
        try FileAccess.writeAtomically(Data(report.svg().utf8), to: directory.appendingPathComponent("compare.svg"))
        output.line("")
        for line in report.tables() { output.line(line) }
        output.line("wrote \(directory.appendingPathComponent("compare.svg").path) and compare.jsonl")
        return 0
    }
}

/// A model of the comparison: the dense baseline or an MoE model with E experts.
struct SweepVariant {
    let name: String
    let configuration: ModelConfiguration
    let experts: Int

    /// 3 × forward FLOPs per token (see the help text).
    func flopsPerToken(length t: Int) -> Double { configuration.trainingFLOPsPerToken(length: t) }
}

/// The settings of a sweep (also its identity: a resumed sweep must have the same ones).
struct SweepSettings {
    var options = TrainingOptions()
    /// The sweep's own defaults (the rest are train's), stated once: used by `init` and printed by `help`.
    static let defaults = (experts: [8], firstSeed: 0, seedCount: 1, capacityFactor: 2.0, auxLossWeight: 0.01)
    var experts = defaults.experts
    var seeds: [UInt64] = [UInt64(defaults.firstSeed)]
    var corpus = TrainCommand.defaultCorpus
    var capacityFactor = defaults.capacityFactor
    var auxLossWeight = defaults.auxLossWeight

    init(_ parsed: Arguments) throws {
        // The defaults are train's (the library's TrainingOptions).
        options.steps = try parsed.integer("steps", in: 1...10_000_000) ?? options.steps
        options.batchSize = try parsed.integer("batch", in: 1...4096) ?? options.batchSize
        options.sequenceLength = try parsed.integer("length", in: 2...65536) ?? options.sequenceLength
        options.evaluateEvery = try parsed.integer("evaluate-every", in: 1...10_000_000) ?? options.evaluateEvery
        options.evaluationBatches = try parsed.integer("evaluation-batches", in: 0...100_000) ?? options.evaluationBatches
        options.checkpointEvery = 0
        let first = UInt64(try parsed.integer("seed", in: 0...Int(Int32.max)) ?? Self.defaults.firstSeed)
        let count = try parsed.integer("seeds", in: 1...100) ?? Self.defaults.seedCount
        seeds = (0..<UInt64(count)).map { first + $0 }
        experts = try parsed.distinctIntegerList("experts", in: 2...1024) ?? experts
        corpus = parsed.value("corpus") ?? corpus
        if let text = parsed.value("capacity-factor") {
            guard let value = Double(text), value > 0, value <= 1000 else {
                throw UsageError("compare: --capacity-factor must be a number in (0, 1000], got '\(text)'")
            }
            capacityFactor = value
        }
        if let text = parsed.value("aux-loss-weight") {
            guard let value = Double(text), value >= 0, value <= 1000 else {
                throw UsageError("compare: --aux-loss-weight must be a number in [0, 1000], got '\(text)'")
            }
            auxLossWeight = value
        }
        if let text = parsed.value("peak-lr") {
            guard let value = Float(text), value > 0, value.isFinite else {
                throw UsageError("compare: --peak-lr must be a number > 0, got '\(text)'")
            }
            options.schedule.peak = value
        }
    }

    /// The dense baseline, then one MoE model per E.
    var variants: [SweepVariant] {
        let dense = ModelConfiguration.named("small-dense")!
        var out = [SweepVariant(name: "dense", configuration: dense, experts: 0)]
        for e in experts {
            var moe = dense
            moe.numExperts = e
            moe.moeHiddenDim = dense.ffDim * 3 / 4
            moe.capacityFactor = capacityFactor
            moe.auxLossWeight = Float(auxLossWeight)
            out.append(SweepVariant(name: "moe-e\(e)", configuration: moe, experts: e))
        }
        return out
    }

    /// The settings as sorted JSON (sweep.json).
    var json: String {
        let object: [String: Any] = [
            "steps": options.steps, "batch": options.batchSize, "length": options.sequenceLength, "evaluate_every": options.evaluateEvery,
            "evaluation_batches": options.evaluationBatches, "seeds": seeds.map { Int($0) }, "experts": experts, "corpus": corpus,
            "capacity_factor": capacityFactor, "aux_loss_weight": auxLossWeight, "peak_lr": Double(options.schedule.peak),
        ]
        return JSONText.line(object) + "\n"
    }
}
