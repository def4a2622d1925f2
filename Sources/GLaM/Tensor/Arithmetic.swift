// The four arithmetic operators with broadcasting, as direct loops (one per operator and layout)
// that the compiler vectorises, spread over workers in fixed ranges. `Tensor.zip` computes the
// same thing for any function, one call per element.

/// An elementwise arithmetic operator.
@usableFromInline
enum ArithmeticOperator: Sendable {
    case add, subtract, multiply, divide
}

extension Tensor {
    /// `x op y` for every `i` in `0..<count`, where `xStride`/`yStride` are 1 (contiguous) or 0 (one
    /// value repeated).
    @inline(__always)
    static func applyArithmetic(
        _ op: ArithmeticOperator, _ x: UnsafePointer<Scalar>, xStride: Int, _ y: UnsafePointer<Scalar>, yStride: Int,
        _ out: UnsafeMutablePointer<Scalar>, count: Int
    ) {
        switch (xStride, yStride) {
        case (1, 1):
            switch op {
            case .add: for i in 0..<count { out[i] = x[i] + y[i] }
            case .subtract: for i in 0..<count { out[i] = x[i] - y[i] }
            case .multiply: for i in 0..<count { out[i] = x[i] * y[i] }
            case .divide: for i in 0..<count { out[i] = x[i] / y[i] }
            }
        case (1, _):
            let s = y[0]
            switch op {
            case .add: for i in 0..<count { out[i] = x[i] + s }
            case .subtract: for i in 0..<count { out[i] = x[i] - s }
            case .multiply: for i in 0..<count { out[i] = x[i] * s }
            case .divide: for i in 0..<count { out[i] = x[i] / s }
            }
        case (_, 1):
            let s = x[0]
            switch op {
            case .add: for i in 0..<count { out[i] = s + y[i] }
            case .subtract: for i in 0..<count { out[i] = s - y[i] }
            case .multiply: for i in 0..<count { out[i] = s * y[i] }
            case .divide: for i in 0..<count { out[i] = s / y[i] }
            }
        default:
            let (s, u) = (x[0], y[0])
            let value: Scalar
            switch op {
            case .add: value = s + u
            case .subtract: value = s - u
            case .multiply: value = s * u
            case .divide: value = s / u
            }
            for i in 0..<count { out[i] = value }
        }
    }

    /// `a op b` with NumPy broadcasting: the same result as `zip(a, b, op)`.
    @_specialize(where Scalar == Float)
    @usableFromInline
    static func arithmetic(_ a: Tensor, _ b: Tensor, _ op: ArithmeticOperator) -> Tensor {
        let shape = a.shape == b.shape ? a.shape : broadcastShape(a.shape, b.shape)
        let count = shape.reduce(1, *)
        guard count > 0 else { return Tensor(shape: shape, scalars: []) }
        return a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                let x = SendablePointer(pa.baseAddress!), y = SendablePointer(pb.baseAddress!)
                // Same shape, or one side a single value: one flat loop.
                if a.scalarCount == count && (b.scalarCount == count || b.scalarCount == 1)
                    || a.scalarCount == 1 && b.scalarCount == count
                {
                    let (xStride, yStride) = (a.scalarCount == 1 ? 0 : 1, b.scalarCount == 1 ? 0 : 1)
                    return Tensor(shape: shape, generating: count) { range, out in
                        applyArithmetic(
                            op, x.base + range.lowerBound * xStride, xStride: xStride, y.base + range.lowerBound * yStride,
                            yStride: yStride, out + range.lowerBound, count: range.count)
                    }
                }
                // General broadcasting: rows of the last axis, each operand contiguous or repeated
                // along it, walked by an odometer over the outer axes.
                let rank = shape.count
                let sa = broadcastStrides(of: a.shape, rank: rank), sb = broadcastStrides(of: b.shape, rank: rank)
                let inner = shape[rank - 1]
                let (innerA, innerB) = (sa[rank - 1] == 0 ? 0 : 1, sb[rank - 1] == 0 ? 0 : 1)
                return Tensor(shape: shape, rows: count / inner, rowLength: inner) { row, out in
                    var remainder = row, offsetA = 0, offsetB = 0
                    for axis in stride(from: rank - 2, through: 0, by: -1) {
                        let index = remainder % shape[axis]
                        remainder /= shape[axis]
                        offsetA += index * sa[axis]
                        offsetB += index * sb[axis]
                    }
                    applyArithmetic(
                        op, x.base + offsetA, xStride: innerA, y.base + offsetB, yStride: innerB, out + row * inner, count: inner)
                }
            }
        }
    }
}
