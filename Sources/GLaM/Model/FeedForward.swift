// The dense feed-forward layer of GLaM's odd layers: a gated GELU unit (GLU variant; praxis
// `TransformerFeedForward` with `use_gated_activation=True`; see the "The model" article), no biases:
//
//   FFN(x) = (GELU_tanh(x·W_gate) ⊙ (x·W_linear))·W_o,   W_gate, W_linear: [M, H],  W_o: [H, M]
//
// Padded tokens are zeroed at the input first (praxis `apply_padding_first=True`), so their
// output is zero too.

/// The weights of a dense layer's gated-GELU feed-forward (file names `layers.{i}.ffn.*`).
public struct GatedFeedForward<Weight> {
    /// W_gate `[M, H]`, through GELU (praxis `wi_0`; file name `ffn.wi_gate`).
    public var wiGate: Weight
    /// W_linear `[M, H]` (praxis `wi_1`; file name `ffn.wi_linear`).
    public var wiLinear: Weight
    /// W_o `[H, M]` (file name `ffn.wo`).
    public var wo: Weight

    /// FFN weights.
    public init(wiGate: Weight, wiLinear: Weight, wo: Weight) {
        (self.wiGate, self.wiLinear, self.wo) = (wiGate, wiLinear, wo)
    }
}

extension GatedFeedForward: Sendable where Weight: Sendable {}
extension GatedFeedForward: Equatable where Weight: Equatable {}

extension GatedFeedForward {
    /// `(GELU_tanh(x·W_gate) ⊙ (x·W_linear))·W_o` of `x` `[B, T, M]` (already normalised) → `[B, T, M]`;
    /// `nonPadding` `[B, T, 1]` (or nil) zeroes padded rows first.
    public func callAsFunction<Scalar>(_ x: Variable<Scalar>, nonPadding: Tensor<Scalar>?) -> Variable<Scalar>
    where Weight == Variable<Scalar> {
        let input = nonPadding.map { x * Variable(constant: $0) } ?? x  // [B, T, M]
        if [input, wiGate, wiLinear].allSatisfy({ !$0.isRecorded }) {
            // Nothing recorded (inference): the two input products as one parallel loop.
            let products = sharedInputProducts(input.value, [wiGate.value, wiLinear.value])
            let hidden = Variable(constant: products[0]).gelu() * Variable(constant: products[1])  // [B, T, H]
            return matmul(hidden, wo)  // [B, T, M]
        }
        let gate = matmul(input, wiGate).gelu()  // [B, T, H]
        let linear = matmul(input, wiLinear)  // [B, T, H]
        return matmul(gate * linear, wo)  // [B, T, M]
    }
}
