// The dense tensor: a shape and its scalars in row-major order, with value semantics.
//
// Dimension legend used in shape comments throughout the package (one legend, as in praxis):
//   B batch, T sequence length, M model dimension, H feed-forward hidden dimension,
//   N attention heads, D head dimension, V vocabulary;
//   G groups, S group size (tokens per group), E experts, C expert capacity (GShard).
//
// Deliberately left out: strides and views (every tensor is contiguous; transposes copy or are
// folded into GEMM packing), dtypes other than the scalar type, devices.

/// A dense, row-major array of scalars with a shape (rank 0 is a scalar).
///
/// `Tensor` is a value type: copies share storage until one is mutated. Element
/// `[i₀, i₁, …, iₙ₋₁]` is stored at `Σ_k i_k · stride_k` with `stride_{n-1} = 1` and
/// `stride_k = stride_{k+1} · shape[k+1]`.
public struct Tensor<Scalar: TensorScalar>: Sendable, Equatable {
    /// The size of each dimension, outermost first.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.reduce(1, *)`.
    public var scalars: [Scalar]

    /// A tensor with the given shape and row-major scalars.
    ///
    /// - Precondition: `scalars.count` equals the product of `shape`.
    public init(shape: [Int], scalars: [Scalar]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(
            scalars.count == shape.reduce(1, *),
            "Tensor: \(scalars.count) scalars do not fill shape \(shape) (\(shape.reduce(1, *)) needed)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor of the given shape with every element equal to `value`.
    public init(repeating value: Scalar, shape: [Int]) {
        self.init(shape: shape, scalars: [Scalar](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        self.init(repeating: 0, shape: shape)
    }

    /// A rank-0 tensor holding `value`.
    public init(_ value: Scalar) {
        self.init(shape: [], scalars: [value])
    }

    /// A rank-1 tensor holding `values`.
    public init(_ values: [Scalar]) {
        self.init(shape: [values.count], scalars: values)
    }

    /// The same values converted to another scalar type (rounded to nearest).
    public init<Other: TensorScalar>(_ other: Tensor<Other>) {
        self.init(shape: other.shape, scalars: other.scalars.map { Scalar($0) })
    }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// The number of elements, the product of `shape`.
    public var scalarCount: Int { scalars.count }

    /// The single element of a tensor with one element (any rank).
    public var scalar: Scalar {
        precondition(scalars.count == 1, "Tensor.scalar: tensor of shape \(shape) has \(scalars.count) elements")
        return scalars[0]
    }

    /// Row-major strides of `shape` (in elements).
    package static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            strides[axis] = stride
            stride *= shape[axis]
        }
        return strides
    }

    /// The element at a full multi-index.
    public subscript(_ indices: Int...) -> Scalar {
        get { scalars[offset(of: indices)] }
        set { scalars[offset(of: indices)] = newValue }
    }

    private func offset(of indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "Tensor: \(indices.count) indices for rank \(shape.count)")
        var offset = 0
        for (axis, index) in indices.enumerated() {
            precondition(index >= 0 && index < shape[axis], "Tensor: index \(index) out of range for axis \(axis) of shape \(shape)")
            offset = offset * shape[axis] + index
        }
        return offset
    }

    /// Resolves a possibly negative axis (`-1` is the last) against `rank`.
    @usableFromInline
    func normalizedAxis(_ axis: Int) -> Int {
        let resolved = axis < 0 ? axis + rank : axis
        precondition(resolved >= 0 && resolved < rank, "Tensor: axis \(axis) out of range for rank \(rank)")
        return resolved
    }

    /// The same scalars with a new shape of equal element count (`-1` infers one dimension).
    @_specialize(where Scalar == Float)
    public func reshaped(to newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            precondition(known > 0 && scalarCount % known == 0, "reshaped(to:): cannot infer -1 in \(newShape) from \(shape)")
            resolved[inferred] = scalarCount / known
        }
        precondition(
            resolved.reduce(1, *) == scalarCount,
            "reshaped(to:): shape \(shape) (\(scalarCount) elements) cannot become \(newShape)")
        return Tensor(shape: resolved, scalars: scalars)
    }
}

extension Tensor: CustomStringConvertible {
    /// The shape and up to the first 8 scalars.
    public var description: String {
        let head = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(scalars.count > 8 ? ", …" : "")]"
    }
}
