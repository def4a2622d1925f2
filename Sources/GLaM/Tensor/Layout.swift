// Operations that move elements without arithmetic: axis permutation, row gather (embedding
// lookup) and its adjoint scatter-add.

extension Tensor {
    /// The tensor with its axes permuted: result axis `i` is input axis `permutation[i]`.
    @_specialize(where Scalar == Float)
    public func transposed(permutation: [Int]) -> Tensor {
        precondition(
            permutation.sorted() == Array(0..<rank), "transposed(permutation:): \(permutation) is not a permutation of 0..<\(rank)")
        let newShape = permutation.map { shape[$0] }
        let inStrides = Tensor.strides(of: shape)
        let permutedStrides = permutation.map { inStrides[$0] }
        guard scalarCount > 0 else { return Tensor(shape: newShape, scalars: []) }
        let rank = self.rank
        return scalars.withUnsafeBufferPointer { px in
            let x = SendablePointer(px.baseAddress!)
            return Tensor(shape: newShape, generating: scalarCount) { range, out in
                // The source offset of the range's first element, then an odometer over the output.
                var index = [Int](repeating: 0, count: rank)
                var remainder = range.lowerBound, source = 0
                for axis in stride(from: rank - 1, through: 0, by: -1) {
                    index[axis] = remainder % newShape[axis]
                    remainder /= newShape[axis]
                    source += index[axis] * permutedStrides[axis]
                }
                for o in range {
                    out[o] = x.base[source]
                    var axis = rank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        source += permutedStrides[axis]
                        if index[axis] < newShape[axis] { break }
                        source -= permutedStrides[axis] * newShape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
    }

    /// The tensor with its last two axes swapped: `[..., m, n] → [..., n, m]`.
    @_specialize(where Scalar == Float)
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed(): needs rank ≥ 2, got shape \(shape)")
        var permutation = Array(0..<rank)
        permutation.swapAt(rank - 1, rank - 2)
        return transposed(permutation: permutation)
    }

    /// Rows of a `[V, M]` table picked by `indices`: the embedding lookup, `out[i] = table[indices[i]]`.
    ///
    /// - Returns: `[indices.count, M]`.
    /// - Precondition: every index is in `0..<V`.
    @_specialize(where Scalar == Float)
    public func gatheringRows(_ indices: [Int]) -> Tensor {
        precondition(rank == 2, "gatheringRows: table must be [V, M], got \(shape)")
        let (v, m) = (shape[0], shape[1])
        var out = [Scalar](repeating: 0, count: indices.count * m)
        for (i, row) in indices.enumerated() {
            precondition(row >= 0 && row < v, "gatheringRows: index \(row) out of range 0..<\(v)")
            for j in 0..<m { out[i * m + j] = scalars[row * m + j] }
        }
        return Tensor(shape: [indices.count, m], scalars: out)
    }

    /// The adjoint of `gatheringRows`: a `[rowCount, M]` tensor where row `r` is the sum of the rows
    /// `i` of this `[indices.count, M]` tensor with `indices[i] == r` (summed in increasing `i`).
    @_specialize(where Scalar == Float)
    package func scatterAddingRows(_ indices: [Int], rowCount: Int) -> Tensor {
        precondition(rank == 2 && shape[0] == indices.count, "scatterAddingRows: expected [\(indices.count), M], got \(shape)")
        let m = shape[1]
        var out = [Scalar](repeating: 0, count: rowCount * m)
        for (i, row) in indices.enumerated() {
            precondition(row >= 0 && row < rowCount, "scatterAddingRows: index \(row) out of range 0..<\(rowCount)")
            for j in 0..<m { out[row * m + j] += scalars[i * m + j] }
        }
        return Tensor(shape: [rowCount, m], scalars: out)
    }
}
