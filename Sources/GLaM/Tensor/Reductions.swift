// Reductions along axes: sum, mean and max. Each reduces in a fixed order (increasing index), so
// the result never depends on threads or on how the call was split.

extension Tensor {
    /// Views the tensor as `[outer, shape[axis], inner]` for a reduction along `axis`.
    func reductionExtents(_ axis: Int) -> (outer: Int, length: Int, inner: Int) {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        return (outer, shape[axis], inner)
    }

    /// How a reduction over `length` values for each of `inner` columns is cut into tasks: chunks
    /// of `columns` columns (about `elementsPerTask` input elements, at least 64 columns), `chunks`
    /// of them per outer slice.
    static func columnChunks(length: Int, inner: Int) -> (columns: Int, chunks: Int) {
        let columns = Swift.min(inner, Swift.max(64, Parallelism.elementsPerTask / Swift.max(1, length)))
        return (columns, (inner + columns - 1) / columns)
    }

    /// Reduces along one axis, keeping it with size 1: `out[o, 0, i] = fold(x[o, 0..<n, i])`.
    ///
    /// Work is split into tasks of whole output elements (`outer` slices, each cut into chunks of
    /// `inner`); every output element is folded by one task in increasing order along the axis.
    func reduced(alongAxis axis: Int, initial: Scalar, _ combine: @escaping @Sendable (Scalar, Scalar) -> Scalar) -> Tensor {
        let axis = normalizedAxis(axis)
        let (outer, length, inner) = reductionExtents(axis)
        var newShape = shape
        newShape[axis] = 1
        guard outer * inner > 0 else { return Tensor(shape: newShape, scalars: []) }
        let (columns, chunks) = Self.columnChunks(length: length, inner: inner)
        let out = scalars.withUnsafeBufferPointer { px in
            let x = SendablePointer(px.baseAddress!)
            return [Scalar].filled(count: outer * inner) { buffer in
                let y = SendableMutablePointer(buffer.baseAddress!)
                Parallelism.forEachRow(outer * chunks, rowLength: Swift.max(1, length * columns)) { task in
                    let o = task / chunks
                    let i0 = (task % chunks) * columns, i1 = Swift.min(inner, i0 + columns)
                    let target = y.base + o * inner
                    for i in i0..<i1 { target[i] = initial }
                    let base = x.base + o * length * inner
                    for r in 0..<length {
                        let row = base + r * inner
                        for i in i0..<i1 { target[i] = combine(target[i], row[i]) }
                    }
                }
            }
        }
        return Tensor(shape: newShape, scalars: out)
    }

    /// The sum along one axis, kept with size 1: `out[o, 0, i] = Σ_r x[o, r, i]`, added from 0 in
    /// increasing r, the additions of `reduced(alongAxis: axis, initial: 0, +)`.
    ///
    /// The addition is written out rather than passed as a closure, so that it vectorises: across
    /// the `inner` elements, and along the last axis (`inner == 1`) across eight rows at a time,
    /// each summed in its own order. So the bits are those of the closure form (tested).
    func summed(alongAxis axis: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        let (outer, length, inner) = reductionExtents(axis)
        var newShape = shape
        newShape[axis] = 1
        guard outer * inner > 0 else { return Tensor(shape: newShape, scalars: []) }
        let out = scalars.withUnsafeBufferPointer { px in
            let x = SendablePointer(px.baseAddress!)
            return [Scalar].filled(count: outer * inner) { buffer in
                let y = SendableMutablePointer(buffer.baseAddress!)
                if inner == 1 {
                    // Rows of `length`, eight summed side by side in the lanes of a vector; tasks of
                    // whole groups of eight rows, about `elementsPerTask` elements each.
                    let rowsPerTask = (Parallelism.rowsPerTask(rowLength: length) + 7) / 8 * 8
                    Parallelism.forEachRange(outer, grain: rowsPerTask) { rows in
                        var o = rows.lowerBound
                        while o + 8 <= rows.upperBound {
                            let r0 = x.base + o * length
                            var sums = SIMD8<Scalar>()
                            for r in 0..<length {
                                sums += SIMD8(
                                    r0[r], r0[length + r], r0[2 * length + r], r0[3 * length + r],
                                    r0[4 * length + r], r0[5 * length + r], r0[6 * length + r], r0[7 * length + r])
                            }
                            for lane in 0..<8 { y.base[o + lane] = sums[lane] }
                            o += 8
                        }
                        for row in o..<rows.upperBound {
                            var sum: Scalar = 0
                            for r in 0..<length { sum += x.base[row * length + r] }
                            y.base[row] = sum
                        }
                    }
                    return
                }
                // Tasks of whole output elements, as in `reduced`.
                let (columns, chunks) = Self.columnChunks(length: length, inner: inner)
                Parallelism.forEachRow(outer * chunks, rowLength: Swift.max(1, length * columns)) { task in
                    let o = task / chunks
                    let i0 = (task % chunks) * columns, i1 = Swift.min(inner, i0 + columns)
                    let target = y.base + o * inner, base = x.base + o * length * inner
                    for i in i0..<i1 { target[i] = 0 }
                    for r in 0..<length {
                        let row = base + r * inner
                        for i in i0..<i1 { target[i] += row[i] }
                    }
                }
            }
        }
        return Tensor(shape: newShape, scalars: out)
    }

    /// The sum over the given axes, which are kept with size 1 (negative axes count from the end).
    @_specialize(where Scalar == Float)
    public func sum(alongAxes axes: [Int]) -> Tensor {
        var result = self
        for axis in Set(axes.map(normalizedAxis)).sorted() { result = result.summed(alongAxis: axis) }
        return result
    }

    /// The sum over one axis, kept with size 1.
    @_specialize(where Scalar == Float)
    public func sum(alongAxis axis: Int) -> Tensor { sum(alongAxes: [axis]) }

    /// The sum of all elements, as a rank-0 tensor.
    @_specialize(where Scalar == Float)
    public func sum() -> Tensor {
        var total: Scalar = 0
        for x in scalars { total += x }
        return Tensor(total)
    }

    /// The mean over the given axes, which are kept with size 1.
    @_specialize(where Scalar == Float)
    public func mean(alongAxes axes: [Int]) -> Tensor {
        let count = Set(axes.map(normalizedAxis)).reduce(1) { $0 * shape[$1] }
        return sum(alongAxes: axes) * (1 / Scalar(count))
    }

    /// The mean over one axis, kept with size 1.
    @_specialize(where Scalar == Float)
    public func mean(alongAxis axis: Int) -> Tensor { mean(alongAxes: [axis]) }

    /// The mean of all elements, as a rank-0 tensor.
    @_specialize(where Scalar == Float)
    public func mean() -> Tensor { sum() * (1 / Scalar(Swift.max(scalarCount, 1))) }

    /// The maximum over one axis, kept with size 1.
    @_specialize(where Scalar == Float)
    public func max(alongAxis axis: Int) -> Tensor {
        reduced(alongAxis: axis, initial: -Scalar.infinity) { Swift.max($0, $1) }
    }

    /// The index of the first maximum along the last axis: `[..., n] → [...]` (ties go to the
    /// lowest index, like `jnp.argmax`).
    @_specialize(where Scalar == Float)
    package func argmaxAlongLastAxis() -> [Int] {
        let n = shape.last ?? 1
        precondition(n > 0, "argmax: empty last axis")
        return (0..<(scalarCount / n)).map { row in
            var best = 0
            for j in 1..<n where scalars[row * n + j] > scalars[row * n + best] { best = j }
            return best
        }
    }
}
