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
        geluAndTanh().gelu
    }

    /// Applies `body(input, output, n)` to every row of the last axis (`n` elements each), rows
    /// spread over workers in fixed groups (`Parallelism.forEachRow`).
    @inline(__always)
    func mapRows(_ body: @escaping @Sendable (UnsafePointer<Scalar>, UnsafeMutablePointer<Scalar>, Int) -> Void) -> Tensor {
        let n = shape.last ?? 1
        guard n > 0, scalarCount > 0 else { return Tensor(shape: shape, scalars: scalars) }
        return scalars.withUnsafeBufferPointer { x in
            let input = SendablePointer(x.baseAddress!)
            return Tensor(shape: shape, rows: scalarCount / n, rowLength: n) { row, out in
                body(input.base + row * n, out + row * n, n)
            }
        }
    }

    /// A tensor of `shape` whose `rows` rows of `rowLength` elements `fill(row, out)` writes, row
    /// by row, on up to `Parallelism.threadCount` workers; `fill` writes row `row` of `out` and
    /// nothing else. The memory is not zero-filled first.
    @inline(__always)
    init(shape: [Int], rows: Int, rowLength: Int, _ fill: @Sendable (_ row: Int, _ out: UnsafeMutablePointer<Scalar>) -> Void) {
        let scalars = [Scalar].filled(count: rows * rowLength) { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendableMutablePointer(base)
            Parallelism.forEachRow(rows, rowLength: rowLength) { row in fill(row, out.base) }
        }
        self.init(shape: shape, scalars: scalars)
    }

    /// Softmax along the last axis: `exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x)`.
    ///
    /// For Float, exp is FastMath's sixteen-lane polynomial (within 2 ulps of libm; 0 below
    /// e^−87.34) and the sum runs in sixteen lanes; for Double both are plain.
    @_specialize(where Scalar == Float)
    public func softmax() -> Tensor {
        mapRows { x, y, n in
            let peak = Self.rowMaximum(x, count: n, initial: -Scalar.infinity)
            Self.exponentials(x, minus: peak, into: y, count: n)
            let total = Self.rowSum(y, count: n)
            for j in 0..<n { y[j] /= total }
        }
    }

    /// Log-softmax along the last axis: `(xᵢ − max x) − log Σⱼ exp(xⱼ − max x)` (exp and the sum
    /// for Float as in `softmax()`).
    @_specialize(where Scalar == Float)
    public func logSoftmax() -> Tensor {
        mapRows { x, y, n in
            let peak = Self.rowMaximum(x, count: n, initial: -Scalar.infinity)
            let logTotal = Scalar.log(Self.sumOfExponentials(x, minus: peak, count: n))
            for j in 0..<n { y[j] = (x[j] - peak) - logTotal }  // shift first: exact when x[j] == peak
        }
    }

    /// `log Σⱼ exp(xⱼ)` along the last axis, kept with size 1 (computed stably around the max;
    /// exp and the sum for Float as in `softmax()`).
    @_specialize(where Scalar == Float)
    public func logSumExp() -> Tensor {
        let n = shape.last ?? 1
        let rows = n == 0 ? 0 : scalarCount / n
        let newShape = Array(shape.dropLast()) + [1]
        guard rows > 0 else { return Tensor(shape: newShape, scalars: []) }
        return scalars.withUnsafeBufferPointer { x in
            let input = SendablePointer(x.baseAddress!)
            // One output per row, each costing a row of n inputs: tasks of about
            // `elementsPerTask` inputs, not outputs.
            return Tensor(shape: newShape, generating: rows, grain: Parallelism.rowsPerTask(rowLength: n)) { range, out in
                for row in range {
                    let values = input.base + row * n
                    let peak = Self.rowMaximum(values, count: n, initial: -Scalar.infinity)
                    out[row] = peak + Scalar.log(Self.sumOfExponentials(values, minus: peak, count: n))
                }
            }
        }
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
    // No rows, or rows of no elements: y is x (empty); r is 1/√ε per row, as for a mean square of 0.
    guard rows > 0 else { return (x, Tensor(repeating: 1 / epsilon.squareRoot(), shape: Array(x.shape.dropLast()) + [1])) }
    var r = [Scalar](repeating: 0, count: rows)
    let y = x.scalars.withUnsafeBufferPointer { px in
        scale.scalars.withUnsafeBufferPointer { ps in
            r.withUnsafeMutableBufferPointer { pr in
                let (input, gain, reciprocals) = (
                    SendablePointer(px.baseAddress!), SendablePointer(ps.baseAddress!), SendableMutablePointer(pr.baseAddress!)
                )
                return Tensor<Scalar>(shape: x.shape, rows: rows, rowLength: m) { row, out in
                    let values = input.base + row * m, target = out + row * m
                    var sumSquares: Scalar = 0
                    for j in 0..<m { sumSquares += values[j] * values[j] }
                    let reciprocal = 1 / (sumSquares / Scalar(m) + epsilon).squareRoot()
                    reciprocals.base[row] = reciprocal
                    for j in 0..<m { target[j] = values[j] * reciprocal * gain.base[j] }
                }
            }
        }
    }
    return (y, Tensor(shape: Array(x.shape.dropLast()) + [1], scalars: r))
}

extension Tensor {
    /// `y[j] = e^(x[j] − shift)` for `j < count`, where `x[j] − shift ≤ 0` (softmax's shifted
    /// logits; y may be x): for Float sixteen lanes at a time by `FastMath` (0 below e^−87.34, the
    /// smallest normal float), libm for other scalars.
    @inline(__always)
    static func exponentials(_ x: UnsafePointer<Scalar>, minus shift: Scalar, into y: UnsafeMutablePointer<Scalar>, count: Int) {
        guard Scalar.self == Float.self else {
            for j in 0..<count { y[j] = Scalar.exp(x[j] - shift) }
            return
        }
        FastMath.exponentials(
            UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), minus: unsafeBitCast(shift, to: Float.self),
            into: UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), count: count)
    }

    /// `e^x` of one value `x ≤ 0` by the same arithmetic as `exponentials(_:minus:into:count:)`.
    @inline(__always)
    static func exponential(ofNonPositive x: Scalar) -> Scalar {
        guard Scalar.self == Float.self else { return Scalar.exp(x) }
        let e = FastMath.exponential(ofNonPositive: SIMD16(repeating: unsafeBitCast(x, to: Float.self)))[0]
        return unsafeBitCast(e, to: Scalar.self)
    }

    /// `Σ_j e^(x[j] − shift)` over `j < count` (each term ≤ 1), the terms computed as
    /// `exponentials(_:minus:into:count:)` does. For Float the sum is `rowSum`'s: sixteen running
    /// lane sums, then halves added pairwise.
    @inline(__always)
    static func sumOfExponentials(_ x: UnsafePointer<Scalar>, minus shift: Scalar, count: Int) -> Scalar {
        guard Scalar.self == Float.self else {
            var total: Scalar = 0
            for j in 0..<count { total += Scalar.exp(x[j] - shift) }
            return total
        }
        let xs = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), s = unsafeBitCast(shift, to: Float.self)
        var lanes = SIMD16<Float>()
        var j = 0
        while j + 16 <= count {
            lanes += FastMath.exponential(ofNonPositive: UnsafeRawPointer(xs + j).loadUnaligned(as: SIMD16<Float>.self) - s)
            j += 16
        }
        if j < count {
            let e = FastMath.exponential(ofNonPositive: FastMath.partialVector(xs + j, count: count - j) - s)
            for lane in 0..<(count - j) { lanes[lane] += e[lane] }  // lanes past count unused
        }
        return unsafeBitCast(FastMath.pairwiseSum(lanes), to: Scalar.self)
    }

    /// `Σ_j x[j]` over `j < count`: for Float sixteen running lane sums (lane l adds x[l], x[l + 16],
    /// …), then halves added pairwise, a fixed order that depends on nothing but `count`; in index
    /// order for other scalars.
    @inline(__always)
    static func rowSum(_ x: UnsafePointer<Scalar>, count: Int) -> Scalar {
        guard Scalar.self == Float.self else {
            var total: Scalar = 0
            for j in 0..<count { total += x[j] }
            return total
        }
        let xs = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
        var lanes = SIMD16<Float>()
        var j = 0
        while j + 16 <= count {
            lanes += UnsafeRawPointer(xs + j).loadUnaligned(as: SIMD16<Float>.self)
            j += 16
        }
        for lane in 0..<(count - j) { lanes[lane] += xs[j + lane] }
        return unsafeBitCast(FastMath.pairwiseSum(lanes), to: Scalar.self)
    }

    /// `Σ_j x[j]·y[j]` over `j < count`, in `rowSum`'s order.
    @inline(__always)
    static func rowDot(_ x: UnsafePointer<Scalar>, _ y: UnsafePointer<Scalar>, count: Int) -> Scalar {
        guard Scalar.self == Float.self else {
            var total: Scalar = 0
            for j in 0..<count { total += x[j] * y[j] }
            return total
        }
        let xs = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), ys = UnsafeRawPointer(y).assumingMemoryBound(to: Float.self)
        var lanes = SIMD16<Float>()
        var j = 0
        while j + 16 <= count {
            lanes +=
                UnsafeRawPointer(xs + j).loadUnaligned(as: SIMD16<Float>.self)
                * UnsafeRawPointer(ys + j).loadUnaligned(as: SIMD16<Float>.self)
            j += 16
        }
        for lane in 0..<(count - j) { lanes[lane] += xs[j + lane] * ys[j + lane] }
        return unsafeBitCast(FastMath.pairwiseSum(lanes), to: Scalar.self)
    }

    /// `max(initial, x[0], …, x[count − 1])`, NaNs ignored as `Swift.max` ignores a NaN second
    /// argument; for Float sixteen lanes at a time (a maximum is the same in any order).
    @inline(__always)
    static func rowMaximum(_ x: UnsafePointer<Scalar>, count: Int, initial: Scalar) -> Scalar {
        guard Scalar.self == Float.self else {
            var peak = initial
            for j in 0..<count { peak = Swift.max(peak, x[j]) }
            return peak
        }
        let xs = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
        var lanes = SIMD16<Float>(repeating: unsafeBitCast(initial, to: Float.self))
        var j = 0
        while j + 16 <= count {
            let v = UnsafeRawPointer(xs + j).loadUnaligned(as: SIMD16<Float>.self)
            lanes = lanes.replacing(with: v, where: v .> lanes)
            j += 16
        }
        var peak = lanes.max()
        for k in j..<count { peak = Swift.max(peak, xs[k]) }
        return unsafeBitCast(peak, to: Scalar.self)
    }
}
