// Pointwise activations and the softmax family, each with the derivative its backward pass uses.
//
// GELU is the tanh approximation that GLaM uses (praxis `GELU(approximate=True)`, lingvo
// `tf.nn.gelu(approximate=True)`): gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).

extension Tensor {
    /// eˣ elementwise.
    @_specialize(where Scalar == Float)
    public func exp() -> Tensor { map { Scalar.exp($0) } }
    /// The natural logarithm elementwise.
    @_specialize(where Scalar == Float)
    public func log() -> Tensor { map { Scalar.log($0) } }
    /// The hyperbolic tangent elementwise.
    @_specialize(where Scalar == Float)
    public func tanh() -> Tensor { map { Scalar.tanh($0) } }
    /// The square root elementwise.
    @_specialize(where Scalar == Float)
    public func squareRoot() -> Tensor { map { $0.squareRoot() } }
    /// x² elementwise.
    @_specialize(where Scalar == Float)
    public func squared() -> Tensor { map { $0 * $0 } }

    /// ReLU: max(x, 0) elementwise.
    @_specialize(where Scalar == Float)
    public func relu() -> Tensor { map { $0 > 0 ? $0 : 0 } }

    /// GELU, tanh approximation: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    @_specialize(where Scalar == Float)
    public func gelu() -> Tensor {
        let c = Scalar(0.7978845608028654), a = Scalar(0.044715)
        return Tensor.zip(self, map { x in c * (x + a * x * x * x) }.fastTanh()) { x, t in Scalar(0.5) * x * (1 + t) }
    }

    /// The scalar GELU (tanh approximation).
    @_specialize(where Scalar == Float)
    @inlinable
    public static func gelu(_ x: Scalar) -> Scalar {
        let c = Scalar(0.7978845608028654)  // √(2/π)
        let a = Scalar(0.044715)
        let u: Scalar = c * (x + a * x * x * x)
        return Scalar(0.5) * x * (1 + Scalar.tanh(u))
    }

    /// d gelu(x) / dx for the tanh approximation:
    /// ½(1 + t) + ½·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), with t = tanh(√(2/π)(x + 0.044715x³)).
    @_specialize(where Scalar == Float)
    @inlinable
    public static func geluDerivative(_ x: Scalar) -> Scalar {
        let c = Scalar(0.7978845608028654)
        let a = Scalar(0.044715)
        let x2: Scalar = x * x
        let t: Scalar = Scalar.tanh(c * (x + a * x2 * x))
        let inner: Scalar = c * (1 + 3 * a * x2)
        let half: Scalar = Scalar(0.5)
        return half * (1 + t) + half * x * (1 - t * t) * inner
    }

    /// Applies `body(input, output, n)` to every row of the last axis (`n` elements each).
    @inline(__always)
    func mapRows(_ body: (UnsafePointer<Scalar>, UnsafeMutablePointer<Scalar>, Int) -> Void) -> Tensor {
        let n = shape.last ?? 1
        var out = [Scalar](repeating: 0, count: scalarCount)
        if n > 0 {
            scalars.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBufferPointer { y in
                    for row in 0..<(scalarCount / n) { body(x.baseAddress! + row * n, y.baseAddress! + row * n, n) }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// Softmax along the last axis: `exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x)`.
    @_specialize(where Scalar == Float)
    public func softmax() -> Tensor {
        mapRows { x, y, n in
            var peak = -Scalar.infinity
            for j in 0..<n { peak = Swift.max(peak, x[j]) }
            var total: Scalar = 0
            for j in 0..<n {
                y[j] = Scalar.exp(x[j] - peak)
                total += y[j]
            }
            for j in 0..<n { y[j] /= total }
        }
    }

    /// Log-softmax along the last axis: `(xᵢ − max x) − log Σⱼ exp(xⱼ − max x)`.
    @_specialize(where Scalar == Float)
    public func logSoftmax() -> Tensor {
        mapRows { x, y, n in
            var peak = -Scalar.infinity
            for j in 0..<n { peak = Swift.max(peak, x[j]) }
            var total: Scalar = 0
            for j in 0..<n { total += Scalar.exp(x[j] - peak) }
            let logTotal = Scalar.log(total)
            for j in 0..<n { y[j] = (x[j] - peak) - logTotal }  // shift first: exact when x[j] == peak
        }
    }

    /// `log Σⱼ exp(xⱼ)` along the last axis, kept with size 1 (computed stably around the max).
    @_specialize(where Scalar == Float)
    public func logSumExp() -> Tensor {
        let n = shape.last ?? 1
        var out = [Scalar](repeating: 0, count: n == 0 ? 0 : scalarCount / n)
        for row in out.indices {
            var peak = -Scalar.infinity
            for j in 0..<n { peak = Swift.max(peak, scalars[row * n + j]) }
            var total: Scalar = 0
            for j in 0..<n { total += Scalar.exp(scalars[row * n + j] - peak) }
            out[row] = peak + Scalar.log(total)
        }
        return Tensor(shape: Array(shape.dropLast()) + [1], scalars: out)
    }
}

/// RMSNorm along the last axis, as GLaM uses it (praxis `RmsNorm` with `direct_scale=True`):
/// `y = x · rsqrt(mean(x², axis: -1) + ε) · scale`. No mean subtraction, no bias.
///
/// - Parameters:
///   - x: `[..., M]`.
///   - scale: `[M]`, initialised to 1.
///   - epsilon: GLaM uses 1e-6.
/// - Returns: `y` `[..., M]` and the per-row reciprocal RMS `r` `[..., 1]` (kept for backward).
@_specialize(where Scalar == Float)
public func rmsNormalized<Scalar>(
    _ x: Tensor<Scalar>, scale: Tensor<Scalar>, epsilon: Scalar
) -> (output: Tensor<Scalar>, reciprocalRMS: Tensor<Scalar>) {
    let m = x.shape.last ?? 0
    precondition(scale.shape == [m], "rmsNormalized: scale has shape \(scale.shape), expected [\(m)]")
    let rows = m == 0 ? 0 : x.scalarCount / m
    var y = [Scalar](repeating: 0, count: x.scalarCount)
    var r = [Scalar](repeating: 0, count: rows)
    for row in 0..<rows {
        var sumSquares: Scalar = 0
        for j in 0..<m { sumSquares += x.scalars[row * m + j] * x.scalars[row * m + j] }
        let reciprocal = 1 / (sumSquares / Scalar(m) + epsilon).squareRoot()
        r[row] = reciprocal
        for j in 0..<m { y[row * m + j] = x.scalars[row * m + j] * reciprocal * scale.scalars[j] }
    }
    return (Tensor(shape: x.shape, scalars: y), Tensor(shape: Array(x.shape.dropLast()) + [1], scalars: r))
}
