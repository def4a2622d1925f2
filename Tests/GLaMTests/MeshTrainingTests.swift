// Expert-parallel training on the virtual mesh against the single-device run with the same groups:
// losses, aux loss, gradients and training steps on meshes of 1, 2, 4, 8 and 2×2 cores; the
// layout of weights and optimizer statistics; sharded Adafactor; refusals.

import Testing

@testable import GLaM

struct MeshTrainingTests {
    /// A model whose expert weights [8, 128, 256] get factored Adafactor statistics, two MoE layers,
    /// 8 groups; batch 8 rows of 32.
    static func setup() throws -> (ModelConfiguration, TrainingOptions, TextDataset, BytePairTokenizer) {
        let sample = try corpusSample(bytes: 30_000)
        let configuration = ModelConfiguration(
            vocabSize: 512, modelDim: 128, numLayers: 4, numHeads: 4, headDim: 32, ffDim: 256, numExperts: 8, numGroups: 8)
        let tokenizer = try BytePairTokenizer.train(on: TextDataset.trainingText(of: sample), vocabularySize: configuration.vocabSize)
        var options = TrainingOptions()
        options.batchSize = 8
        options.sequenceLength = 32
        options.steps = 3
        options.seed = 5
        return (configuration, options, TextDataset(text: sample, tokenizer: tokenizer, length: 32), tokenizer)
    }

    static let meshes: [([Int], [String])] = [
        ([1], ["data"]), ([2], ["data"]), ([4], ["data"]), ([8], ["data"]), ([2, 2], ["data", "mdl"]), ([2], ["mdl"]),
    ]

    /// |a − b| ≤ tolerance · max|b| elementwise (relative to the largest element of b).
    static func close(_ a: Tensor<Float>, _ b: Tensor<Float>, _ tolerance: Float) -> Bool {
        let scale = b.scalars.map(abs).max() ?? 0
        return a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { abs($0 - $1) <= tolerance * scale }
    }

    @Test("the bytes a core has sent are its ledger's, on one core (nothing) and on 2×2 (every core the same, all axes)")
    func bytesSentPerCore() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        for (d, m) in [(1, 1), (2, 2)] {
            let trainer = try MeshTrainer(
                configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
                mesh: try DeviceMesh(dataCores: d, modelCores: m))
            #expect(trainer.bytesSentPerCore == (0, 0))
            _ = try trainer.trainStep()
            let sent = trainer.bytesSentPerCore
            let cores = trainer.mesh.coreCount
            for (axis, bytes) in [(DeviceMesh.dataAxisName, sent.data), (DeviceMesh.modelAxisName, sent.model)] {
                let perCore = trainer.ledger.bytesSent(along: axis, coreCount: cores)
                #expect(perCore.allSatisfy { $0 == bytes }, "\(d)x\(m) \(axis): \(perCore) vs \(bytes)")
            }
            #expect(d * m == 1 ? sent == (0, 0) : sent.data > 0 && sent.model > 0, "\(d)x\(m): \(sent)")
            #expect(trainer.ledger.totalBytes == cores * (sent.data + sent.model))
        }
    }

    @Test("loss, aux loss and gradients on meshes of 1, 2, 4, 8, 2×2 and mdl-only 2 cores equal one device's (bitwise on one core)")
    func gradientsEqualSingleDevice() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        let parameters = try ModelParameters(configuration: configuration, seed: options.seed)
        let rows = TextDataset.rows(step: 0, batchSize: options.batchSize, rowCount: dataset.training.count, seed: options.seed)
        let tape = Tape<Float>()
        let variables = parameters.variables(on: tape)
        let output: DecoderOutput<Float> = try variables(dataset.training.batch(rows: rows))
        let outputLoss = try #require(output.loss)
        let reference = variables.gradients(from: tape.gradients(of: outputLoss))
        for (shape, names) in Self.meshes {
            let trainer = try MeshTrainer(
                configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
                mesh: try DeviceMesh(shape: shape, axisNames: names))
            let (report, gradients) = try trainer.gradients()
            if shape == [1] {
                #expect(report.loss.bitPattern == outputLoss.value.scalar.bitPattern)
                #expect(report.auxLoss.bitPattern == output.auxLoss.value.scalar.bitPattern)
                for path in parameters.paths { #expect(gradients[path] == reference[path], "\(path)") }
            } else {
                // Only sums across cores (and over H on mdl) are reordered: measured, at most 1.3e-6
                // of the tensor's largest gradient element. With experts split over data alone, every expert's
                // gradient is summed over the same rows in the same order as on one device (each
                // core seeds its own loss, and the sum of d such gradients divided by d, a power of 2,
                // is exact), so it is bitwise equal.
                #expect(abs(report.loss - outputLoss.value.scalar) <= 1e-6 * outputLoss.value.scalar, "\(shape)")
                #expect(abs(report.auxLoss - output.auxLoss.value.scalar) <= 1e-6 * output.auxLoss.value.scalar, "\(shape)")
                for path in parameters.paths {
                    #expect(Self.close(gradients[path], reference[path], 1e-5), "\(shape) \(path)")
                    if names == ["data"] && path.isExpertWeight {
                        #expect(gradients[path] == reference[path], "\(shape) \(path)")
                    }
                }
            }
        }
    }

    @Test("three training steps on meshes of 1, 2, 4, 8, 2×2 and mdl-only 2 cores: one device's losses, parameters and statistics")
    func stepsEqualSingleDevice() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        let single = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        let expected = try (0..<3).map { _ in try single.trainStep() }
        for (shape, names) in Self.meshes {
            let trainer = try MeshTrainer(
                configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
                mesh: try DeviceMesh(shape: shape, axisNames: names))
            let reports = try (0..<3).map { _ in try trainer.trainStep() }
            #expect(reports.map { $0.experts.map(\.requested) } == expected.map { $0.experts.map(\.requested) }, "\(shape)")
            #expect(reports.map { $0.experts.map(\.kept) } == expected.map { $0.experts.map(\.kept) }, "\(shape)")
            // Every other field of the report is one device's too: its step, tokens, schedule and skip,
            // and each loss term.
            #expect(reports.map(\.step) == expected.map(\.step) && reports.map(\.tokens) == expected.map(\.tokens), "\(shape)")
            #expect(reports.map(\.applied) == expected.map(\.applied) && reports.map(\.learningRate) == expected.map(\.learningRate))
            for (report, reference) in zip(reports, expected) {
                for (a, b) in [
                    (report.crossEntropy, reference.crossEntropy), (report.zLoss, reference.zLoss), (report.auxLoss, reference.auxLoss),
                ] {
                    #expect(abs(a - b) <= 1e-5 * max(abs(b), 1e-3), "\(shape): \(a) vs \(b)")
                }
            }
            // The ledger holds exactly what the communication model predicts, per core and axis.
            let layout = trainer.layout
            let predicted = try stepCommunication(
                configuration, batchSize: options.batchSize, length: options.sequenceLength, dataCores: layout.dataCores,
                modelCores: layout.modelCores)
            let cores = trainer.mesh.coreCount
            #expect(trainer.ledger.bytesSent(along: "data", coreCount: cores) == [Int](repeating: 3 * predicted.data, count: cores))
            #expect(trainer.ledger.bytesSent(along: "mdl", coreCount: cores) == [Int](repeating: 3 * predicted.model, count: cores))
            #expect((layout.dataCores > 1) == (predicted.allToAll > 0 && predicted.gradientAllReduce > 0))
            #expect((layout.modelCores > 1) == (predicted.expertAllReduce > 0 && predicted.optimizerModel > 0))
            if shape == [1] {
                #expect(reports.map(\.loss.bitPattern) == expected.map(\.loss.bitPattern))
                #expect(trainer.checkpoint == single.checkpoint)
            } else {
                // Measured, relative to each tensor's largest element: parameters ≤ 7e-7, statistics ≤ 2e-6.
                #expect(zip(reports, expected).allSatisfy { abs($0.loss - $1.loss) <= 1e-5 * $1.loss }, "\(shape)")
                for (path, tensor) in trainer.parameters.weights {
                    #expect(Self.close(tensor, single.parameters[path], 1e-5), "\(shape) \(path)")
                }
                #expect(trainer.optimizer.slots.keys.sorted() == single.optimizer.slots.keys.sorted())
                for (name, slot) in trainer.optimizer.slots {
                    let reference = try #require(single.optimizer.slots[name])
                    switch (slot, reference) {
                    case (.full(let a), .full(let b)): #expect(Self.close(a, b, 1e-5), "\(shape) \(name)")
                    case (.factored(let a, let b), .factored(let c, let d)):
                        #expect(Self.close(a, c, 1e-5) && Self.close(b, d, 1e-5), "\(shape) \(name)")
                    default: Issue.record("\(shape) \(name): statistics of different kinds")
                    }
                }
            }
        }
    }

    @Test("on a 2×2 mesh the results do not depend on the thread count")
    func threadCountIndependence() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        var runs: [(losses: [UInt32], parameters: ModelParameters)] = []
        for threads in [1, 3] {
            try withThreadCount(threads) {
                let trainer = try MeshTrainer(
                    configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
                    mesh: try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"]))
                runs.append(([try trainer.trainStep().loss.bitPattern, try trainer.trainStep().loss.bitPattern], trainer.parameters))
            }
        }
        #expect(runs[0].losses == runs[1].losses && runs[0].parameters == runs[1].parameters)
    }

    @Test("a step whose loss is not finite is skipped on every core and counted")
    func nonFiniteStepIsSkipped() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        let trainer = try MeshTrainer(
            configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
            mesh: try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"]))
        for core in 0..<4 { trainer.coreParameters[core].finalNorm.scalars[0] = .nan }
        let before = trainer.coreParameters
        let optimizers = trainer.coreOptimizers
        let report = try trainer.trainStep()
        #expect(!report.applied && trainer.skippedSteps == 1 && trainer.step == 1 && trainer.coreOptimizers == optimizers)
        // The skipped step sent everything but the optimizer's sums.
        let predicted = try stepCommunication(configuration, batchSize: 8, length: 32, dataCores: 2, modelCores: 2).withoutOptimizer
        #expect(trainer.ledger.bytesSent(along: "mdl", coreCount: 4) == [Int](repeating: predicted.model, count: 4))
        #expect(trainer.ledger.bytesSent(along: "data", coreCount: 4) == [Int](repeating: predicted.data, count: 4))
        #expect(
            trainer.coreParameters.map { $0.map { $1.scalars.map(\.bitPattern) } }
                == before.map { $0.map { $1.scalars.map(\.bitPattern) } })
    }

    @Test("a dense model trains data-parallel on 2 cores with one device's losses")
    func denseModel() throws {
        var (configuration, options, dataset, tokenizer) = try Self.setup()
        configuration.numExperts = 0
        options.steps = 2
        let single = try Trainer(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        let mesh = try MeshTrainer(
            configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
            mesh: try DeviceMesh(shape: [2], axisNames: ["data"]))
        for _ in 0..<2 {
            let (a, b) = (try single.trainStep(), try mesh.trainStep())
            #expect(abs(a.loss - b.loss) <= 1e-6 * a.loss && b.experts.isEmpty)
        }
    }

    @Test("expert weights and their statistics live split on the cores; gathering restores them")
    func layout() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        let trainer = try MeshTrainer(
            configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset,
            mesh: try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"]))
        _ = try trainer.trainStep()
        // Core (1, 0) holds experts 4..<8 and hidden units 0..<128 of wi [8, 128, 256].
        let wi = trainer.parameters[.layer(0, .expertInput)]
        let part = trainer.coreParameters[2][.layer(0, .expertInput)]
        #expect(part.shape == [4, 128, 128])
        #expect(part.scalars[0] == wi.scalars[4 * 128 * 256] && part.scalars[127] == wi.scalars[4 * 128 * 256 + 127])
        #expect(trainer.coreParameters[3][.layer(0, .expertOutput)].shape == [4, 128, 128])
        #expect(trainer.coreParameters[3][.layer(1, .ffnOutput)].shape == [256, 128])
        guard case .factored(let vr, let vc)? = trainer.coreOptimizers[1].slots[.layer(0, .expertInput)] else {
            Issue.record("wi should have factored statistics")
            return
        }
        #expect(vr.shape == [4, 128] && vc.shape == [4, 128])
        // Resharding the gathered state gives every core its own part back.
        let again = try MeshTrainer(resuming: trainer.checkpoint, dataset: dataset, mesh: trainer.mesh)
        #expect(again.coreParameters == trainer.coreParameters && again.coreOptimizers == trainer.coreOptimizers)
    }

    @Test(
        "Adafactor on a weight in shards (rows, columns or leading split) equals the whole-weight update, statistics included",
        arguments: [[2, 128, 256], [2, 8, 16]])  // factored, and full statistics
    func shardedAdafactor(shape: [Int]) throws {
        var generator = SeededGenerator(seed: 3)
        let count = shape.reduce(1, *)
        let weight = Tensor<Float>(shape: shape, scalars: (0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
        let whole = Adafactor()
        var wholeSlot: AdafactorSlot? = nil
        var reference = weight
        // Every seventh gradient element exactly 0 (a token id never seen, a padded position): the
        // statistics' ε₁ alone keeps its update finite.
        let grads = (0..<3).map { _ in
            Tensor<Float>(
                shape: shape, scalars: (0..<count).map { i in Float.random(in: -0.1...0.1, using: &generator) * (i % 7 == 0 ? 0 : 1) })
        }
        for (step, g) in grads.enumerated() {
            whole.update(weight: &reference, gradient: g, slot: &wholeSlot, step: step, learningRate: 0.01)
        }
        for (split, axis) in [(AdafactorShardSplit.rows, 1), (.columns, 2), (.none, 0)] {
            // shards[b][k]: leading half b, part k along `axis` (a leading split alone for .none).
            func parts(_ t: Tensor<Float>) -> [[Tensor<Float>]] {
                t.split(alongAxis: 0, into: 2).map { axis == 0 ? [$0] : $0.split(alongAxis: axis, into: 2) }
            }
            var shards = parts(weight).map { $0.map { AdafactorShard(weight: $0, gradient: $0, slot: nil) } }
            for (step, g) in grads.enumerated() {
                let gradientParts = parts(g)
                shards = shards.enumerated().map { b, row in
                    row.enumerated().map { k, shard in AdafactorShard(weight: shard.weight, gradient: gradientParts[b][k], slot: shard.slot)
                    }
                }
                Adafactor.updateShards(
                    &shards, split: split, shape: shape, configuration: whole.configuration, step: step, learningRate: 0.01)
            }
            func joined(_ pick: (AdafactorShard) -> Tensor<Float>, along inner: Int?) -> Tensor<Float> {
                Tensor.concatenated(
                    shards.map { row in inner.map { Tensor.concatenated(row.map(pick), alongAxis: $0) } ?? pick(row[0]) }, alongAxis: 0)
            }
            #expect(Self.close(joined(\.weight, along: max(axis, 1)), reference, 1e-6), "\(shape) \(split)")
            #expect(joined(\.weight, along: max(axis, 1)) != weight)
            switch try #require(wholeSlot) {
            case .full(let v):
                #expect(Self.close(joined({ $0.slot?.fullStatistic ?? Tensor(0) }, along: max(axis, 1)), v, 1e-6), "\(shape) \(split)")
            case .factored(let vr, let vc):
                // A row split splits vr (its last axis) and shares vc; a column split the reverse.
                let rows = joined({ $0.slot?.rowStatistic ?? Tensor(0) }, along: split == .rows ? 1 : nil)
                let columns = joined({ $0.slot?.columnStatistic ?? Tensor(0) }, along: split == .columns ? 1 : nil)
                #expect(Self.close(rows, vr, 1e-6) && Self.close(columns, vc, 1e-6), "\(shape) \(split)")
            }
        }
    }

    @Test("a mesh that does not divide the experts, batch, groups or H, or has an unknown axis, is refused")
    func refusals() throws {
        let (configuration, options, dataset, tokenizer) = try Self.setup()
        func attempt(_ c: ModelConfiguration, _ o: TrainingOptions, _ shape: [Int], _ names: [String]) -> String? {
            do {
                _ = try MeshTrainer(
                    configuration: c, options: o, tokenizer: tokenizer, dataset: dataset,
                    mesh: try DeviceMesh(shape: shape, axisNames: names))
                return nil
            } catch let error as MeshError { return error.description } catch { return "\(error)" }
        }
        var sixExperts = configuration
        sixExperts.numExperts = 6
        sixExperts.numGroups = 4
        #expect(attempt(sixExperts, options, [4], ["data"])?.contains("do not divide the 6 experts") == true)
        var sixRows = options
        sixRows.batchSize = 6
        #expect(attempt(configuration, sixRows, [4], ["data"])?.contains("do not divide the batch of 6 rows") == true)
        #expect(attempt(configuration, options, [16], ["data"])?.contains("do not divide") == true)
        #expect(attempt(configuration, options, [2, 3], ["data", "mdl"])?.contains("expert hidden size 256") == true)
        #expect(attempt(configuration, options, [2, 2], ["replica", "data"])?.contains("'replica' is not supported") == true)
    }
}

extension AdafactorSlot {
    /// `v` of a full slot, `vr` and `vc` of a factored one (a scalar zero otherwise): what the
    /// sharded-statistics checks compare.
    var fullStatistic: Tensor<Float> { if case .full(let v) = self { v } else { Tensor(0) } }
    var rowStatistic: Tensor<Float> { if case .factored(let vr, _) = self { vr } else { Tensor(0) } }
    var columnStatistic: Tensor<Float> { if case .factored(_, let vc) = self { vc } else { Tensor(0) } }
}
