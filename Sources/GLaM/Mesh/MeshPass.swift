// The expert-parallel forward and backward passes over a mesh (the communication half of
// MeshTrainer.swift), shared by training and by `glam trace --mesh`. Per MoE layer, forward:
// dispatch all-to-all over `data`, the local experts, their partial sums over H all-reduced over
// `mdl`, and the all-to-all back; backward the same in reverse. Every byte goes through the
// collectives and is counted in `ledger`.

/// One pass over the cores' `CoreStep`s on a laid-out mesh.
struct MeshPass {
    let layout: MeshLayout
    let ledger: CommunicationLedger

    var mesh: DeviceMesh { layout.mesh }

    /// The shapes of one MoE layer's exchange: experts E, this core's groups G/d, capacity C, M.
    func exchangeShape(_ cores: [CoreStep], layer s: Int) -> (e: Int, g: Int, c: Int, m: Int) {
        (
            cores[0].configuration.numExperts, cores[0].configuration.numGroups, cores[0].segments[s].routed!.gating.routing.capacity,
            cores[0].configuration.modelDim
        )
    }

    /// The forward pass: segments on every core, and per MoE layer the dispatch all-to-all, the
    /// local experts, the all-reduce of their partial sums over `mdl` and the all-to-all back.
    func forward(_ cores: [CoreStep]) throws {
        let (mesh, d) = (self.mesh, layout.dataCores)
        let moeCount = cores[0].moeLayers.count
        var returned: [Tensor<Float>]? = nil  // per core [E·(G/d)·C, M]
        for s in 0...moeCount {
            let incoming = returned
            try check(mesh.run { core in try cores[core].forwardSegment(s, expertOutput: incoming?[core]) })
            guard s < moeCount else { break }
            let (e, g, c, m) = exchangeShape(cores, layer: s)
            let dispatched = cores.map { $0.segments[s].routed!.expertInput.value.reshaped(to: [e, g, c, m]) }
            let byExpert = try exchange(dispatched, along: layout.dataAxisName, split: 0, join: 1)  // [E/d, G, C, M]
            var out = mesh.run { core in
                cores[core].forwardExperts(s, input: byExpert[core].reshaped(to: [e / d, d * g * c, m]))
            }  // [E/d, G·C, M], partial over H
            if let model = layout.modelAxisName, layout.modelCores > 1 { out = try mesh.allReduce(out, along: model, ledger: ledger) }
            returned = try exchange(out.map { $0.reshaped(to: [e / d, d * g, c, m]) }, along: layout.dataAxisName, split: 1, join: 0)
                .map { $0.reshaped(to: [e * g * c, m]) }  // [E, G/d, C, M] flattened
        }
    }

    /// The backward pass: segments in reverse, and per MoE layer the two all-to-alls in reverse
    /// order around the experts' backward, the input gradient all-reduced over `mdl`.
    func backward(_ cores: [CoreStep]) throws {
        let (mesh, d) = (self.mesh, layout.dataCores)
        let moeCount = cores[0].moeLayers.count
        _ = mesh.run { core in cores[core].backwardSegment(moeCount, expertInputGradient: nil) }
        for s in stride(from: moeCount - 1, through: 0, by: -1) {
            let (e, g, c, m) = exchangeShape(cores, layer: s)
            let dOut = try exchange(
                cores.map { $0.expertOutputGradient(s + 1).reshaped(to: [e, g, c, m]) }, along: layout.dataAxisName, split: 0, join: 1)
            var dIn = mesh.run { core in
                cores[core].backwardExperts(s, gradient: dOut[core].reshaped(to: [e / d, d * g * c, m]))
            }  // [E/d, G·C, M], partial over H
            if let model = layout.modelAxisName, layout.modelCores > 1 { dIn = try mesh.allReduce(dIn, along: model, ledger: ledger) }
            let dDispatched = try exchange(
                dIn.map { $0.reshaped(to: [e / d, d * g, c, m]) }, along: layout.dataAxisName, split: 1, join: 0)
            _ = mesh.run { core in
                cores[core].backwardSegment(s, expertInputGradient: dDispatched[core].reshaped(to: [e, g * c, m]))
            }
        }
    }

    /// An all-to-all over `axis`, or nothing to do on a mesh without it.
    func exchange(_ shards: [Tensor<Float>], along axis: String?, split: Int, join: Int) throws -> [Tensor<Float>] {
        guard let axis else { return shards }
        return try mesh.allToAll(shards, along: axis, splitDimension: split, concatDimension: join, ledger: ledger)
    }

    func check(_ results: [Result<Void, any Error>]) throws {
        for result in results { try result.get() }
    }
}

/// What one core computed in a forward pass on the mesh.
public struct MeshCoreForward {
    /// The core.
    public let core: Int
    /// The batch rows it held (its share along `data`).
    public let rows: Range<Int>
    /// Its logits `[B/d, T, V]`.
    public let logits: Tensor<Float>
    /// The gating of each MoE layer on its G/d groups, in layer order.
    public let gatings: [Top2GatingResult<Float>]
}

extension MeshLayout {
    /// GLaM's forward pass of `parameters` on `batch` over this mesh, as `MeshTrainer` runs it:
    /// rows and routing groups split over `data`, experts split E over `data` and H over `mdl`,
    /// tokens exchanged by all-to-all (every byte counted in `ledger`). `observers[core]`, when
    /// given, receives that core's intermediates (its rows; MoE expert outputs are not reported,
    /// they live on other cores).
    ///
    /// - Throws: `MeshError` when the mesh does not divide the batch rows, groups, experts or H;
    ///   `ModelError` for a batch that does not fit the model.
    public func forward(
        _ parameters: ModelParameters, batch: TokenBatch, ledger: CommunicationLedger, observers: [(any ForwardObserver)?]? = nil
    ) throws -> [MeshCoreForward] {
        let c = parameters.configuration
        try check(c, batchSize: batch.batchSize)
        if let problem = batch.problem(vocabularySize: c.vocabSize) { throw ModelError(problem) }
        let cores = coreSteps(batch, configuration: c, parameters: { shard(parameters, core: $0) }, observers: observers)
        try MeshPass(layout: self, ledger: ledger).forward(cores)
        return cores.enumerated().map { core, step in
            MeshCoreForward(
                core: core, rows: rows(of: core, batchSize: batch.batchSize), logits: step.segments.last!.logits!.value,
                gatings: step.segments.dropLast().map { $0.routed!.gating })
        }
    }

    /// The batch rows core `core` holds: its share of B along `data`.
    func rows(of core: Int, batchSize: Int) -> Range<Int> {
        let (i, share) = (dataCoordinate(of: core), batchSize / dataCores)
        return (i * share)..<((i + 1) * share)
    }

    /// Every core's share of a step on `batch`, the one place a step is split over the cores: its
    /// rows (B/d along `data`), its routing groups (G/d) and its `parameters(core)`.
    func coreSteps(
        _ batch: TokenBatch, configuration c: ModelConfiguration, parameters: (Int) -> ModelParameters,
        observers: [(any ForwardObserver)?]? = nil
    ) -> [CoreStep] {
        var local = c
        local.numGroups /= dataCores
        return (0..<mesh.coreCount).map { core in
            CoreStep(
                configuration: local, batch: batch.rows(rows(of: core, batchSize: batch.batchSize)), parameters: parameters(core),
                observer: observers?[core])
        }
    }
}

extension MeshLayout {
    /// The name of the `data` axis, if the mesh has one.
    var dataAxisName: String? { dataAxis.map { mesh.axisNames[$0] } }
    /// The name of the `mdl` axis, if the mesh has one.
    var modelAxisName: String? { modelAxis.map { mesh.axisNames[$0] } }
}
