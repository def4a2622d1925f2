// The dense feed-forward layer of GLaM's odd layers: a gated GELU unit (GLU variant; glam-spec.md
// section 1.2, praxis `TransformerFeedForward` with `use_gated_activation=True`), no biases:
//
//   FFN(x) = (GELU_tanh(x·W_gate) ⊙ (x·W_linear))·W_o,   W_gate, W_linear: [M, H],  W_o: [H, M]
//
// Padded tokens are zeroed at the input first (praxis `apply_padding_first=True`), so their
// output is zero too.

/// The weights of one dense FFN layer (contracts.md names `layers.{i}.ffn.*`).
struct FeedForwardWeights<Scalar: TensorScalar> {
    var wiGate, wiLinear, wo: Variable<Scalar>
}

/// The gated-GELU FFN of `x` `[B, T, M]` (already normalised); `nonPadding` is `[B, T, 1]` or nil.
func gatedFeedForward<Scalar>(_ x: Variable<Scalar>, weights w: FeedForwardWeights<Scalar>, nonPadding: Tensor<Scalar>?) -> Variable<Scalar>
{
    let input = nonPadding.map { x * Variable(constant: $0) } ?? x  // [B, T, M]
    let gate = matmul(input, w.wiGate).gelu()  // [B, T, H]
    let linear = matmul(input, w.wiLinear)  // [B, T, H]
    return matmul(gate * linear, w.wo)  // [B, T, M]
}
