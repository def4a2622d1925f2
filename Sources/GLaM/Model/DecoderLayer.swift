// One GLaM decoder layer, the only definition of a layer's sequence of steps (see the "The model"
// article). The full pass, KV-cache decoding and the virtual mesh all run it:
//
//   opening:  h = x + Attn(RMS_a(x))                 [B, T, M]
//             y = RMS_f(h)                           [B, T, M]
//             MoE layers: route y to experts' slots  [E, G·C, M]     ← the mesh cuts here (all-to-all)
//   experts:  act(slots·Wi[e])·Wo[e]                 [E, G·C, M]     (MoE layers only)
//   closing:  x' = h + FFN(y)        (dense)                        ← and here (all-to-all back)
//             x' = h + Σ_k gate_k · expert output   (MoE)          [B, T, M]
//
// `ForwardContext` carries what every layer of one pass shares: the attention mask and buckets,
// paddings, the MoE grouping, whether keys and values are cached, and the observer.

/// What every layer of one forward pass shares. Built once per batch (or decoding step).
struct ForwardContext<Scalar: TensorScalar> {
    let configuration: ModelConfiguration
    /// `[B, T]`, 1 = padding (nil: none).
    let paddings: Tensor<Scalar>?
    /// `[B, T, 1]`, 1 − padding (nil: none).
    let nonPadding: Tensor<Scalar>?
    /// `[B, T, L]`: whether query t may attend to key l (empty when `causalStart` is set).
    let visible: [Bool]
    /// `[T, L]`: the relative-position bucket of (query position − key position) (empty when
    /// `causalStart` is set).
    let buckets: [Int]
    /// When decoding with nobody listening: the position of the first query. Visibility is then
    /// causality alone, and attention takes `Tensor.causalSoftmax` (CausalSoftmax.swift), which
    /// needs neither `visible` nor `buckets` (an observer gets the general path, whose logits it
    /// is shown).
    let causalStart: Int?
    /// With `causalStart`: the relative-position bucket of each distance `0..<L` (query − key), for
    /// every layer's `Tensor.causalSoftmax`; empty otherwise.
    let distanceBuckets: [Int]
    /// Whether attention appends to and reads from key/value caches (incremental decoding).
    let isDecoding: Bool
    /// The MoE layers' settings (G = the configuration's groups, or 1 when decoding).
    let moeConfiguration: MoELayerConfiguration
    /// Who listens to the intermediates (nil: nobody; nothing is reported).
    let observer: (any ForwardObserver)?

    /// The context of a full pass over `batch`: causal attention within segments.
    init(configuration c: ModelConfiguration, batch: TokenBatch, observer: (any ForwardObserver)? = nil) {
        configuration = c
        let (b, t) = (batch.batchSize, batch.length)
        let paddingValues = batch.paddings.map { $0.map { Scalar($0) } }
        paddings = paddingValues.map { Tensor(shape: [b, t], scalars: $0) }
        nonPadding = paddingValues.map { Tensor(shape: [b, t, 1], scalars: $0.map { 1 - $0 }) }
        let segments = batch.segmentIDs ?? (batch.paddings ?? [Float](repeating: 0, count: b * t)).map { $0 >= 1 ? 0 : 1 }
        visible = attentionVisibility(segmentIDs: segments, batch: b, length: t)
        buckets = Self.buckets(queries: 0..<t, keys: t, configuration: c)
        causalStart = nil
        distanceBuckets = []
        isDecoding = false
        moeConfiguration = MoELayerConfiguration(gating: c.gating, numGroups: c.numGroups, activation: c.moeActivation)
        self.observer = observer
    }

    /// The context of one decoding call: B rows of T new tokens at positions `position ..< position + T`,
    /// each attending to every cached position and to the new ones up to itself; the B·T new tokens
    /// form one routing group (S = B·T).
    init(
        decodingAt position: Int, batchSize b: Int, length t: Int = 1, configuration c: ModelConfiguration,
        observer: (any ForwardObserver)? = nil
    ) {
        configuration = c
        paddings = nil
        nonPadding = nil
        let keys = position + t
        if observer == nil {
            (visible, buckets, causalStart) = ([], [], position)
            distanceBuckets = Self.distanceBuckets(keys: keys, configuration: c)
        } else {
            var visible = [Bool](repeating: false, count: b * t * keys)
            for row in 0..<b {
                for query in 0..<t {
                    for key in 0...(position + query) { visible[(row * t + query) * keys + key] = true }
                }
            }
            self.visible = visible
            buckets = Self.buckets(queries: position..<keys, keys: keys, configuration: c)
            causalStart = nil
            distanceBuckets = []
        }
        isDecoding = true
        moeConfiguration = MoELayerConfiguration(gating: c.gating, numGroups: 1, activation: c.moeActivation)
        self.observer = observer
    }

    /// The buckets of the distances `0..<keys`.
    static func distanceBuckets(keys: Int, configuration c: ModelConfiguration) -> [Int] {
        (0..<keys).map { relativePositionBucket(distance: $0, buckets: c.relativeBuckets, maxDistance: c.relativeMaxDistance) }
    }

    /// `[T, L]` buckets of (query − key) for the query positions `queries` and keys `0..<keys`.
    static func buckets(queries: Range<Int>, keys: Int, configuration c: ModelConfiguration) -> [Int] {
        queries.flatMap { query in
            (0..<keys).map { relativePositionBucket(distance: query - $0, buckets: c.relativeBuckets, maxDistance: c.relativeMaxDistance) }
        }
    }

    var epsilon: Scalar { Scalar(configuration.rmsNormEpsilon) }

    /// Whether an observer listens.
    var isTracing: Bool { observer != nil }

    /// Reports `value` as `name` to the observer, if any (neither is evaluated otherwise).
    @inline(__always)
    func trace(_ name: @autoclosure () -> String, _ value: @autoclosure () -> Variable<Scalar>) {
        guard let observer else { return }
        observer.observe(name(), Tensor<Float>(value().value))
    }

    /// Reports a tensor as `name` to the observer, if any.
    @inline(__always)
    func trace(_ name: @autoclosure () -> String, _ value: @autoclosure () -> Tensor<Scalar>) {
        guard let observer else { return }
        observer.observe(name(), Tensor<Float>(value()))
    }
}

/// What the closing of a layer feeds its residual with: the dense FFN's input y, or an MoE layer's
/// experts' outputs with their gates.
enum FeedForwardInput<Scalar: TensorScalar> {
    /// y = RMS_f(h) `[B, T, M]`, for a dense layer's FFN.
    case dense(Variable<Scalar>)
    /// The experts' outputs of an MoE layer, for the combine.
    case experts(ExpertReturn<Scalar>)
}

/// A decoder layer cut at its experts: what the opening computed, for the closing.
struct OpenLayer<Scalar: TensorScalar> {
    /// h = x + Attn(RMS_a(x)) `[B, T, M]`.
    var residual: Variable<Scalar>
    /// y = RMS_f(h), the feed-forward's input `[B, T, M]`.
    var ffnInput: Variable<Scalar>
    /// For an MoE layer, y's tokens gated and placed in the experts' slots.
    var routed: RoutedTokens<Scalar>?
}

extension DecoderLayer {
    /// Layer `i` on the residual stream `x` `[B, T, M]` → `[B, T, M]`: the opening, the experts of an
    /// MoE layer, the closing. `cache` holds the layer's keys and values when decoding.
    func callAsFunction<Scalar>(
        _ x: Variable<Scalar>, layer i: Int, context: ForwardContext<Scalar>, cache: inout KeyValueCache<Scalar>?
    ) throws(ModelError) -> (output: Variable<Scalar>, gating: Top2GatingResult<Scalar>?) where Weight == Variable<Scalar> {
        let open = try opening(x, layer: i, context: context, cache: &cache)
        guard let routed = open.routed, case .moe(let moe) = feedForward else {
            return (closing(residual: open.residual, .dense(open.ffnInput), layer: i, context: context), nil)
        }
        let r = routed.gating.routing
        let activation = context.moeConfiguration.activation
        let out = moe.experts(routed.expertInput, activation: activation, occupied: routed.occupiedRows)  // [E, G·C, M]
        context.trace("layers.\(i).moe.expert_outputs", out.reshaped(to: [r.numExperts, r.groups, r.capacity, out.shape[2]]))
        return (closing(residual: open.residual, .experts(routed.returning(out)), layer: i, context: context), routed.gating)
    }

    /// The layer up to its experts: `h = x + Attn(RMS_a(x))`, `y = RMS_f(h)`, and for an MoE layer
    /// the routing of y's tokens to their experts' slots.
    func opening<Scalar>(
        _ x: Variable<Scalar>, layer i: Int, context: ForwardContext<Scalar>, cache: inout KeyValueCache<Scalar>?
    ) throws(ModelError) -> OpenLayer<Scalar> where Weight == Variable<Scalar> {
        context.trace("layers.\(i).input", x)
        let normalized = rmsNormalized(x, scale: attentionNorm, epsilon: context.epsilon)  // [B, T, M]
        context.trace("layers.\(i).attention_norm", normalized)
        let attended = attention(normalized, layer: i, context: context, cache: &cache)  // [B, T, M]
        context.trace("layers.\(i).attention.output", attended)
        let h = x + attended  // [B, T, M]
        context.trace("layers.\(i).residual", h)
        let y = rmsNormalized(h, scale: ffnNorm, epsilon: context.epsilon)  // [B, T, M]
        context.trace("layers.\(i).ffn_norm", y)
        var open = OpenLayer(residual: h, ffnInput: y, routed: nil)
        if case .moe(let moe) = feedForward {
            do {
                let trace: ((String, Tensor<Scalar>) -> Void)? = context.isTracing ? { context.trace("layers.\(i).moe." + $0, $1) } : nil
                open.routed = try moe.route(y, paddings: context.paddings, configuration: context.moeConfiguration, trace: trace)
            } catch {
                throw ModelError("layer \(i): \(error.description)")
            }
        }
        return open
    }

    /// The layer after its experts: `x' = h + FFN(y)` for a dense layer, `x' = h + Σ_k gate_k ·
    /// expert output` for an MoE layer.
    func closing<Scalar>(
        residual h: Variable<Scalar>, _ feedForwardInput: FeedForwardInput<Scalar>, layer i: Int, context: ForwardContext<Scalar>
    ) -> Variable<Scalar> where Weight == Variable<Scalar> {
        let out: Variable<Scalar>  // [B, T, M]
        switch (feedForward, feedForwardInput) {
        case (.dense(let ffn), .dense(let y)):
            out = ffn(y, nonPadding: context.nonPadding)
            context.trace("layers.\(i).ffn.output", out)
        case (.moe(let moe), .experts(let back)):
            out = moe.combine(back, like: h, paddings: context.paddings)
            context.trace("layers.\(i).moe.output", out)
        default:
            preconditionFailure("DecoderLayer.closing: layer \(i) is \(feedForward.isMoE ? "MoE" : "dense"), its input is not")
        }
        let x = h + out  // [B, T, M]
        context.trace("layers.\(i).output", x)
        return x
    }
}
