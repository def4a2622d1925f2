// `glam compare` as a sweep: seeds and several E, a report with spreads and paired differences,
// shards that share one directory, and a run interrupted mid-way that resumes to the same numbers.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct CompareTests {
    static let corpus = fixturesDirectory.appendingPathComponent("corpus/jargon-4.4.7.txt").path
    static let small = ["--steps", "4", "--evaluate-every", "2", "--evaluation-batches", "1", "--batch", "2", "--length", "16"]

    static func points(_ directory: URL) throws -> [String: [Double]] {
        let text = try String(contentsOf: directory.appendingPathComponent("compare.jsonl"), encoding: .utf8)
        var out: [String: [Double]] = [:]
        for line in text.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let key = "\(object["model"] ?? "?")-seed\(object["seed"] ?? "?")"
            out[key, default: []].append(try #require(object["validation_ce"] as? Double))
        }
        return out
    }

    @Test("a sweep over seeds and E reports every run; shards sharing a directory give the same numbers")
    func sweepAndShards() throws {
        let scratch = ScratchDirectory()
        let whole = scratch.path("whole"), sharded = scratch.path("sharded")
        let arguments = Self.small + ["--seeds", "2", "--experts", "4,8", "--corpus", Self.corpus]
        let result = runGlam(["compare"] + arguments + ["--output", whole.path])
        #expect(result.status == 0, "\(result.err)")
        #expect(result.out.contains("Paired difference MoE − dense"))
        #expect(result.out.contains("| moe-e8 | 2 |"))  // routing row of layer 2
        #expect(result.out.contains("ETA"))
        let expected = try Self.points(whole)
        #expect(expected.count == 6)  // dense, E 4, E 8 × 2 seeds
        #expect(expected.values.allSatisfy { $0.count == 3 && $0.allSatisfy(\.isFinite) })
        #expect(expected["dense-seed0"] != expected["dense-seed1"])
        let svg = try String(contentsOf: whole.appendingPathComponent("compare.svg"), encoding: .utf8)
        #expect(svg.contains("<polygon"))  // bands over the two seeds
        // One line per variant through its evaluations after step 0 (steps 2 and 4): the loss at
        // step 0, the same for every variant, is left out so as not to squash the curves.
        let lines = svg.matches(of: /<polyline [^>]*points="([^"]*)"/).map { $0.output.1.split(separator: " ").count }
        #expect(lines == [2, 2, 2], "\(lines)")

        let first = runGlam(["compare"] + arguments + ["--output", sharded.path, "--shard", "0/2", "--threads", "1"])
        #expect(first.status == 0 && first.out.contains("not yet finished by the other shards"), "\(first.err)")
        let second = runGlam(["compare"] + arguments + ["--output", sharded.path, "--shard", "1/2", "--resume"])
        #expect(second.status == 0 && second.out.contains("Paired difference"), "\(second.err)")
        #expect(try Self.points(sharded) == expected)

        let again = runGlam(["compare"] + arguments + ["--output", whole.path])
        #expect(again.status == 2 && again.err.contains("--resume"))
        let other = runGlam(["compare"] + Self.small + ["--seeds", "3", "--corpus", Self.corpus, "--output", whole.path, "--resume"])
        #expect(other.status == 2 && other.err.contains("other settings"))
        #expect(runGlam(["compare", "--experts", "4,x", "--output", scratch.path("bad").path]).status == 2)
        // --shard I/N: 0 ≤ I < N ≤ 1024, both integers; anything else refused by name, never a trap.
        for shard in ["2/2", "0/0", "0/-1", "-1/-1", "-1/2", "0/1025", "1/1", "a/2", "0/b", "0/2/3", "/2", "0/", "", "1"] {
            let refused = runGlam(["compare", "--shard", shard, "--output", scratch.path("bad").path])
            #expect(
                refused.status == 2 && refused.err.contains("--shard must be I/N with 0 ≤ I < N ≤ 1024, got '\(shard)'"),
                "--shard \(shard): \(refused.err)")
        }
    }

    @Test("every option of compare sets what its help says: each lands in sweep.json and in the models it trains")
    func everyOptionLands() throws {
        let given: [(option: String, value: String)] = [
            ("steps", "7"), ("batch", "3"), ("length", "9"), ("evaluate-every", "4"), ("evaluation-batches", "2"), ("seed", "5"),
            ("seeds", "3"), ("experts", "4,16"), ("corpus", "elsewhere.txt"), ("capacity-factor", "1.5"), ("aux-loss-weight", "0.2"),
            ("peak-lr", "0.003"),
        ]
        let parsed = try Arguments(
            given.flatMap { ["--\($0.option)", $0.value] }, command: "compare", options: Set(given.map(\.option)), flags: [])
        let settings = try SweepSettings(parsed)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(settings.json.utf8)) as? [String: Any])
        let expected: [String: Any] = [
            "steps": 7, "batch": 3, "length": 9, "evaluate_every": 4, "evaluation_batches": 2, "seeds": [5, 6, 7], "experts": [4, 16],
            "corpus": "elsewhere.txt", "capacity_factor": 1.5, "aux_loss_weight": 0.2, "peak_lr": 0.003,
        ]
        func canonical(_ object: [String: Any]) throws -> String {
            String(
                decoding: try JSONSerialization.data(withJSONObject: object.filter { $0.key != "peak_lr" }, options: .sortedKeys),
                as: UTF8.self)
        }
        #expect(try canonical(json) == canonical(expected))
        #expect(abs(try #require(json["peak_lr"] as? Double) - 0.003) < 1e-9)
        // Every value given differs from the default, so each one is seen to arrive.
        let defaults = try #require(
            try JSONSerialization.jsonObject(
                with: Data(try SweepSettings(try Arguments([], command: "compare", options: [], flags: [])).json.utf8)) as? [String: Any])
        for (key, value) in expected { #expect("\(defaults[key] ?? "none")" != "\(value)", "\(key)") }
        #expect(settings.options.schedule.peak == 0.003)
        for variant in settings.variants.dropFirst() {
            #expect(variant.configuration.capacityFactor == 1.5 && variant.configuration.auxLossWeight == 0.2, "\(variant.name)")
        }
        #expect(settings.variants.map(\.experts) == [0, 4, 16])
    }

    @Test("compare's MoE variants activate as many FFN weights per token as the dense baseline (top-2 of E experts)")
    func equalActivatedCompute() throws {
        let parsed = try Arguments(["--experts", "4,8,64"], command: "compare", options: ["experts"], flags: [])
        let variants = try SweepSettings(parsed).variants
        let dense = variants[0].configuration
        #expect(variants.map(\.experts) == [0, 4, 8, 64] && dense.numExperts == 0)
        for variant in variants.dropFirst() {
            let moe = variant.configuration
            #expect(moe.numExperts == variant.experts)
            // A dense layer computes 3·M·H (wi_gate, wi_linear, wo); an MoE layer's two experts 2 · 2·M·H_moe.
            #expect(2 * 2 * moe.modelDim * moe.moeHiddenDim == 3 * dense.modelDim * dense.ffDim, "E = \(variant.experts)")
            let activated = ParameterCount(moe).activated, baseline = ParameterCount(dense).activated
            let routers = (0..<moe.numLayers).filter(moe.isMoELayer).count * moe.modelDim * moe.numExperts
            #expect(activated == baseline + routers, "E = \(variant.experts): \(activated) vs \(baseline) + \(routers)")
        }
    }

    @Test("a run interrupted after its first evaluation resumes from its checkpoint to the same numbers, bit for bit")
    func interruptedRunResumes() throws {
        struct Interrupted: Error {}
        let scratch = ScratchDirectory()
        let parsed = try Arguments(
            Self.small + ["--corpus", Self.corpus], command: "compare",
            options: [
                "steps", "batch", "length", "evaluate-every", "evaluation-batches", "corpus",
            ], flags: [])
        let settings = try SweepSettings(parsed)
        let variant = settings.variants[1]
        let text = try String(contentsOfFile: Self.corpus, encoding: .utf8)
        let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: text), vocabularySize: variant.configuration.vocabSize)
        let dataset = TextDataset(text: text, tokenizer: tokenizer, length: settings.options.sequenceLength)
        func run(_ name: String) -> SweepRun {
            SweepRun(variant: variant, seed: 0, settings: settings, dataset: dataset, tokenizer: tokenizer, directory: scratch.path(name))
        }
        let uninterrupted = try run("a").train { _, _, _, _ in }
        #expect(throws: Interrupted.self) {
            _ = try run("b").train { step, _, _, resumed in if step == 2 && !resumed { throw Interrupted() } }
        }
        #expect(FileManager.default.fileExists(atPath: scratch.path("b/checkpoint.safetensors").path))
        var resumedAt: [Int] = []
        let resumed = try run("b").train { step, _, _, resumed in if resumed { resumedAt.append(step) } }
        #expect(resumedAt == [2])
        #expect(resumed.points.map(\.validationCE) == uninterrupted.points.map(\.validationCE))
        #expect(resumed.points.map(\.step) == [0, 2, 4])
        #expect(!FileManager.default.fileExists(atPath: scratch.path("b/checkpoint.safetensors").path))
        // --keep-checkpoints: the finished run keeps the model at its last step, and it is the model
        // whose validation loss the last point records.
        var kept = run("c")
        kept.keepsCheckpoint = true
        let keptRecord = try kept.train { _, _, _, _ in }
        let checkpoint = try TrainingCheckpoint(contentsOf: scratch.path("c/checkpoint.safetensors"))
        #expect(checkpoint.step == 4)
        let reloaded = try Trainer(resuming: checkpoint, dataset: dataset)
        #expect(try reloaded.validationLoss() == keptRecord.points.last?.validationCE)
    }

    @Test("a corpus too small for the models' vocabulary is refused before any training, naming both sizes")
    func corpusTooSmallForTheVocabulary() throws {
        let scratch = ScratchDirectory()
        let corpus = scratch.path("small.txt")
        try Data(String(repeating: "ab ba ", count: 400).utf8).write(to: corpus)
        let refused = runGlam(["compare", "--corpus", corpus.path, "--output", scratch.path("sweep").path, "--steps", "2"])
        #expect(refused.status == 2 && refused.err.contains("gives at most") && refused.err.contains("the models need"), "\(refused.err)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("sweep/runs").path))
    }

    @Test("the report's spread over seeds is the mean ± half the range, and one seed prints its value alone")
    func spreadIsHalfTheRange() {
        var generator = SeededGenerator(seed: 3)
        for count in 2...6 {
            let values = (0..<count).map { _ in 3 + Double(generator.nextUniform()) }
            let mean = values.reduce(0, +) / Double(count), half = (values.max()! - values.min()!) / 2
            #expect(CompareReport.spread(values) == String(format: "%.4f ± %.4f", mean, half))
        }
        #expect(CompareReport.spread([3.25]) == "3.2500")
        #expect(CompareReport.spread([]) == "–")
    }

    @Test("an interval's routing summary: quietest load, idle expert-steps and the longest idle run")
    func routingSummary() throws {
        // 3 experts, 4 steps. Expert 2 computes nothing in steps 1–3 (a run of 3); expert 0 nothing in step 3.
        let steps: [(requested: [Int], kept: [Int])] = [
            ([4, 4, 4], [4, 4, 4]), ([6, 6, 0], [5, 6, 0]), ([9, 3, 0], [6, 3, 0]), ([1, 11, 0], [0, 6, 0]),
        ]
        let interval = steps.map { [ExpertLayerStatistics(layer: 2, requested: $0.requested, kept: $0.kept, routerEntropy: 1)] }
        let summary = try #require(SweepRun.summarise(interval).first)
        #expect(summary.layer == 2)
        // Quietest over mean load: 1, 0, 0, 0 → 0.25. Busiest: 1, 1.5, 2.25, 2.75 → 1.875.
        #expect(abs((summary.quietest ?? -1) - 0.25) < 1e-12)
        #expect(abs(summary.busiest - 1.875) < 1e-12)
        // Idle expert-steps: 0, 1, 1, 2 of 3 each → 4/12.
        #expect(abs((summary.idle ?? -1) - 4.0 / 12) < 1e-12)
        #expect(summary.longestIdle == 3)
        // Dropped: 0, 1/12, 3/12, 6/12 → 10/48.
        #expect(abs(summary.dropped - 10.0 / 48) < 1e-12)
    }

    @Test("points written before the idle statistics existed still read back, with those fields absent")
    func olderPointsRead() throws {
        let scratch = ScratchDirectory()
        let url = scratch.path("points.jsonl")
        let older = """
            {"layers":[],"step":0,"training_flops":0,"validation_ce":9.3}
            {"layers":[{"busiest":1.5,"dropped":0.1,"entropy":1.9,"layer":0}],"step":50,"training_flops":1e12,"validation_ce":5.1}
            """
        try Data(older.utf8).write(to: url)
        let points = try SweepRun.readPoints(url)
        #expect(points.map(\.step) == [0, 50])
        let layer = try #require(points.last?.layers.first)
        #expect(layer.busiest == 1.5 && layer.quietest == nil && layer.idle == nil && layer.longestIdle == nil)
    }
}

extension CompareTests {
    @Test("every numeric option of compare accepts both ends of its documented range and refuses the values just outside")
    func optionRanges() {
        let options: Set<String> = [
            "steps", "batch", "length", "evaluate-every", "evaluation-batches", "seed", "seeds", "experts", "capacity-factor",
            "aux-loss-weight", "peak-lr",
        ]
        func parses(_ option: String, _ value: String) -> Bool {
            guard let parsed = try? Arguments(["--\(option)", value], command: "compare", options: options, flags: []) else { return false }
            return (try? SweepSettings(parsed)) != nil
        }
        for (option, accepted, refused) in [
            ("steps", ["1", "10000000"], ["0", "10000001"]), ("batch", ["1", "4096"], ["0", "4097"]),
            ("length", ["2", "65536"], ["1", "65537"]), ("evaluate-every", ["1", "10000000"], ["0", "10000001"]),
            ("evaluation-batches", ["0", "100000"], ["-1", "100001"]), ("seed", ["0", "2147483647"], ["-1", "2147483648"]),
            ("seeds", ["1", "100"], ["0", "101"]), ("experts", ["2", "1024", "2,1024"], ["1", "1025", "2,1"]),
            ("capacity-factor", ["0.001", "1000"], ["0", "-1", "1000.5", "nan", "inf"]),
            ("aux-loss-weight", ["0", "1000"], ["-0.001", "1000.5", "nan"]), ("peak-lr", ["1e-9", "5"], ["0", "-1", "inf", "nan"]),
        ] {
            for value in accepted { #expect(parses(option, value), "--\(option) \(value) should be accepted") }
            for value in refused { #expect(!parses(option, value), "--\(option) \(value) should be refused") }
        }
    }

    @Test("every table of the compare report is well-formed Markdown: each row has its header's columns")
    func reportTablesAreWellFormed() throws {
        for seeds in [1, 3] {
            let parsed = try Arguments(
                ["--experts", "4,8", "--steps", "4", "--seeds", "\(seeds)"], command: "compare", options: ["experts", "steps", "seeds"],
                flags: [])
            let settings = try SweepSettings(parsed)
            let layer = LayerInterval(layer: 0, dropped: 0.1, entropy: 1.2, busiest: 1.5, quietest: 0.5, idle: 0.25, longestIdle: 2)
            var records: [RunRecord] = []
            for seed in settings.seeds {
                for variant in settings.variants {
                    var points: [RunPoint] = []
                    for step in [0, 2, 4] {
                        let loss = 9 - Double(step) - Double(seed) / 10
                        let layers = variant.experts > 0 && step > 0 ? [layer] : []
                        points.append(RunPoint(step: step, trainingFLOPs: Double(step) * 1e9, validationCE: loss, layers: layers))
                    }
                    records.append(RunRecord(variant: variant.name, seed: seed, points: points))
                }
            }
            let lines = CompareReport(records: records, variants: settings.variants, settings: settings).tables()
            var tables: [[String]] = [], current: [String] = []
            for line in lines + [""] {
                if line.hasPrefix("|") { current.append(line) } else if !current.isEmpty { tables.append(current); current = [] }
            }
            #expect(tables.count == 3, "\(lines)")
            for table in tables {
                let columns = table[0].filter { $0 == "|" }.count
                #expect(table.count >= 3 && table[1].allSatisfy { "|-".contains($0) }, "\(table)")
                for row in table { #expect(row.hasSuffix("|") && row.filter { $0 == "|" }.count == columns, "\(row) in \(table[0])") }
            }
        }
    }
}

extension CompareTests {
    /// Whether every object in `value`, at any depth, lists its keys in sorted order.
    static func keysSorted(_ value: StrictJSONValue) -> Bool {
        switch value {
        case .object(let members): members.map(\.key) == members.map(\.key).sorted() && members.allSatisfy { keysSorted($0.value) }
        case .array(let items): items.allSatisfy(keysSorted)
        default: true
        }
    }

    @Test("compare's JSON lines (a run's points, the report) list keys in sorted order at every level, so equal runs write equal bytes")
    func jsonKeysAreSorted() throws {
        let scratch = ScratchDirectory()
        let url = scratch.path("points.jsonl")
        let layer = LayerInterval(layer: 0, dropped: 0.1, entropy: 1.2, busiest: 1.5, quietest: 0.5, idle: 0.25, longestIdle: 2)
        let points = [
            RunPoint(step: 0, trainingFLOPs: 0, validationCE: 9, layers: []),
            RunPoint(step: 2, trainingFLOPs: 2e9, validationCE: .nan, layers: [layer, layer]),
        ]
        try SweepRun.writePoints(points, to: url)
        let parsed = try Arguments(["--experts", "4", "--steps", "2"], command: "compare", options: ["experts", "steps"], flags: [])
        let settings = try SweepSettings(parsed)
        let records = settings.variants.map { RunRecord(variant: $0.name, seed: 0, points: points) }
        let report = CompareReport(records: records, variants: settings.variants, settings: settings).jsonl()
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n") + report.split(separator: "\n")
        #expect(lines.count > 2)
        for line in lines {
            let value = try parseStrictJSON(Array(line.utf8))
            #expect(Self.keysSorted(value), "\(line)")
        }
    }
}
