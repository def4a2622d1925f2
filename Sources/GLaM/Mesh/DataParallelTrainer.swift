// Data-parallel training on the virtual mesh: each core of the `data` axis computes the loss and
// gradients of its share of the batch (consecutive rows, so its groups are exactly the
// single-device groups it holds), gradients are all-reduced (summed in coordinate order, then
// divided by the number of cores), and every replica applies the same Adafactor update. Cores on
// other axes hold copies. Experts are replicated here; expert parallelism is in ExpertParallel.swift.
//
// Why this equals one device: CE, z-loss and the aux loss are means over positions (or groups) of
// equal-sized shares, so the single-device loss is the mean of the cores' losses and its gradient
// the mean of theirs. Only the order of the final sums differs, so the results agree to rounding
// (bitwise on a mesh of one core).

/// Trains on a mesh by data parallelism with gradient all-reduce.
public final class DataParallelTrainer {
    /// The mesh.
    public let mesh: DeviceMesh
    /// The axis the batch is split over.
    public let axis: String
    /// The parameters (identical on every core).
    public private(set) var parameters: ModelParameters
    /// The optimizer (identical on every core).
    public private(set) var optimizer: Adafactor
    /// The next step's 0-based index.
    public private(set) var step = 0
    /// Steps skipped because the loss or a gradient was not finite.
    public private(set) var skippedSteps = 0
    /// The run's settings.
    public let options: TrainingOptions
    /// The data.
    public let dataset: TextDataset
    /// The bytes each core has sent.
    public let ledger = CommunicationLedger()

    /// A fresh run, initialised exactly as `Trainer` would be.
    public init(
        configuration: ModelConfiguration, options: TrainingOptions, dataset: TextDataset, mesh: DeviceMesh, axis: String = "data"
    ) throws {
        let n = mesh.shape[try mesh.axis(axis)]
        guard options.batchSize % n == 0 else {
            throw MeshError("the \(n) cores of axis '\(axis)' do not divide the batch of \(options.batchSize) rows")
        }
        guard configuration.numGroups % n == 0 else {
            throw MeshError("the \(n) cores of axis '\(axis)' do not divide the \(configuration.numGroups) groups")
        }
        try Trainer.validate(options: options, configuration: configuration, dataset: dataset)
        self.mesh = mesh
        self.axis = axis
        self.options = options
        self.dataset = dataset
        parameters = ModelParameters(configuration: configuration, seed: options.seed)
        optimizer = Adafactor(configuration: options.adafactor)
    }

    /// Runs one step on every core and returns the batch loss (the mean of the cores' losses).
    public func trainStep() throws -> Float {
        let axisIndex = try mesh.axis(axis)
        let n = mesh.shape[axisIndex]
        let rows = TextDataset.rows(step: step, batchSize: options.batchSize, rowCount: dataset.training.count, seed: options.seed)
        var perCore = parameters.configuration
        perCore.numGroups /= n
        let local = perCore
        let share = options.batchSize / n
        let (parameters, training, mesh) = (self.parameters, dataset.training, self.mesh)
        let results: [(loss: Float, gradients: [String: Tensor<Float>])] = try mesh.run { core in
            let j = mesh.coordinates(of: core)[axisIndex]
            let batch = training.batch(rows: Array(rows[(j * share)..<((j + 1) * share)]))
            let tape = Tape<Float>()
            let variables = parameters.tensors.mapValues { tape.variable($0) }
            let loss = try decoderForward(parameters: variables, configuration: local, batch: batch).loss!
            let gradients = tape.gradients(of: loss)
            return (loss.value.scalar, variables.mapValues { gradients[$0] ?? Tensor(zeros: $0.shape) })
        }.map { try $0.get() }
        // Gradient all-reduce, one parameter at a time, then the mean.
        var averaged: [String: Tensor<Float>] = [:]
        for name in parameters.tensors.keys.sorted() {
            let reduced = try mesh.allReduce(results.map { $0.gradients[name]! }, along: axis, ledger: ledger)
            averaged[name] = reduced[0] * (1 / Float(n))
        }
        let group = mesh.group(of: 0, along: axisIndex)
        let loss = group.reduce(Float(0)) { $0 + results[$1].loss } / Float(n)
        let learningRate = options.schedule.learningRate(step: step)
        if !optimizer.updateIfFinite(&self.parameters, gradients: averaged, loss: loss, step: step, learningRate: learningRate) {
            skippedSteps += 1
        }
        step += 1
        return loss
    }
}
