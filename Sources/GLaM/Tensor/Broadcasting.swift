// Elementwise binary operations with NumPy broadcasting, and the reverse of broadcasting
// (summing a gradient back to an operand's shape).
//
// Broadcasting: shapes are aligned at their last axis; each pair of sizes must be equal or one of
// them 1; the result takes the larger. A tensor of shape [M] therefore combines with [B, T, M].

extension Tensor {
    /// The broadcast shape of `a` and `b` (NumPy rules).
    ///
    /// - Precondition: the shapes are compatible.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = Swift.max(a.count, b.count)
        let pa = [Int](repeating: 1, count: rank - a.count) + a
        let pb = [Int](repeating: 1, count: rank - b.count) + b
        return (0..<rank).map { axis in
            precondition(
                pa[axis] == pb[axis] || pa[axis] == 1 || pb[axis] == 1,
                "broadcast: shapes \(a) and \(b) are incompatible at axis \(axis)")
            return pa[axis] == 1 ? pb[axis] : pa[axis]
        }
    }

    /// `op` applied to corresponding elements of `a` and `b` after broadcasting both to a common
    /// shape.
    @_specialize(where Scalar == Float)
    @inlinable
    public static func zip(
        _ a: Tensor, _ b: Tensor, _ op: (Scalar, Scalar) -> Scalar
    ) -> Tensor {
        if a.shape == b.shape {
            var out = [Scalar](repeating: 0, count: a.scalarCount)
            a.scalars.withUnsafeBufferPointer { pa in
                b.scalars.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        for i in 0..<po.count { po[i] = op(pa[i], pb[i]) }
                    }
                }
            }
            return Tensor(shape: a.shape, scalars: out)
        }
        if b.scalarCount == 1 {
            let s = b.scalars[0]
            let shape = broadcastShape(a.shape, b.shape)
            return Tensor(shape: shape, scalars: a.scalars.map { op($0, s) })
        }
        if a.scalarCount == 1 {
            let s = a.scalars[0]
            let shape = broadcastShape(a.shape, b.shape)
            return Tensor(shape: shape, scalars: b.scalars.map { op(s, $0) })
        }
        return zipGeneral(a, b, op)
    }

    @usableFromInline
    static func zipGeneral(_ a: Tensor, _ b: Tensor, _ op: (Scalar, Scalar) -> Scalar) -> Tensor {
        let shape = broadcastShape(a.shape, b.shape)
        let rank = shape.count
        let sa = broadcastStrides(of: a.shape, rank: rank)
        let sb = broadcastStrides(of: b.shape, rank: rank)
        var out = [Scalar](repeating: 0, count: shape.reduce(1, *))
        guard !out.isEmpty else { return Tensor(shape: shape, scalars: out) }
        let inner = shape[rank - 1]
        let innerA = sa[rank - 1], innerB = sb[rank - 1]
        var index = [Int](repeating: 0, count: rank)  // odometer over the outer axes
        var offsetA = 0, offsetB = 0, o = 0
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    while o < po.count {
                        // The inner axis: both contiguous, or one operand repeated along it.
                        if innerA == 1 && innerB == 1 {
                            for j in 0..<inner { po[o + j] = op(pa[offsetA + j], pb[offsetB + j]) }
                        } else if innerB == 0 {
                            let bValue = pb[offsetB]
                            for j in 0..<inner { po[o + j] = op(pa[offsetA + j * innerA], bValue) }
                        } else {
                            let aValue = pa[offsetA]
                            for j in 0..<inner { po[o + j] = op(aValue, pb[offsetB + j * innerB]) }
                        }
                        o += inner
                        var axis = rank - 2
                        while axis >= 0 {
                            index[axis] += 1
                            offsetA += sa[axis]
                            offsetB += sb[axis]
                            if index[axis] < shape[axis] { break }
                            offsetA -= sa[axis] * shape[axis]
                            offsetB -= sb[axis] * shape[axis]
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// Row-major strides of `shape` left-padded to `rank`, with 0 for broadcast (size-1) axes.
    static func broadcastStrides(of shape: [Int], rank: Int) -> [Int] {
        let padded = [Int](repeating: 1, count: rank - shape.count) + shape
        let strides = Tensor.strides(of: padded)
        return (0..<rank).map { padded[$0] == 1 ? 0 : strides[$0] }
    }

    /// This tensor repeated along size-1 (or missing leading) axes to `newShape`.
    @_specialize(where Scalar == Float)
    public func broadcasted(to newShape: [Int]) -> Tensor {
        precondition(Tensor.broadcastShape(shape, newShape) == newShape, "broadcasted(to:): \(shape) does not broadcast to \(newShape)")
        return Tensor.zip(Tensor(zeros: newShape), self) { _, x in x }
    }

    /// The sum of this tensor over the axes that broadcasting added to reach its shape from
    /// `targetShape`: the adjoint of `broadcasted(to:)`, used by backward passes.
    @_specialize(where Scalar == Float)
    public func unbroadcasted(to targetShape: [Int]) -> Tensor {
        if shape == targetShape { return self }
        let padded = [Int](repeating: 1, count: rank - targetShape.count) + targetShape
        let axes = (0..<rank).filter { padded[$0] == 1 && shape[$0] != 1 }
        return sum(alongAxes: axes).reshaped(to: targetShape)
    }

    /// Elementwise sum with broadcasting.
    @_specialize(where Scalar == Float)
    public static func + (a: Tensor, b: Tensor) -> Tensor { zip(a, b, +) }
    /// Elementwise difference with broadcasting.
    @_specialize(where Scalar == Float)
    public static func - (a: Tensor, b: Tensor) -> Tensor { zip(a, b, -) }
    /// Elementwise (Hadamard) product with broadcasting.
    @_specialize(where Scalar == Float)
    public static func * (a: Tensor, b: Tensor) -> Tensor { zip(a, b, *) }
    /// Elementwise quotient with broadcasting.
    @_specialize(where Scalar == Float)
    public static func / (a: Tensor, b: Tensor) -> Tensor { zip(a, b, /) }
    /// Every element times `s`.
    @_specialize(where Scalar == Float)
    public static func * (a: Tensor, s: Scalar) -> Tensor { a.map { $0 * s } }
    /// Every element times `s`.
    @_specialize(where Scalar == Float)
    public static func * (s: Scalar, a: Tensor) -> Tensor { a.map { s * $0 } }
    /// Every element plus `s`.
    @_specialize(where Scalar == Float)
    public static func + (a: Tensor, s: Scalar) -> Tensor { a.map { $0 + s } }
    /// Every element negated.
    @_specialize(where Scalar == Float)
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }

    /// `transform` applied to every element.
    @_specialize(where Scalar == Float)
    @inlinable
    public func map(_ transform: (Scalar) -> Scalar) -> Tensor {
        var out = [Scalar](repeating: 0, count: scalarCount)
        scalars.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<o.count { o[i] = transform(p[i]) }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }
}
