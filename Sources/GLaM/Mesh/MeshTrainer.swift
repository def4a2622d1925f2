// Training on a virtual `data × mdl` mesh, as GLaM trained (see the "Sharding over TPU cores"
// article): the batch rows
// (and so the MoE groups) are split over `data`; each MoE layer's experts are split E over `data`
// and H over `mdl`; every other weight is replicated. One step:
//
//   forward, per MoE layer:  gating and dispatch per core                    [E, G/d, C, M]
//                            all-to-all over data (split E, join G)           [E/d, G, C, M]
//                            local experts on H/m hidden units, all-reduce over mdl
//                            all-to-all back (split G, join E), combine       [G/d, S, M]
//   backward, per MoE layer: the same all-to-alls in reverse order carry the gradients (the
//                            adjoint of an all-to-all is the reverse all-to-all), and the expert
//                            input gradient is all-reduced over mdl (the adjoint of the replication)
//   gradients:               replicated weights all-reduced over data (summed in coordinate
//                            order) and divided by d; an expert weight's gradient is already
//                            complete on its core (the all-to-alls brought every group's share),
//                            and is divided by d too
//   update:                  Adafactor on each core's shards (ShardedAdafactor.swift); the few
//                            sums it needs across shards are all-reduces
//
// The single-device loss is the mean of the d cores' losses (CE, z and aux are means over equal
// shares), so its gradient is the mean of theirs. On one core every step is bitwise the
// single-device `Trainer`'s; on more, only the order of sums across cores (and over H) differs.

import Foundation

/// Trains a GLaM model on a virtual mesh with expert parallelism, data parallelism and sharded
/// optimizer state.
public final class MeshTrainer: TrainingSession {
    /// How parameters and statistics are laid out.
    public let layout: MeshLayout
    /// The model.
    public let configuration: ModelConfiguration
    /// The run's settings.
    public let options: TrainingOptions
    /// The tokenizer (for checkpoints).
    public let tokenizer: BytePairTokenizer
    /// The data.
    public let dataset: TextDataset
    /// The next step's 0-based index.
    public private(set) var step: Int
    /// Steps skipped because the loss or a gradient was not finite.
    public private(set) var skippedSteps: Int
    /// The bytes every core has sent, per axis, since the start (or the last `ledger.reset()`).
    public let ledger = CommunicationLedger()
    /// Per core, its parameters (expert weights: its shards).
    package internal(set) var coreParameters: [ModelParameters]
    /// Per core, the Adafactor statistics of its parameters.
    package private(set) var coreOptimizers: [Adafactor]

    /// A fresh run, initialised exactly as `Trainer` is, then laid out on `mesh`.
    /// - Throws: `MeshError` for a mesh that does not divide the experts, groups, batch or H;
    ///   `ModelError` for options that do not fit the model or data.
    public convenience init(
        configuration: ModelConfiguration, options: TrainingOptions, tokenizer: BytePairTokenizer, dataset: TextDataset, mesh: DeviceMesh
    ) throws {
        let start = try Trainer.start(configuration: configuration, options: options, tokenizer: tokenizer, dataset: dataset)
        try self.init(resuming: start, dataset: dataset, mesh: mesh)
    }

    /// Continues a run from a checkpoint (from any mesh or one device) on `mesh`.
    public init(resuming checkpoint: TrainingCheckpoint, dataset: TextDataset, mesh: DeviceMesh) throws {
        DebugBuildNote.printOnce()
        let layout = try MeshLayout(mesh: mesh)
        let c = checkpoint.parameters.configuration
        try layout.check(c, batchSize: checkpoint.options.batchSize)
        try Trainer.validate(options: checkpoint.options, configuration: c, dataset: dataset)
        try Trainer.checkSameData(checkpoint, dataset)
        self.layout = layout
        configuration = c
        options = checkpoint.options
        tokenizer = checkpoint.tokenizer
        self.dataset = dataset
        step = checkpoint.step
        skippedSteps = checkpoint.skippedSteps
        coreParameters = (0..<mesh.coreCount).map { core in layout.shard(checkpoint.parameters, core: core) }
        coreOptimizers = (0..<mesh.coreCount).map { core in
            var optimizer = Adafactor(configuration: checkpoint.optimizer.configuration)
            for (path, slot) in checkpoint.optimizer.slots { optimizer.slots[path] = layout.shard(slot, path: path, core: core) }
            return optimizer
        }
    }

    /// The mesh.
    public var mesh: DeviceMesh { layout.mesh }

    /// The bytes core 0 has sent along `data` and along `mdl` so far (every core sends the same).
    public var bytesSentPerCore: (data: Int, model: Int) {
        let cores = mesh.coreCount
        return (
            ledger.bytesSent(along: DeviceMesh.dataAxisName, coreCount: cores)[0],
            ledger.bytesSent(along: DeviceMesh.modelAxisName, coreCount: cores)[0]
        )
    }

    /// The whole parameters, gathered from the cores.
    public var parameters: ModelParameters { layout.gather(coreParameters) }

    /// The whole optimizer state, gathered from the cores.
    public var optimizer: Adafactor {
        var gathered = Adafactor(configuration: coreOptimizers[0].configuration)
        for path in coreOptimizers[0].slots.keys {
            gathered.slots[path] = layout.gather(coreOptimizers.map { $0.slots[path]! }, path: path)
        }
        return gathered
    }

    /// The checkpoint of the current state, gathered (resumable on one device or any mesh).
    public var checkpoint: TrainingCheckpoint {
        TrainingCheckpoint(
            validated: parameters, optimizer: optimizer, step: step, skippedSteps: skippedSteps, options: options, tokenizer: tokenizer,
            dataFingerprint: dataset.fingerprint)
    }

    /// Runs step `step` on every core and advances. The report's losses are those of the whole
    /// batch (means over the `data` cores); its expert load sums all cores.
    public func trainStep() throws -> StepReport {
        let (gradients, report) = try lossAndGradients()
        if report.applied { try update(gradients: gradients, learningRate: report.learningRate) } else { skippedSteps += 1 }
        step += 1
        return report
    }

    /// The gradients of step `step`'s batch loss, gathered into whole tensors, without updating
    /// anything (the communication is counted), and the step's report as if it were applied.
    package func gradients() throws -> (report: StepReport, gradients: ModelParameters) {
        let (perCore, report) = try lossAndGradients()
        return (report, layout.gather(perCore))
    }

    /// Forward and backward on every core: per core the gradients of the batch loss (replicated
    /// weights all-reduced over `data`), and the report (`applied`: whether they are all finite).
    private func lossAndGradients() throws -> (gradients: [ModelParameters], report: StepReport) {
        let rows = TextDataset.rows(step: step, batchSize: options.batchSize, rowCount: dataset.training.count, seed: options.seed)
        let parameters = coreParameters
        let cores = layout.coreSteps(dataset.training.batch(rows: rows), configuration: configuration, parameters: { parameters[$0] })
        let pass = MeshPass(layout: layout, ledger: ledger)
        try pass.forward(cores)
        try pass.backward(cores)
        let gradients = try averagedGradients(cores)
        return (gradients, report(cores, gradients: gradients))
    }

    /// Per core, the gradients of the batch loss: replicated weights' all-reduced over `data`, then
    /// every gradient divided by d (each core's loss is the mean over its share of the batch).
    private func averagedGradients(_ cores: [CoreStep]) throws -> [ModelParameters] {
        let d = layout.dataCores
        var gradients = coreParameters
        for path in coreParameters[0].paths {
            let parts = cores.map { $0.gradients[path] ?? Tensor(zeros: coreParameters[0][path].shape) }
            var reduced = parts
            if !path.isExpertWeight, let data = layout.dataAxisName {
                reduced = try mesh.allReduce(parts, along: data, ledger: ledger)
            }
            for core in cores.indices { gradients[core][path] = d > 1 ? reduced[core] * (1 / Float(d)) : reduced[core] }
        }
        return gradients
    }

    /// The step's report: losses of the whole batch as means over the `data` cores (`mdl` replicas
    /// hold copies), expert loads and real tokens summed over them.
    private func report(_ cores: [CoreStep], gradients: [ModelParameters]) -> StepReport {
        let d = layout.dataCores
        let firstRow = (0..<d).map { layout.core(data: $0, model: 0) }
        let perCore = firstRow.map { cores[$0].losses }
        let mean = { (value: ((loss: Float, crossEntropy: Float, zLoss: Float, auxLoss: Float)) -> Float) in
            d == 1 ? value(perCore[0]) : perCore.reduce(Float(0)) { $0 + value($1) } / Float(d)
        }
        let loss = mean { $0.loss }
        let finite = Adafactor.isFiniteStep(loss: loss, gradients: gradients.flatMap { $0.weights.map(\.weight) })
        let tokens = firstRow.reduce(0) { $0 + cores[$1].batch.paddings!.filter { $0 == 0 }.count }
        let experts = cores[0].moeLayers.enumerated().map { s, layer in
            ExpertLayerStatistics(layer: layer, gatings: firstRow.map { cores[$0].segments[s].routed!.gating })
        }
        return StepReport(
            step: step, loss: loss, crossEntropy: mean { $0.crossEntropy }, zLoss: mean { $0.zLoss }, auxLoss: mean { $0.auxLoss },
            applied: finite, learningRate: options.schedule.learningRate(step: step), tokens: tokens,
            experts: experts)
    }

    /// Adafactor on every core: replicated weights each core updates alike; expert weights as
    /// shards, with the sums across shards (ShardedAdafactor.swift) made by all-reduces.
    private func update(gradients: [ModelParameters], learningRate: Float) throws {
        let (d, m) = (layout.dataCores, layout.modelCores)
        let mesh = self.mesh
        let (parameters, optimizers, step) = (coreParameters, coreOptimizers, self.step)
        let replicated = parameters[0].paths.filter { !$0.isExpertWeight }
        let updated = mesh.run { core in
            var (weights, optimizer) = (parameters[core], optimizers[core])
            for path in replicated {
                optimizer.update(path, weight: &weights[path], gradient: gradients[core][path], step: step, learningRate: learningRate)
            }
            return (weights, optimizer)
        }
        coreParameters = updated.map(\.0)
        coreOptimizers = updated.map(\.1)
        for path in parameters[0].paths.filter(\.isExpertWeight) {
            // shards[i][j]: the shard on data coordinate i, mdl coordinate j.
            var shards = (0..<d).map { i in
                (0..<m).map { j in
                    let core = layout.core(data: i, model: j)
                    return AdafactorShard(
                        weight: coreParameters[core][path], gradient: gradients[core][path], slot: coreOptimizers[core].slots[path])
                }
            }
            let split: AdafactorShardSplit = m == 1 ? .none : (path.expertHiddenAxis == 2 ? .columns : .rows)
            Adafactor.updateShards(
                &shards, split: split, shape: path.shape(in: configuration), configuration: coreOptimizers[0].configuration, step: step,
                learningRate: learningRate, sums: shardSums())
            for i in 0..<d {
                for j in 0..<m {
                    let core = layout.core(data: i, model: j)
                    coreParameters[core][path] = shards[i][j].weight
                    coreOptimizers[core].slots[path] = shards[i][j].slot
                }
            }
        }
    }

    /// Adafactor's sums across expert-weight shards as all-reduces on the mesh: along a split of H,
    /// over `mdl`; over every shard, over `mdl` and then `data`. The grid `[i][j]` of partials is
    /// the cores at `data` coordinate i and `mdl` coordinate j.
    private func shardSums() -> AdafactorShardSums {
        let (layout, mesh, ledger) = (self.layout, self.mesh, self.ledger)
        func reduced<Scalar: TensorScalar>(_ grid: [[[Scalar]]], along axes: [Int?]) -> [Tensor<Scalar>] {
            var shards = (0..<mesh.coreCount).map { core in
                let values = grid[layout.dataCoordinate(of: core)][layout.modelCoordinate(of: core)]
                return Tensor(shape: [values.count], scalars: values)
            }
            for axis in axes.compactMap({ $0 }) {
                shards = try! mesh.allReduce(shards, along: mesh.axisNames[axis], ledger: ledger)  // equal shapes on every core
            }
            return shards
        }
        return AdafactorShardSums(
            alongSplit: { grid in
                let totals = reduced(grid, along: [layout.modelAxis])
                return (0..<grid.count).map { i in totals[layout.core(data: i, model: 0)].scalars }
            },
            overAll: { grid in reduced(grid, along: [layout.modelAxis, layout.dataAxis])[0].scalars })
    }

    /// Cross-entropy per real token on the validation rows (as `Trainer.validationLoss`), with the
    /// gathered parameters.
    public func validationLoss() throws(ModelError) -> Double {
        try Trainer.validationLoss(parameters: parameters, options: options, dataset: dataset)
    }
}
