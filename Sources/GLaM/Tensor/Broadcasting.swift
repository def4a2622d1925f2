// Elementwise binary operations with NumPy broadcasting, and the reverse of broadcasting
// (summing a gradient back to an operand's shape).
//
// Broadcasting: shapes are aligned at their last axis; each pair of sizes must be equal or one of
// them 1; the result takes the larger. A tensor of shape [M] therefore combines with [B, T, M].

extension Tensor {
    /// The broadcast shape of `a` and `b` (NumPy rules).
    ///
    /// - Precondition: the shapes are compatible.
    @usableFromInline package static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
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
    ///
    /// Large tensors are split into fixed ranges computed on several threads, so `op` must be a
    /// pure function; the result does not depend on the thread count.
    @_specialize(where Scalar == Float)
    @inlinable
    public static func zip(
        _ a: Tensor, _ b: Tensor, _ op: @Sendable (Scalar, Scalar) -> Scalar
    ) -> Tensor {
        if a.shape == b.shape {
            return a.scalars.withUnsafeBufferPointer { pa in
                b.scalars.withUnsafeBufferPointer { pb in
                    let x = UncheckedSendable(pa), y = UncheckedSendable(pb)
                    return Tensor(shape: a.shape, generating: a.scalarCount) { range, out in
                        for i in range { out[i] = op(x.value[i], y.value[i]) }
                    }
                }
            }
        }
        if b.scalarCount == 1 {
            let s = b.scalars[0]
            return a.scalars.withUnsafeBufferPointer { pa in
                let x = UncheckedSendable(pa)
                return Tensor(shape: broadcastShape(a.shape, b.shape), generating: a.scalarCount) { range, out in
                    for i in range { out[i] = op(x.value[i], s) }
                }
            }
        }
        if a.scalarCount == 1 {
            let s = a.scalars[0]
            return b.scalars.withUnsafeBufferPointer { pb in
                let y = UncheckedSendable(pb)
                return Tensor(shape: broadcastShape(a.shape, b.shape), generating: b.scalarCount) { range, out in
                    for i in range { out[i] = op(s, y.value[i]) }
                }
            }
        }
        return zipGeneral(a, b, op)
    }

    /// A tensor of `shape` (with `count` elements) whose elements `fill(range, out)` writes,
    /// range by range, on up to `Parallelism.threadCount` workers: `out[i]` for every `i` in
    /// `range`, nothing else. The memory is not zero-filled first. `grain` is the elements per task
    /// (fewer when each element costs more than one input element).
    @inlinable
    init(
        shape: [Int], generating count: Int, grain: Int = Parallelism.elementsPerTask,
        _ fill: @Sendable (Range<Int>, UnsafeMutablePointer<Scalar>) -> Void
    ) {
        let scalars = [Scalar].filled(count: count) { buffer in
            guard let base = buffer.baseAddress else { return }
            let out = SendableMutablePointer(base)
            Parallelism.forEachRange(count, grain: grain) { range in fill(range, out.base) }
        }
        self.init(shape: shape, scalars: scalars)
    }

    @usableFromInline
    static func zipGeneral(_ a: Tensor, _ b: Tensor, _ op: @Sendable (Scalar, Scalar) -> Scalar) -> Tensor {
        let shape = broadcastShape(a.shape, b.shape)
        let rank = shape.count
        let sa = broadcastStrides(of: a.shape, rank: rank)
        let sb = broadcastStrides(of: b.shape, rank: rank)
        let count = shape.reduce(1, *)
        guard count > 0 else { return Tensor(shape: shape, scalars: []) }
        let inner = shape[rank - 1]
        let innerA = sa[rank - 1], innerB = sb[rank - 1]
        let rows = count / Swift.max(inner, 1)
        let outerShape = Array(shape.dropLast())
        return a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                let x = UncheckedSendable(pa), y = UncheckedSendable(pb)
                let scalars = [Scalar].filled(count: count) { buffer in
                    let out = SendableMutablePointer(buffer.baseAddress!)
                    Parallelism.forEachRange(rows, grain: Parallelism.rowsPerTask(rowLength: inner)) { rowRange in
                        let pa = x.value, pb = y.value, po = out.base
                        // The offsets of the range's first row, from its index over the outer axes.
                        var index = [Int](repeating: 0, count: rank)
                        var remainder = rowRange.lowerBound
                        for axis in stride(from: rank - 2, through: 0, by: -1) {
                            index[axis] = remainder % outerShape[axis]
                            remainder /= outerShape[axis]
                        }
                        var offsetA = 0, offsetB = 0
                        for axis in 0..<(rank - 1) {
                            offsetA += index[axis] * sa[axis]
                            offsetB += index[axis] * sb[axis]
                        }
                        for row in rowRange {
                            let o = row * inner
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
                return Tensor(shape: shape, scalars: scalars)
            }
        }
    }

    /// Row-major strides of `shape` left-padded to `rank`, with 0 for broadcast (size-1) axes.
    static func broadcastStrides(of shape: [Int], rank: Int) -> [Int] {
        let padded = [Int](repeating: 1, count: rank - shape.count) + shape
        let strides = Tensor.strides(of: padded)
        return (0..<rank).map { padded[$0] == 1 ? 0 : strides[$0] }
    }

    /// This tensor repeated along size-1 (or missing leading) axes to `newShape`.
    @_specialize(where Scalar == Float)
    package func broadcasted(to newShape: [Int]) -> Tensor {
        precondition(Tensor.broadcastShape(shape, newShape) == newShape, "broadcasted(to:): \(shape) does not broadcast to \(newShape)")
        return Tensor.zip(Tensor(zeros: newShape), self) { _, x in x }
    }

    /// The sum of this tensor over the axes that broadcasting added to reach its shape from
    /// `targetShape`: the adjoint of `broadcasted(to:)`, used by backward passes.
    @_specialize(where Scalar == Float)
    package func unbroadcasted(to targetShape: [Int]) -> Tensor {
        if shape == targetShape { return self }
        let padded = [Int](repeating: 1, count: rank - targetShape.count) + targetShape
        let axes = (0..<rank).filter { padded[$0] == 1 && shape[$0] != 1 }
        return sum(alongAxes: axes).reshaped(to: targetShape)
    }

    /// Elementwise sum with broadcasting.
    @_specialize(where Scalar == Float)
    public static func + (a: Tensor, b: Tensor) -> Tensor { arithmetic(a, b, .add) }
    /// Elementwise difference with broadcasting.
    @_specialize(where Scalar == Float)
    public static func - (a: Tensor, b: Tensor) -> Tensor { arithmetic(a, b, .subtract) }
    /// Elementwise (Hadamard) product with broadcasting.
    @_specialize(where Scalar == Float)
    public static func * (a: Tensor, b: Tensor) -> Tensor { arithmetic(a, b, .multiply) }
    /// Elementwise quotient with broadcasting.
    @_specialize(where Scalar == Float)
    public static func / (a: Tensor, b: Tensor) -> Tensor { arithmetic(a, b, .divide) }
    /// Every element times `s`.
    @_specialize(where Scalar == Float)
    public static func * (a: Tensor, s: Scalar) -> Tensor { arithmetic(a, Tensor(s), .multiply) }
    /// Every element times `s`.
    @_specialize(where Scalar == Float)
    public static func * (s: Scalar, a: Tensor) -> Tensor { arithmetic(Tensor(s), a, .multiply) }
    /// Every element plus `s`.
    @_specialize(where Scalar == Float)
    public static func + (a: Tensor, s: Scalar) -> Tensor { arithmetic(a, Tensor(s), .add) }
    /// Every element negated.
    @_specialize(where Scalar == Float)
    public static prefix func - (a: Tensor) -> Tensor { arithmetic(Tensor(-1), a, .multiply) }

    /// `transform` applied to every element.
    ///
    /// Large tensors are split into fixed ranges computed on several threads, so `transform` must
    /// be a pure function; the result does not depend on the thread count.
    @_specialize(where Scalar == Float)
    @inlinable
    public func map(_ transform: @Sendable (Scalar) -> Scalar) -> Tensor {
        scalars.withUnsafeBufferPointer { p in
            let x = UncheckedSendable(p)
            return Tensor(shape: shape, generating: scalarCount) { range, out in
                for i in range { out[i] = transform(x.value[i]) }
            }
        }
    }
}
