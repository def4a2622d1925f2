// Tensors of seeded random samples (parameter initialisation, test inputs), drawn in row-major
// order from a `SeededGenerator` (Support/Random.swift).

extension Tensor where Scalar == Float {
    /// A tensor of independent N(0, std²) samples drawn in row-major order from `generator`.
    public static func randomNormal(shape: [Int], standardDeviation: Float = 1, generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in generator.nextNormal() * standardDeviation })
    }

    /// A tensor of independent U(−bound, bound) samples drawn in row-major order from `generator`.
    public static func randomUniform(shape: [Int], bound: Float, generator: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in (2 * generator.nextUniform() - 1) * bound })
    }
}
