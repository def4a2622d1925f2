// Observing a forward pass: every intermediate the model computes can be reported, by name, to an
// observer. Names follow the parameter paths (see the "Follow one token" article for the list):
//
//   embedded                                [B, T, M]   Emb[tokens]
//   layers.{i}.input                        [B, T, M]   the residual stream entering layer i
//   layers.{i}.attention_norm               [B, T, M]   RMS_a(x)
//   layers.{i}.attention.logits             [B, N, T, L] q·kᵀ + relative bias (before the mask)
//   layers.{i}.attention.probabilities      [B, N, T, L] the masked softmax with the extra zero logit
//   layers.{i}.attention.output             [B, T, M]   Attn(RMS_a(x))
//   layers.{i}.residual                     [B, T, M]   h = x + Attn(RMS_a(x))
//   layers.{i}.ffn_norm                     [B, T, M]   y = RMS_f(h)
//   layers.{i}.ffn.output                   [B, T, M]   dense layers: FFN(y)
//   layers.{i}.moe.router_logits            [G, S, E]   MoE layers: y·W_g
//   layers.{i}.moe.router_probabilities     [G, S, E]   softmax over E
//   layers.{i}.moe.dispatch                 [G, S, E, C] 1 where token s sits in slot c of expert e
//   layers.{i}.moe.combine                  [G, S, E, C] its gate there
//   layers.{i}.moe.aux_loss                 []          the layer's load-balancing loss
//   layers.{i}.moe.expert_inputs            [E, G, C, M] the experts' slots
//   layers.{i}.moe.expert_outputs           [E, G, C, M] act(x·Wi[e])·Wo[e] on each slot
//   layers.{i}.moe.output                   [B, T, M]   Σ_k gate_k · expert output
//   layers.{i}.output                       [B, T, M]   h + FFN(y)
//   final_norm                              [B, T, M]   RMS(x) · M^-½
//   logits                                  [B, T, V]
//
// Without an observer nothing is reported and nothing extra is computed: every report is guarded by
// one nil check, and names and values are built only when someone listens.

/// Receives the named intermediates of a forward pass, in the order they are computed.
public protocol ForwardObserver: AnyObject {
    /// Called once per intermediate (values of a `Double` pass arrive converted to `Float`).
    func observe(_ name: String, _ value: Tensor<Float>)
}

/// A `ForwardObserver` that keeps every intermediate: the trace of one forward pass.
///
/// ```swift
/// let trace = ForwardTrace()
/// let traced: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
/// print(trace.names.prefix(3))  // in the order they are computed
/// print(trace["layers.0.moe.router_probabilities"]!.shape, traced.logits.shape)  // [G, S, E], [B, T, V]
/// ```
public final class ForwardTrace: ForwardObserver {
    /// The names, in the order they were reported.
    public private(set) var names: [String] = []
    /// The values by name.
    public private(set) var values: [String: Tensor<Float>] = [:]

    /// An empty trace.
    public init() {}

    /// Records `value` under `name` (a repeated name replaces the value and keeps its place).
    public func observe(_ name: String, _ value: Tensor<Float>) {
        if values.updateValue(value, forKey: name) == nil { names.append(name) }
    }

    /// The value reported under `name`, or nil.
    public subscript(name: String) -> Tensor<Float>? { values[name] }
}
