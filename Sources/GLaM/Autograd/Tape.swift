// Tape-based reverse-mode automatic differentiation (micrograd-style, over tensors).
//
// Every differentiable operation on `Variable`s appends a record to the tape: the ids of its
// inputs and a closure that maps the gradient of its output to the gradients of its inputs.
// Records are appended in evaluation order, which is a topological order, so `gradients(of:)`
// walks the tape backwards once, accumulating (summing) every contribution into the input's
// gradient; a value used twice therefore receives the sum of both uses.
//
// Inference records nothing: operations whose inputs are all constants (no tape), or that run
// while the tape is paused, produce constants.

/// A recording of differentiable operations, for reverse-mode differentiation.
public final class Tape<Scalar: TensorScalar> {
    /// How to push an output gradient back to the inputs of one operation.
    struct Record {
        /// Ids of the inputs that receive gradients (-1: a constant input, skipped).
        let inputs: [Int]
        /// Maps d loss / d output to d loss / d input for each input (nil: no contribution).
        let backward: (Tensor<Scalar>) -> [Tensor<Scalar>?]
    }

    /// One entry per variable on this tape, indexed by variable id; leaves have no record.
    private var records: [Record?] = []
    /// The shape of each variable, for checking gradient contributions.
    private var shapes: [[Int]] = []

    /// While false, operations produce constants and nothing is recorded (inference mode).
    package var isRecording = true

    /// An empty tape.
    public init() {}

    /// The number of variables recorded so far (leaves and operation results).
    package var count: Int { records.count }

    /// A new leaf variable (a parameter or input) whose gradient `gradients(of:)` will report.
    @_specialize(where Scalar == Float)
    public func variable(_ value: Tensor<Scalar>) -> Variable<Scalar> {
        records.append(nil)
        shapes.append(value.shape)
        return Variable(value: value, id: records.count - 1, tape: self)
    }

    /// Runs `body` with recording paused: every operation inside produces constants.
    package func withoutRecording<R>(_ body: () throws -> R) rethrows -> R {
        let saved = isRecording
        isRecording = false
        defer { isRecording = saved }
        return try body()
    }

    func append(value: Tensor<Scalar>, inputs: [Int], backward: @escaping (Tensor<Scalar>) -> [Tensor<Scalar>?]) -> Variable<Scalar> {
        records.append(Record(inputs: inputs, backward: backward))
        shapes.append(value.shape)
        return Variable(value: value, id: records.count - 1, tape: self)
    }

    /// The gradient of `output` with respect to every variable on the tape.
    ///
    /// - Parameters:
    ///   - output: the value to differentiate, recorded on this tape.
    ///   - seed: d loss / d output; by default ones (so for a scalar output, d output / d v).
    /// - Precondition: `output` was recorded on this tape.
    @_specialize(where Scalar == Float)
    public func gradients(of output: Variable<Scalar>, seed: Tensor<Scalar>? = nil) -> Gradients<Scalar> {
        gradients(seeds: [(output, seed ?? Tensor(repeating: 1, shape: output.shape))])
    }

    /// The vector-Jacobian product of several outputs: the gradient of `Σ_k ⟨seed_k, output_k⟩` with
    /// respect to every variable on the tape. This is how a computation split across cores is
    /// differentiated piece by piece: each piece's outputs are seeded with the gradients that flowed
    /// back into them from the pieces that used them.
    ///
    /// - Precondition: every output was recorded on this tape; each seed has its output's shape.
    @_specialize(where Scalar == Float)
    public func gradients(seeds: [(output: Variable<Scalar>, seed: Tensor<Scalar>)]) -> Gradients<Scalar> {
        let last = seeds.map(\.output.id).max() ?? -1
        var grads = [Tensor<Scalar>?](repeating: nil, count: last + 1)
        for (output, seed) in seeds {
            precondition(output.tape === self && output.id >= 0, "gradients: an output was not recorded on this tape")
            precondition(seed.shape == output.shape, "gradients: seed shape \(seed.shape) differs from output shape \(output.shape)")
            grads[output.id] = grads[output.id].map { $0 + seed } ?? seed
        }
        for id in stride(from: last, through: 0, by: -1) {
            guard let record = records[id], let upstream = grads[id] else { continue }
            let contributions = record.backward(upstream)
            for (input, contribution) in Swift.zip(record.inputs, contributions) {
                guard input >= 0, let contribution else { continue }
                precondition(
                    contribution.shape == shapes[input], "backward: gradient \(contribution.shape) for a variable of shape \(shapes[input])"
                )
                if let existing = grads[input] {
                    grads[input] = existing + contribution
                } else {
                    grads[input] = contribution
                }
            }
        }
        return Gradients(storage: grads)
    }
}

/// The gradients computed by `Tape.gradients(of:)` or `Tape.gradients(seeds:)`.
public struct Gradients<Scalar: TensorScalar> {
    let storage: [Tensor<Scalar>?]

    /// d output / d `variable`, or nil when the output does not depend on it (or it is a constant).
    public subscript(_ variable: Variable<Scalar>) -> Tensor<Scalar>? {
        guard variable.id >= 0, variable.id < storage.count else { return nil }
        return storage[variable.id]
    }
}

/// A tensor value that may be recorded on a `Tape` for differentiation.
///
/// A variable either lives on a tape (a leaf made by `Tape.variable(_:)`, or the result of an
/// operation on recorded variables) or is a constant, which carries no gradient.
public struct Variable<Scalar: TensorScalar> {
    /// The value.
    public let value: Tensor<Scalar>
    /// The index on the tape, or -1 for a constant.
    let id: Int
    /// The tape this variable is recorded on (nil for a constant).
    let tape: Tape<Scalar>?

    init(value: Tensor<Scalar>, id: Int, tape: Tape<Scalar>?) {
        self.value = value
        self.id = id
        self.tape = tape
    }

    /// A constant: operations on it record nothing and it receives no gradient.
    public init(constant value: Tensor<Scalar>) {
        self.init(value: value, id: -1, tape: nil)
    }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Whether this variable is recorded on a tape (and so can receive a gradient).
    public var isRecorded: Bool { tape != nil }

    /// The same value as a constant (gradients stop here: `stop_gradient`).
    @_specialize(where Scalar == Float)
    package func detached() -> Variable { Variable(constant: value) }

    /// Records an operation with result `value` and inputs `inputs`, or returns a constant when no
    /// input is recorded or recording is paused. `backward` receives d loss / d result and returns
    /// one gradient per input (it may return nil for inputs that are not recorded).
    static func record(
        _ value: Tensor<Scalar>, inputs: [Variable],
        backward: @escaping (Tensor<Scalar>) -> [Tensor<Scalar>?]
    ) -> Variable {
        guard let tape = inputs.lazy.compactMap(\.tape).first, tape.isRecording else {
            return Variable(constant: value)
        }
        precondition(inputs.allSatisfy { $0.tape == nil || $0.tape === tape }, "autograd: inputs come from different tapes")
        return tape.append(value: value, inputs: inputs.map(\.id), backward: backward)
    }
}
