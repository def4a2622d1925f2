// One run of a `glam compare` sweep (resumable from its directory) and the sweep's report: mean and
// spread over seeds, paired differences, MoE routing statistics, JSONL and an SVG with bands.

import Foundation
import GLaM

/// Routing statistics of one MoE layer over one evaluation interval (means over its steps).
struct LayerInterval: Codable {
    let layer: Int
    /// Share of the top-2 assignments dropped by capacity.
    let dropped: Double
    /// Router entropy (nats; uniform over E is ln E).
    let entropy: Double
    /// Busiest expert's requested load over the mean load.
    let busiest: Double
    /// Quietest expert's requested load over the mean load (absent in sweeps written before it).
    let quietest: Double?
    /// Share of (expert, step) pairs in which the expert computed no token, so that its weights had
    /// a zero gradient and Adafactor only decayed their statistics.
    let idle: Double?
    /// The longest run of consecutive steps in the interval in which one expert computed no token.
    let longestIdle: Int?

    enum CodingKeys: String, CodingKey {
        case layer, dropped, entropy, busiest, quietest, idle
        case longestIdle = "longest_idle"
    }
}

/// One evaluation of one run.
struct RunPoint: Codable {
    let step: Int
    let trainingFLOPs: Double
    let validationCE: Double
    let layers: [LayerInterval]

    enum CodingKeys: String, CodingKey {
        case step, layers
        case trainingFLOPs = "training_flops", validationCE = "validation_ce"
    }
}

/// A finished run.
struct RunRecord {
    let variant: String
    let seed: UInt64
    let points: [RunPoint]
}

/// One model and seed of the sweep, trained in `directory` (points.jsonl, checkpoint.safetensors).
struct SweepRun {
    let variant: SweepVariant
    let seed: UInt64
    let settings: SweepSettings
    let dataset: TextDataset
    let tokenizer: BytePairTokenizer
    let directory: URL
    /// Whether a finished run keeps its last checkpoint (for `glam eval`, `generate`, `trace`).
    var keepsCheckpoint = false

    /// Trains to the end (or reads a finished run), calling `progress(step, validation, newSteps,
    /// resumed)` after each evaluation; `resumed` marks steps taken by an earlier process.
    func train(progress: (Int, Double, Int, Bool) throws -> Void) throws -> RunRecord {
        do { try FileAccess.createDirectory(directory) } catch { throw UsageError("compare: \(error.description)") }
        let lock = try RunDirectoryLock(directory, command: "compare")
        defer { lock.unlock() }
        let pointsURL = directory.appendingPathComponent("points.jsonl")
        let checkpointURL = directory.appendingPathComponent("checkpoint.safetensors")
        // Temporary files of writes a killed process never finished.
        FileAccess.removeStaleTemporaries(of: pointsURL)
        FileAccess.removeStaleTemporaries(of: checkpointURL)
        var options = settings.options
        options.seed = seed
        let steps = options.steps
        var points = try Self.readPoints(pointsURL)
        if let last = points.last, last.step == steps {
            try progress(steps, last.validationCE, steps, true)
            return RunRecord(variant: variant.name, seed: seed, points: points)
        }
        let trainer: Trainer
        if FileManager.default.fileExists(atPath: checkpointURL.path) {
            let checkpoint: TrainingCheckpoint
            do {
                checkpoint = try TrainingCheckpoint(contentsOf: checkpointURL)
            } catch {
                throw UsageError("compare: cannot resume \(directory.path): \(error.description)")
            }
            guard checkpoint.parameters.configuration == variant.configuration, checkpoint.options.seed == seed else {
                throw UsageError("compare: \(checkpointURL.path) is not a run of \(variant.name) with seed \(seed); pass --force")
            }
            var resumed = checkpoint
            resumed.options = options
            trainer = try Trainer(resuming: resumed, dataset: dataset)
            points = points.filter { $0.step <= trainer.step }
            try progress(trainer.step, points.last?.validationCE ?? .nan, trainer.step, true)
        } else {
            trainer = try Trainer(configuration: variant.configuration, options: options, tokenizer: tokenizer, dataset: dataset)
            points = [RunPoint(step: 0, trainingFLOPs: 0, validationCE: try trainer.validationLoss(), layers: [])]
        }
        try Self.writePoints(points, to: pointsURL)
        let flopsPerToken = variant.flopsPerToken(length: options.sequenceLength)
        var interval: [[ExpertLayerStatistics]] = []
        var lastReported = trainer.step
        while trainer.step < steps {
            let report = try trainer.trainStep()
            interval.append(report.experts)
            if trainer.step % options.evaluateEvery == 0 || trainer.step == steps {
                let tokens = Double(trainer.step * options.batchSize * options.sequenceLength)
                let point = RunPoint(
                    step: trainer.step, trainingFLOPs: tokens * flopsPerToken, validationCE: try trainer.validationLoss(),
                    layers: Self.summarise(interval))
                interval = []
                points.append(point)
                // Points first: a crash between the two writes leaves a checkpoint older than the last
                // point, which the resume drops and recomputes, never a gap.
                try Self.writePoints(points, to: pointsURL)
                try trainer.checkpoint.write(to: checkpointURL)
                try progress(trainer.step, point.validationCE, trainer.step - lastReported, false)
                lastReported = trainer.step
            }
        }
        if !keepsCheckpoint {
            try? FileManager.default.removeItem(at: checkpointURL)  // a finished run is its points
        }
        return RunRecord(variant: variant.name, seed: seed, points: points)
    }

    /// Means over an interval's steps, per MoE layer.
    static func summarise(_ interval: [[ExpertLayerStatistics]]) -> [LayerInterval] {
        guard let first = interval.first else { return [] }
        return first.indices.map { index in
            let layer = interval.map { $0[index] }
            func mean(_ f: (ExpertLayerStatistics) -> Double) -> Double { layer.map(f).reduce(0, +) / Double(layer.count) }
            // Per expert, the current and the longest run of steps without a kept token.
            var run = [Int](repeating: 0, count: first[index].kept.count), longest = 0
            for statistics in layer {
                for (expert, kept) in statistics.kept.enumerated() {
                    run[expert] = kept == 0 ? run[expert] + 1 : 0
                    longest = max(longest, run[expert])
                }
            }
            return LayerInterval(
                layer: first[index].layer,
                dropped: mean { 1 - Double($0.kept.reduce(0, +)) / Double(max($0.requested.reduce(0, +), 1)) },
                entropy: mean(\.routerEntropy),
                busiest: mean(\.requestedImbalance),
                quietest: mean(\.requestedMinimumShare),
                idle: mean { Double($0.kept.filter { $0 == 0 }.count) / Double(max($0.kept.count, 1)) },
                longestIdle: longest)
        }
    }

    /// The points of a run's points.jsonl, in order of step; none when the file does not exist.
    ///
    /// - Throws: `UsageError` naming the file and line when a line is not a point record or the
    ///   steps do not increase: a report built over a gap would pair values of different steps.
    static func readPoints(_ url: URL) throws(UsageError) -> [RunPoint] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data: Data
        do { data = try FileAccess.read(url) } catch { throw UsageError("compare: \(error.description)") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        var points: [RunPoint] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
            guard let point = try? decoder.decode(RunPoint.self, from: Data(line)) else {
                throw UsageError(
                    "compare: \(url.path) line \(index + 1) is not a point record; the run's results are damaged (remove its directory to rerun it, or pass --force)"
                )
            }
            if let last = points.last, point.step <= last.step {
                throw UsageError(
                    "compare: \(url.path) line \(index + 1) has step \(point.step) after step \(last.step); the run's results are damaged")
            }
            points.append(point)
        }
        return points
    }

    static func writePoints(_ points: [RunPoint], to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A diverging run's NaN or infinite loss is recorded as a string, so that it can be written
        // (and resumed past) at all.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let lines = try points.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        try FileAccess.writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: url)
    }
}

/// The sweep's results over seeds.
struct CompareReport {
    let records: [RunRecord]
    let variants: [SweepVariant]
    let settings: SweepSettings

    /// Validation CE of `variant` at each evaluation: (step, FLOPs, values over seeds).
    func curve(_ variant: String) -> [(step: Int, flops: Double, values: [Double])] {
        let runs = records.filter { $0.variant == variant }
        guard let first = runs.first else { return [] }
        return first.points.map { point in
            (point.step, point.trainingFLOPs, runs.compactMap { $0.points.first { $0.step == point.step }?.validationCE })
        }
    }

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }

    static func spread(_ values: [Double]) -> String {
        guard let low = values.min(), let high = values.max() else { return "–" }
        return values.count > 1 ? String(format: "%.4f ± %.4f", mean(values), (high - low) / 2) : String(format: "%.4f", values[0])
    }

    func tables() -> [String] {
        var lines = [
            "Validation cross-entropy (nats/token), mean ± half the range over \(settings.seeds.count) seed(s):", "",
            "| step | training FLOPs | " + variants.map(\.name).joined(separator: " | ") + " |",
            "|---|---|" + String(repeating: "---|", count: variants.count),
        ]
        // Rows keyed by step: a model evaluated at other steps than the first leaves its cell empty
        // rather than showing another step's value.
        let curves = variants.map { curve($0.name) }
        for step in Set(curves.flatMap { $0.map(\.step) }).sorted() {
            let points = curves.map { curve in curve.first { $0.step == step } }
            let cells = points.map { $0.map { Self.spread($0.values) } ?? "–" }
            let flops = points.compactMap { $0?.flops }.first ?? .nan
            lines.append("| \(step) | " + String(format: "%.3g", flops) + " | " + cells.joined(separator: " | ") + " |")
        }
        lines += ["", "Paired difference MoE − dense at the last step (negative: MoE better), per seed:", ""]
        lines.append("| model | " + settings.seeds.map { "seed \($0)" }.joined(separator: " | ") + " | mean | MoE better in |")
        lines.append("|---|" + String(repeating: "---|", count: settings.seeds.count + 2))
        for variant in variants.dropFirst() {
            let final = settings.options.steps
            func finalLoss(_ name: String, _ seed: UInt64) -> Double {
                records.first { $0.variant == name && $0.seed == seed }?.points.first { $0.step == final }?.validationCE ?? .nan
            }
            let differences = settings.seeds.map { finalLoss(variant.name, $0) - finalLoss("dense", $0) }
            lines.append(
                "| \(variant.name) | " + differences.map { String(format: "%+.4f", $0) }.joined(separator: " | ")
                    + String(
                        format: " | %+.4f | %d of %d |", Self.mean(differences), differences.filter { $0 < 0 }.count, differences.count))
        }
        lines += ["", "Routing of the MoE layers (mean over seeds; first evaluation interval → last):", ""]
        lines.append(
            "| model | layer | dropped share | router entropy (nats) | busiest expert / mean load | quietest expert / mean load "
                + "| idle expert-steps | longest idle run in an interval (steps) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for variant in variants.dropFirst() {
            let runs = records.filter { $0.variant == variant.name }
            guard let layers = runs.first?.points.last?.layers else { continue }
            for (index, layer) in layers.enumerated() {
                func firstLast(_ f: (LayerInterval) -> Double?) -> String {
                    let first = runs.compactMap { $0.points.dropFirst().first.flatMap { f($0.layers[index]) } }
                    let last = runs.compactMap { $0.points.last.flatMap { f($0.layers[index]) } }
                    // Only when every run has the figure (older runs lack the idle statistics).
                    guard first.count == runs.count, last.count == runs.count else { return "–" }
                    return String(format: "%.3f → %.3f", Self.mean(first), Self.mean(last))
                }
                // The longest idle run over all intervals and seeds.
                let longest = runs.flatMap {
                    $0.points.compactMap { $0.layers.indices.contains(index) ? $0.layers[index].longestIdle : nil }
                }.max()
                lines.append(
                    "| \(variant.name) | \(layer.layer) | \(firstLast(\.dropped)) | \(firstLast(\.entropy)) (ln E = "
                        + String(format: "%.2f", Foundation.log(Double(variant.experts)))
                        + ") | \(firstLast(\.busiest)) | \(firstLast(\.quietest)) "
                        + "| \(firstLast(\.idle)) | \(longest.map(String.init) ?? "–") |")
            }
        }
        return lines
    }

    func jsonl() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        var out = ""
        for record in records {
            for point in record.points {
                guard let data = try? encoder.encode(point), var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                else { continue }
                object["model"] = record.variant
                object["seed"] = Int(record.seed)
                out += JSONText.line(object) + "\n"
            }
        }
        return out
    }

    func svg() -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        let series = variants.enumerated().map { index, variant -> ChartSeries in
            let points = curve(variant.name).filter { $0.step > 0 }
            return ChartSeries(
                name: variant.name + (settings.seeds.count > 1 ? " (\(settings.seeds.count) seeds)" : ""),
                points: points.map { ($0.flops, Self.mean($0.values)) }, color: colors[index % colors.count],
                band: settings.seeds.count > 1 ? points.map { ($0.flops, $0.values.min() ?? .nan, $0.values.max() ?? .nan) } : [])
        }
        return lineChartSVG(
            title: "Validation loss at equal activated FLOPs per token", xLabel: "training FLOPs",
            yLabel: "validation cross-entropy (nats/token)", series: series)
    }
}
