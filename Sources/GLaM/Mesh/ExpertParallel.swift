// GShard expert parallelism on the virtual mesh (see the "Sharding over TPU cores" article),
// forward pass of one MoE layer, built from the layer's own three steps (MoE/MoELayer.swift): route,
// experts and combine, with the all-to-alls between them:
//
//   per core:   its G/n groups [G/n, S, M] → router logits → top-2 gating (group-local)
//               → dispatch into its slots of every expert         [E, G/n, C, M]
//   all-to-all along `data`: split E, join G                       [E/n, G, C, M]
//   per core:   its E/n experts on every group's slots             [E/n, G, C, M]
//   all-to-all back: split G, join E                               [E, G/n, C, M]
//   per core:   combine with the gates                             [G/n, S, M]
//
// Each expert sees the same rows in the same order as on one device, and each GEMM's result does
// not depend on how many rows it has, so the output is bitwise the single-device output with the
// same groups (tested). Other mesh axes replicate the computation. This is one layer's forward
// pass, for study; `MeshTrainer` runs the whole model this way, backward included.

extension DeviceMesh {
    /// The MoE layer's forward pass with experts spread over the cores of `axis`.
    ///
    /// - Parameters:
    ///   - inputs: per core, that core's groups `[G/n, S, M]` (cores along other axes hold copies).
    ///   - paddings: per core `[G/n, S]`, or nil.
    ///   - gate: the router `[M, E]`.
    ///   - wi: all experts' input matrices `[E, M, H]` (each core uses its slice of E/n experts).
    ///   - wo: all experts' output matrices `[E, H, M]` (sliced likewise).
    ///   - configuration: the layer; `numGroups` is the total G.
    ///   - axisName: the mesh axis the experts are spread over (`data`).
    ///   - ledger: where the all-to-alls count their bytes, if anywhere.
    /// - Returns: per core `[G/n, S, M]`, and the aux loss averaged over all groups.
    public func expertParallelMoEForward(
        inputs: [Tensor<Float>], paddings: [Tensor<Float>]?, gate: Tensor<Float>, wi: Tensor<Float>, wo: Tensor<Float>,
        configuration: MoELayerConfiguration,
        along axisName: String = DeviceMesh.dataAxisName, ledger: CommunicationLedger? = nil
    ) throws -> (outputs: [Tensor<Float>], auxLoss: Float) {
        let axis = try self.axis(axisName)
        let n = shape[axis]
        let e = configuration.gating.numExperts
        guard e % n == 0 else { throw MeshError("the \(n) cores of axis '\(axisName)' do not divide the \(e) experts") }
        guard configuration.numGroups % n == 0 else {
            throw MeshError("the \(n) cores of axis '\(axisName)' do not divide the \(configuration.numGroups) groups")
        }
        guard inputs.count == coreCount, inputs.allSatisfy({ $0.rank == 3 && $0.shape[0] == configuration.numGroups / n }) else {
            throw MeshError("expected one [G/n, S, M] input per core with G/n = \(configuration.numGroups / n)")
        }
        let (localGroups, m) = (inputs[0].shape[0], inputs[0].shape[2])
        let localExperts = e / n

        // 1. Gating and dispatch, per core: the MoE layer's own route, on its G/n groups.
        var perCore = configuration
        perCore.numGroups /= n
        let local = perCore
        // The layer's weights as constants, made in each core's task (variables are not Sendable).
        let layer: @Sendable () -> MixtureOfExperts<Variable<Float>> = {
            MixtureOfExperts(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))
        }
        let routed: [CoreRouting] = try run { core in
            let x = Variable(constant: inputs[core])  // [G/n, S, M], routed as B = G/n rows of T = S tokens
            let tokens = try layer().route(x, paddings: paddings?[core], configuration: local)
            let (gating, expertIn, slots) = (tokens.gating, tokens.expertInput, tokens.slots)  // expertIn [E, G/n·C, M]
            let c = gating.routing.capacity
            return CoreRouting(
                expertIn: expertIn.value.reshaped(to: [e, localGroups, c, m]), routing: gating.routing, firstGate: gating.firstGate.value,
                secondGate: gating.secondGate.value, auxLoss: gating.auxLoss.value.scalar, slots: slots)
        }.map { try $0.get() }
        let c = routed[0].routing.capacity

        // 2. All-to-all: G-sharded → E-sharded.
        let byExpert = try allToAll(routed.map(\.expertIn), along: axisName, splitDimension: 0, concatDimension: 1, ledger: ledger)

        // 3. Local experts.
        let expertOut: [Tensor<Float>] = run { core in
            let j = self.coordinates(of: core)[axis]
            let slice = { (t: Tensor<Float>) in Variable(constant: t.split(alongAxis: 0, into: n)[j]) }
            let local = MixtureOfExperts(gate: Variable(constant: gate), wi: slice(wi), wo: slice(wo))  // its E/n experts
            let input = Variable(constant: byExpert[core].reshaped(to: [localExperts, configuration.numGroups * c, m]))
            return local.experts(input, activation: configuration.activation).value.reshaped(to: [
                localExperts, configuration.numGroups, c, m,
            ])
        }

        // 4. All-to-all back: E-sharded → G-sharded.
        let byGroup = try allToAll(expertOut, along: axisName, splitDimension: 1, concatDimension: 0, ledger: ledger)

        // 5. Combine, per core: the MoE layer's own combine.
        let outputs: [Tensor<Float>] = run { core in
            let out = Variable(constant: byGroup[core].reshaped(to: [e * localGroups * c, m]))
            let r = routed[core]
            let back = ExpertReturn(
                output: out, firstGate: Variable(constant: r.firstGate), secondGate: Variable(constant: r.secondGate), slots: r.slots)
            return layer().combine(back, like: Variable(constant: inputs[core]), paddings: paddings?[core]).value  // [G/n, S, M]
        }
        // The aux loss is a mean over groups: average the cores' means along the axis (one group of cores).
        let group = self.group(of: 0, along: axis)
        let aux = group.reduce(Float(0)) { $0 + routed[$1].auxLoss } / Float(n)
        return (outputs, aux)
    }
}

/// What one core's gating and dispatch produce (tensors only: they cross cores).
struct CoreRouting: Sendable {
    var expertIn: Tensor<Float>  // [E, G/n, C, M]
    var routing: Top2Routing
    var firstGate, secondGate: Tensor<Float>  // [G/n, S, 1]
    var auxLoss: Float
    var slots: [[Int]]
}

extension DeviceMesh {
    /// `run` for bodies that throw: each core's result or error, in core order.
    func run<T: Sendable>(_ body: @Sendable (_ core: Int) throws -> T) -> [Result<T, any Error>] {
        run { core in Result { try body(core) } }
    }
}
