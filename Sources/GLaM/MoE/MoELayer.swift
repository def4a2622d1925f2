// The mixture-of-experts feed-forward layer of GLaM's even layers (praxis `TransformerFeedForwardMoe`
// without its norm and residual; see the "Top-2 gating" article), defined here once as three steps
// that every caller runs: the layer itself (`callAsFunction`), the decoder layer (full pass and
// KV-cache decoding), the mesh's expert-parallel forward pass and its training step, which put
// all-to-alls between the steps.
//
//   route:    x [B, T, M] → [G, S, M]                 groups of S = B·T/G consecutive tokens
//             logits = x · W_g                        [G, S, E]   router, no bias
//             top-2 gating (capacity C)               → gates [G, S, 1] ×2, aux loss
//             expert_in[e, g·C + c] = x[g, s]         [E, G·C, M] for the token s in slot c of expert e
//   experts:  out = act(expert_in · Wi[e]) · Wo[e]     [E, G·C, M]
//   combine:  y[g, s] = Σ_k gate_k(s) · out[e_k(s), g, c_k(s)]     [G, S, M] → [B, T, M], padded rows zeroed
//
// The dispatch and combine move rows by index; they equal praxis' einsums 'gsec,gsm->egcm' and
// 'gsec,egcm->gsm' with the mostly-zero [G, S, E, C] dispatch and combine tensors, which the tests
// keep as the reference (DenseDispatchReference.swift). Groups stay explicit: they are the unit
// the virtual mesh spreads over cores.

/// The expert feed-forward activation (GLaM-family papers write GELU; praxis' default MoE layer
/// uses ReLU).
public enum ExpertActivation: String, Sendable, CaseIterable {
    /// GELU, tanh approximation.
    case geluTanh = "gelu_tanh"
    /// ReLU.
    case relu
}

/// Settings of one MoE layer.
public struct MoELayerConfiguration: Sendable, Equatable {
    /// The top-2 gating settings.
    public var gating: Top2GatingConfiguration
    /// G, the number of groups the B·T tokens are split into (praxis `num_groups`).
    public var numGroups: Int
    /// The experts' activation.
    public var activation: ExpertActivation

    /// A configuration.
    public init(gating: Top2GatingConfiguration, numGroups: Int, activation: ExpertActivation) {
        self.gating = gating
        self.numGroups = numGroups
        self.activation = activation
    }
}

/// The weights of one mixture-of-experts feed-forward layer (praxis `TransformerFeedForwardMoe`;
/// file names `layers.{i}.moe.*`).
public struct MixtureOfExperts<Weight> {
    /// Router W_g `[M, E]`, no bias (praxis `gate`).
    public var gate: Weight
    /// Expert input matrices `[E, M, H]` (praxis `wi`).
    public var wi: Weight
    /// Expert output matrices `[E, H, M]` (praxis `wo`).
    public var wo: Weight

    /// MoE weights.
    public init(gate: Weight, wi: Weight, wo: Weight) {
        (self.gate, self.wi, self.wo) = (gate, wi, wo)
    }
}

extension MixtureOfExperts: Sendable where Weight: Sendable {}
extension MixtureOfExperts: Equatable where Weight: Equatable {}

/// The weights of one MoE layer as variables.
public typealias MoEWeights<Scalar: TensorScalar> = MixtureOfExperts<Variable<Scalar>>

/// One MoE layer's tokens gated and placed in their experts' slots (the route step): what the
/// all-to-all carries to the experts, and what the combine needs when their outputs come back.
package struct RoutedTokens<Scalar: TensorScalar> {
    /// The top-2 gating (routing decisions, gates, aux loss).
    package let gating: Top2GatingResult<Scalar>
    /// `expert_in[e, g·C + c]`: the token in slot c of expert e in group g, zero for empty slots `[E, G·C, M]`.
    package let expertInput: Variable<Scalar>
    /// Per choice k (0, 1), each token's row in the `[E·G·C]` expert buffers, -1 when not dispatched.
    package let slots: [[Int]]

    /// Per expert, the rows of its `[G·C]` slots that hold a token, in increasing order.
    package var occupiedRows: [[Int]] {
        let e = gating.routing.numExperts
        let rowsPerExpert = max(1, expertInput.shape[1])  // G·C
        var rows = [[Int]](repeating: [], count: e)
        for choice in slots { for slot in choice where slot >= 0 { rows[slot / rowsPerExpert].append(slot % rowsPerExpert) } }
        return rows.map { $0.sorted() }
    }

    /// What the combine needs with the experts' outputs `output` (`[E, G·C, M]` or `[E·G·C, M]`).
    package func returning(_ output: Variable<Scalar>) -> ExpertReturn<Scalar> {
        let m = output.shape[output.shape.count - 1]
        return ExpertReturn(
            output: output.reshaped(to: [output.value.scalarCount / max(m, 1), m]), firstGate: gating.firstGate,
            secondGate: gating.secondGate, slots: slots)
    }
}

/// What the experts of an MoE layer send back, and what the combine weighs it with.
package struct ExpertReturn<Scalar: TensorScalar> {
    /// The experts' outputs on every slot `[E·G·C, M]`.
    package var output: Variable<Scalar>
    /// Each token's gates `[G, S, 1]`.
    package var firstGate, secondGate: Variable<Scalar>
    /// Per choice, each token's row in `output` (-1: not dispatched).
    package var slots: [[Int]]

    /// The pieces of an expert return.
    package init(output: Variable<Scalar>, firstGate: Variable<Scalar>, secondGate: Variable<Scalar>, slots: [[Int]]) {
        (self.output, self.firstGate, self.secondGate, self.slots) = (output, firstGate, secondGate, slots)
    }
}

/// The output of an MoE layer.
public struct MoELayerOutput<Scalar: TensorScalar> {
    /// The layer output `[B, T, M]` (no residual; padded rows are zero).
    public let output: Variable<Scalar>
    /// The gating result (routing, gates, unweighted aux loss).
    public let gating: Top2GatingResult<Scalar>
}

extension MixtureOfExperts {
    /// The MoE feed-forward layer on `x` `[B, T, M]` (already RMS-normalised): route, experts,
    /// combine (praxis `TransformerFeedForwardMoe` without its norm and residual).
    ///
    /// - Parameters:
    ///   - x: the layer input `[B, T, M]`.
    ///   - paddings: `[B, T]`, 1 = padding; padded tokens are routed nowhere and output zero.
    ///   - configuration: gating, groups G and activation.
    /// - Throws: `Top2GatingConfiguration.Invalid` for a configuration or weights that do not fit
    ///   the input.
    @_specialize(where Weight == Variable<Float>, Scalar == Float)
    public func callAsFunction<Scalar>(
        _ x: Variable<Scalar>, paddings: Tensor<Scalar>?, configuration: MoELayerConfiguration
    ) throws(Top2GatingConfiguration.Invalid) -> MoELayerOutput<Scalar> where Weight == Variable<Scalar> {
        let e = configuration.gating.numExperts
        if x.value.rank == 3 {
            let m = x.shape[2]
            guard wi.value.rank == 3, wi.shape[0] == e, wi.shape[1] == m, wo.shape == [e, wi.shape[2], m] else {
                throw .init(description: "MoE weights wi \(wi.shape), wo \(wo.shape) do not fit M = \(m), E = \(e)")
            }
        }
        let routed = try route(x, paddings: paddings, configuration: configuration)
        let out = experts(routed.expertInput, activation: configuration.activation, occupied: routed.occupiedRows)  // [E, G·C, M]
        return MoELayerOutput(output: combine(routed.returning(out), like: x, paddings: paddings), gating: routed.gating)
    }

    /// The route step, up to the all-to-all: `y` `[B, T, M]` in G groups `[G, S, M]`, the router
    /// logits `[G, S, E]`, top-2 gating, and the dispatch of every kept choice into its expert's
    /// slots `[E, G·C, M]` (zero rows for empty slots). `configuration.numGroups` sets G. The
    /// expert weights are not read (on the mesh they are elsewhere). `trace`, when given, receives
    /// the router logits and probabilities, the dispatch and combine tensors `[G, S, E, C]`, the
    /// aux loss and the expert inputs `[E, G, C, M]`.
    ///
    /// - Throws: `Top2GatingConfiguration.Invalid` for a configuration that does not fit the input.
    package func route<Scalar>(
        _ y: Variable<Scalar>, paddings: Tensor<Scalar>?, configuration: MoELayerConfiguration,
        trace: ((_ name: String, _ value: Tensor<Scalar>) -> Void)? = nil
    ) throws(Top2GatingConfiguration.Invalid) -> RoutedTokens<Scalar> where Weight == Variable<Scalar> {
        guard y.value.rank == 3 else { throw .init(description: "MoE input must be [B, T, M], got \(y.shape)") }
        let (b, t, m) = (y.shape[0], y.shape[1], y.shape[2])
        let g = configuration.numGroups
        guard g >= 1, (b * t) % g == 0 else {
            throw .init(description: "num_groups \(g) does not divide the \(b * t) tokens (B·T = \(b)·\(t))")
        }
        let s = b * t / g
        let e = configuration.gating.numExperts
        guard gate.shape == [m, e] else { throw .init(description: "the router weights \(gate.shape) do not fit M = \(m), E = \(e)") }
        if let paddings, paddings.shape != [b, t] {
            throw .init(description: "paddings must be [B, T] = [\(b), \(t)], got \(paddings.shape)")
        }
        let c = try configuration.gating.capacity(groupSize: s)
        try configuration.gating.checkBuffers(capacity: c, elements: [e, g, c, m], what: "the experts' slot buffers [E, G, C, M]")
        let xg = y.reshaped(to: [g, s, m])  // [G, S, M]
        let logits = matmul(xg, gate)  // [G, S, E]
        let gating = try top2Gating(logits: logits, paddings: paddings?.reshaped(to: [g, s]), configuration: configuration.gating)
        // The dispatch: expert_in[e, g·C + c] = x[g, s] for the token s in slot c of expert e.
        var source = [Int](repeating: -1, count: e * g * c)
        var slots = [[Int](repeating: -1, count: g * s), [Int](repeating: -1, count: g * s)]
        let r = gating.routing
        for token in 0..<(g * s) {
            for k in 0..<2 where gating.isDispatched(token: token, choice: k) {
                let expert = k == 0 ? r.firstExpert[token] : r.secondExpert[token]
                let slot = (expert * g + token / s) * c + (k == 0 ? r.firstSlot[token] : r.secondSlot[token])
                source[slot] = token
                slots[k][token] = slot
            }
        }
        let expertInput = xg.reshaped(to: [g * s, m]).gatheringRowsOrZero(source).reshaped(to: [e, g * c, m])  // [E, G·C, M]
        if let trace {
            trace("router_logits", logits.value)  // [G, S, E]
            trace("router_probabilities", gating.probabilities.value)  // [G, S, E]
            trace("dispatch", gating.dispatchTensor())  // [G, S, E, C]
            trace("combine", gating.combineTensor())  // [G, S, E, C]
            trace("aux_loss", gating.auxLoss.value)  // []
            trace("expert_inputs", expertInput.value.reshaped(to: [e, g, c, m]))  // [E, G, C, M]
        }
        return RoutedTokens(gating: gating, expertInput: expertInput, slots: slots)
    }

    /// The experts step: the E expert feed-forward networks on their slots,
    /// `act(x · Wi[e]) · Wo[e]`, `[E, A, M] → [E, A, M]`. On the mesh these weights are a core's
    /// slice of the experts (and of H: then the result is a partial sum over H).
    ///
    /// `occupied`, when given, lists each expert's rows that hold a token. Without a tape
    /// (inference) only those rows are run, the experts side by side: the other rows of the
    /// result are zero, which is what the combine reads of them (nothing), and a decoding step
    /// reads 2 of the E experts' weights instead of all and multiplies the tokens alone, not the
    /// empty slots of the capacity. The rows run have the bits of the full product: each row of a
    /// product is its own chain of multiply-adds (Kernels/GEMM.swift), whatever the rows beside it.
    package func experts<Scalar>(_ x: Variable<Scalar>, activation: ExpertActivation, occupied: [[Int]]? = nil) -> Variable<Scalar>
    where Weight == Variable<Scalar> {
        if let occupied, !x.isRecorded, !wi.isRecorded, !wo.isRecorded,
            let out = Self.occupiedRowsAlone(x.value, wi: wi.value, wo: wo.value, activation: activation, occupied: occupied)
        {
            return Variable(constant: out)
        }
        let hidden = matmul(x, wi)  // [E, A, H]
        let activated = activation == .relu ? hidden.relu() : hidden.gelu()
        return matmul(activated, wo)  // [E, A, M]
    }

    /// `experts` on the `occupied` rows alone, `[E, A, M]` with zero rows elsewhere; nil unless
    /// the scalars are Float, the shapes are the experts' and some row is empty, or when every
    /// expert holds more tokens than a decoding step gives it (the caller then runs all). Per expert with a token: its rows gathered `[r, M]`, `act(x · Wi[e]) · Wo[e]` (the
    /// GEMM that `matmul` runs, item by item), scattered back.
    private static func occupiedRowsAlone<Scalar>(
        _ x: Tensor<Scalar>, wi: Tensor<Scalar>, wo: Tensor<Scalar>, activation: ExpertActivation, occupied: [[Int]]
    ) -> Tensor<Scalar>? {
        guard let x = x as? Tensor<Float>, let wi = wi as? Tensor<Float>, let wo = wo as? Tensor<Float>,
            x.rank == 3, wi.rank == 3, wo.rank == 3
        else { return nil }
        let (e, a, m, h) = (x.shape[0], x.shape[1], x.shape[2], wi.shape[2])
        guard occupied.count == e, wi.shape == [e, m, h], wo.shape == [e, h, m], a > 0, m > 0, h > 0,
            occupied.allSatisfy({ rows in rows.allSatisfy { (0..<a).contains($0) } && Set(rows).count == rows.count }),
            occupied.reduce(0, { $0 + $1.count }) < e * a
        else { return nil }
        let busy = (0..<e).filter { !occupied[$0].isEmpty }
        // Experts side by side when each one's activation is one pointwise task (a decoding step);
        // else one after another, each product shared by the workers (a long prefill's chunk).
        let sideBySide = busy.allSatisfy { occupied[$0].count * h <= Parallelism.elementsPerTask }
        // Every expert holding many tokens (a long prefill's chunk): the batched product over all
        // experts, which packs each expert's weights while they are in cache, is faster (a 10,000-
        // token prefill ran 10% slower one expert after another).
        guard sideBySide || busy.count < e else { return nil }
        let (expertThreads, productThreads) = sideBySide ? (Parallelism.threadCount, 1) : (1, Parallelism.threadCount)
        let out = x.scalars.withUnsafeBufferPointer { px in
            wi.scalars.withUnsafeBufferPointer { pwi in
                wo.scalars.withUnsafeBufferPointer { pwo in
                    [Float](unsafeUninitializedCapacity: e * a * m) { po, initialized in  // [E, A, M]
                        po.initialize(repeating: 0)
                        initialized = e * a * m
                        let (xs, wis, wos) = (
                            SendablePointer(px.baseAddress!), SendablePointer(pwi.baseAddress!), SendablePointer(pwo.baseAddress!)
                        )
                        let target = SendableMutablePointer(po.baseAddress!)
                        Parallelism.forEachTask(busy.count, threads: expertThreads) { task in
                            let expert = busy[task], rows = occupied[expert], r = rows.count
                            var gathered = [Float](repeating: 0, count: r * m)  // [r, M]
                            for (i, row) in rows.enumerated() {
                                for j in 0..<m { gathered[i * m + j] = xs.base[(expert * a + row) * m + j] }
                            }
                            // x [r, k] · W [k, n], both row-major.
                            func product(_ x: [Float], _ w: UnsafePointer<Float>, inner k: Int, columns n: Int) -> [Float] {
                                var c = [Float](repeating: 0, count: r * n)
                                x.withUnsafeBufferPointer { px in
                                    c.withUnsafeMutableBufferPointer { pc in
                                        GEMM.multiply(
                                            m: r, n: n, k: k, a: MatrixOperand(rowMajor: px.baseAddress!, rows: r, columns: k),
                                            b: MatrixOperand(rowMajor: w, rows: k, columns: n), c: pc.baseAddress!, ldc: n,
                                            threads: productThreads)
                                    }
                                }
                                return c
                            }
                            // [r, H] = x[e] · Wi[e]
                            let hidden = Tensor(shape: [r, h], scalars: product(gathered, wis.base + expert * m * h, inner: m, columns: h))
                            let activated = activation == .relu ? hidden.relu() : hidden.gelu()  // [r, H]
                            let result = product(activated.scalars, wos.base + expert * h * m, inner: h, columns: m)  // [r, M]
                            for (i, row) in rows.enumerated() {
                                for j in 0..<m { target.base[(expert * a + row) * m + j] = result[i * m + j] }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [e, a, m], scalars: out) as? Tensor<Scalar>
    }

    /// The combine step, after the experts: each token's two expert outputs weighted by its gates,
    /// `y[g, s] = Σ_k gate_k · out[slot_k(g, s)]`, back in the shape of the layer input `y`
    /// `[B, T, M]`, with padded rows zeroed. The weights are not read.
    package func combine<Scalar>(_ back: ExpertReturn<Scalar>, like y: Variable<Scalar>, paddings: Tensor<Scalar>?) -> Variable<Scalar>
    where Weight == Variable<Scalar> {
        let (g, s, m) = (back.firstGate.shape[0], back.firstGate.shape[1], back.output.shape[1])
        let first = back.output.gatheringRowsOrZero(back.slots[0]).reshaped(to: [g, s, m]) * back.firstGate  // [G, S, M]
        let second = back.output.gatheringRowsOrZero(back.slots[1]).reshaped(to: [g, s, m]) * back.secondGate  // [G, S, M]
        let combined = (first + second).reshaped(to: y.shape)  // [B, T, M]
        guard let paddings else { return combined }
        return combined * Variable(constant: paddings.map { 1 - $0 }.reshaped(to: [y.shape[0], y.shape[1], 1]))
    }
}
