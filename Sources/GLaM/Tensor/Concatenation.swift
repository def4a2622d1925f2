// Splitting a tensor into equal parts along an axis and joining parts back: the data movement of
// the mesh's collectives (all-gather, reduce-scatter, all-to-all).

extension Tensor {
    /// `count` equal parts along `axis` (which must divide evenly), in order.
    public func split(alongAxis axis: Int, into count: Int) -> [Tensor] {
        let axis = normalizedAxis(axis)
        precondition(count >= 1 && shape[axis] % count == 0, "split: axis \(axis) of \(shape) does not split into \(count) equal parts")
        let (outer, length, inner) = reductionExtents(axis)
        let part = length / count
        var partShape = shape
        partShape[axis] = part
        return (0..<count).map { k in
            var out: [Scalar] = []
            out.reserveCapacity(outer * part * inner)
            for o in 0..<outer {
                let start = (o * length + k * part) * inner
                out += scalars[start..<(start + part * inner)]
            }
            return Tensor(shape: partShape, scalars: out)
        }
    }

    /// `parts` joined along `axis`; every other dimension must agree.
    public static func concatenated(_ parts: [Tensor], alongAxis axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenated: no parts")
        let axis = parts[0].normalizedAxis(axis)
        let first = parts[0].shape
        for part in parts {
            precondition(
                part.rank == first.count && (0..<first.count).allSatisfy { $0 == axis || part.shape[$0] == first[$0] },
                "concatenated: shape \(part.shape) does not fit \(first) along axis \(axis)")
        }
        let outer = first[..<axis].reduce(1, *), inner = first[(axis + 1)...].reduce(1, *)
        var shape = first
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var out: [Scalar] = []
        out.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for part in parts {
                let run = part.shape[axis] * inner
                out += part.scalars[(o * run)..<((o + 1) * run)]
            }
        }
        return Tensor(shape: shape, scalars: out)
    }
}

extension Tensor {
    /// Joins `other` to the end of `self` along `axis`: `self = concatenated([self, other], alongAxis: axis)`.
    /// When every axis before `axis` has size 1 (or `axis` is the first), `other`'s
    /// scalars go at the end of the storage, in place, in amortised O(other) time.
    package mutating func append(_ other: Tensor, alongAxis axis: Int) {
        let axis = normalizedAxis(axis)
        precondition(
            other.rank == rank && (0..<rank).allSatisfy { $0 == axis || other.shape[$0] == shape[$0] },
            "append: \(other.shape) does not join \(shape) along axis \(axis)")
        guard shape[..<axis].allSatisfy({ $0 == 1 }) else {
            self = Tensor.concatenated([self, other], alongAxis: axis)
            return
        }
        var joined = shape
        joined[axis] += other.shape[axis]
        var storage = scalars
        scalars = []  // `storage` is now the only reference: appending does not copy it
        storage.append(contentsOf: other.scalars)
        self = Tensor(shape: joined, scalars: storage)
    }
}
