// Finite-difference gradient checking in Double.
//
// For a function f of several tensors, the objective is L = Σ f(x) ⊙ R with a fixed random R (so
// every output element matters with its own weight). The tape's gradient of L is compared with
// the central difference (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h for every input element i. With several
// inputs, each is also differentiated alone, the others passed as constants: an operation's
// gradient for one input must not depend on which of the others are recorded.

import Testing

@testable import GLaM

/// Random Double test tensor with entries in [lower, upper).
func randomDoubleTensor(_ shape: [Int], seed: UInt64, in range: Range<Double> = -1..<1) -> Tensor<Double> {
    var generator = SeededGenerator(seed: seed)
    let count = shape.reduce(1, *)
    return Tensor(
        shape: shape,
        scalars: (0..<count).map { _ in
            range.lowerBound + (range.upperBound - range.lowerBound) * Double(generator.next() >> 11) * 0x1p-53
        })
}

/// Checks the tape's gradients of `f` at `inputs` against central differences. An error thrown by
/// `f` fails the calling test with that error.
///
/// - Returns: the largest discrepancy found, for reporting.
@discardableResult
func checkGradients(
    _ inputs: [Tensor<Double>], step: Double = 1e-6, tolerance: Double = 1e-6,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ f: ([Variable<Double>]) throws -> Variable<Double>
) throws -> Double {
    let tape = Tape<Double>()
    let variables = inputs.map { tape.variable($0) }
    let output = try f(variables)
    let weights = randomDoubleTensor(output.shape, seed: 99)
    let gradients = tape.gradients(of: output, seed: weights)

    func objective(_ values: [Tensor<Double>]) throws -> Double {
        let y = try f(values.map { Variable(constant: $0) }).value
        return zip(y.scalars, weights.scalars).reduce(0) { $0 + $1.0 * $1.1 }
    }
    if inputs.count > 1 {
        for index in inputs.indices {
            let alone = Tape<Double>()
            let mixed = inputs.indices.map { $0 == index ? alone.variable(inputs[$0]) : Variable(constant: inputs[$0]) }
            let single = alone.gradients(of: try f(mixed), seed: weights)
            let expected = gradients[variables[index]] ?? Tensor(zeros: inputs[index].shape)
            let found = single[mixed[index]] ?? Tensor(zeros: inputs[index].shape)
            #expect(
                found.shape == expected.shape && zip(found.scalars, expected.scalars).allSatisfy { abs($0 - $1) <= 1e-12 * (1 + abs($1)) },
                "input \(index) recorded alone, the others constants: its gradient differs from the one with all recorded",
                sourceLocation: sourceLocation)
        }
    }
    var worst = 0.0
    for (index, input) in inputs.enumerated() {
        let analytic = gradients[variables[index]] ?? Tensor(zeros: input.shape)
        #expect(analytic.shape == input.shape, sourceLocation: sourceLocation)
        for element in 0..<input.scalarCount {
            var plus = inputs, minus = inputs
            plus[index].scalars[element] += step
            minus[index].scalars[element] -= step
            let numeric = (try objective(plus) - objective(minus)) / (2 * step)
            let error = abs(analytic.scalars[element] - numeric)
            worst = max(worst, error)
            #expect(
                error <= tolerance * (1 + abs(numeric)),
                "input \(index) element \(element): tape \(analytic.scalars[element]) vs finite difference \(numeric)",
                sourceLocation: sourceLocation)
        }
    }
    return worst
}
