// Every differentiable operation against finite differences in Double, plus the tape's own
// behaviour: accumulation for values used twice, and inference mode recording nothing.

import Testing

@testable import GLaM

struct AutogradTests {
    let x23 = randomDoubleTensor([2, 3], seed: 1)
    let y23 = randomDoubleTensor([2, 3], seed: 2)
    let positive23 = randomDoubleTensor([2, 3], seed: 3, in: 0.5..<2)

    @Test func arithmeticWithBroadcasting() throws {
        let row = randomDoubleTensor([3], seed: 4)
        let column = randomDoubleTensor([2, 1], seed: 5)
        try checkGradients([x23, y23]) { $0[0] + $0[1] }
        try checkGradients([x23, row]) { $0[0] - $0[1] }
        try checkGradients([x23, column]) { $0[0] * $0[1] }
        try checkGradients([x23, positive23]) { $0[0] / $0[1] }
        try checkGradients([row, positive23]) { $0[0] / $0[1] }
        try checkGradients([x23]) { 3 * $0[0] + 0.5 }
        try checkGradients([x23]) { -$0[0] * 2 }
    }

    @Test func pointwiseFunctions() throws {
        try checkGradients([x23]) { $0[0].exp() }
        try checkGradients([positive23]) { $0[0].log() }
        try checkGradients([x23]) { $0[0].tanh() }
        try checkGradients([positive23]) { $0[0].squareRoot() }
        try checkGradients([x23]) { $0[0].squared() }
        try checkGradients([randomDoubleTensor([4, 5], seed: 6, in: -3..<3)]) { $0[0].gelu() }
        // ReLU away from the kink at 0, where the derivative is undefined.
        try checkGradients([Tensor(shape: [4], scalars: [-1.5, -0.2, 0.3, 2])]) { $0[0].relu() }
    }

    @Test func reductions() throws {
        let x = randomDoubleTensor([2, 3, 4], seed: 7)
        try checkGradients([x]) { $0[0].sum(alongAxes: [1]) }
        try checkGradients([x]) { $0[0].sum(alongAxes: [0, 2]) }
        try checkGradients([x]) { $0[0].mean(alongAxes: [-1]) }
        try checkGradients([x]) { $0[0].sum() }
        try checkGradients([x]) { $0[0].mean() }
    }

    @Test func softmaxFamily() throws {
        let logits = randomDoubleTensor([3, 5], seed: 8, in: -2..<2)
        try checkGradients([logits]) { $0[0].softmax() }
        try checkGradients([logits]) { $0[0].logSoftmax() }
        try checkGradients([logits]) { $0[0].logSumExp() }
    }

    @Test func rmsNorm() throws {
        let x = randomDoubleTensor([2, 3, 6], seed: 9)
        let scale = randomDoubleTensor([6], seed: 10, in: 0.5..<1.5)
        try checkGradients([x, scale]) { rmsNormalized($0[0], scale: $0[1], epsilon: 1e-6) }
        // Rows of no elements, and no rows: empty results, gradients zeros of each input's shape.
        for (shape, width) in [([2, 0], 0), ([0, 3], 3), ([0, 0], 0)] {
            let tape = Tape<Float>()
            let xs = tape.variable(Tensor<Float>(zeros: shape)), scales = tape.variable(Tensor<Float>(repeating: 1, shape: [width]))
            let y = rmsNormalized(xs, scale: scales, epsilon: 1e-6)
            #expect(y.shape == shape)
            let gradients = tape.gradients(of: y.sum() + scales.sum())
            #expect(gradients[xs] == Tensor<Float>(zeros: shape), "\(shape)")
            #expect(gradients[scales] == Tensor<Float>(repeating: 1, shape: [width]), "\(shape)")
        }
    }

    @Test func layout() throws {
        let x = randomDoubleTensor([2, 3, 4], seed: 11)
        try checkGradients([x]) { $0[0].reshaped(to: [6, 4]) }
        try checkGradients([x]) { $0[0].transposed(permutation: [2, 0, 1]) }
        try checkGradients([x]) { $0[0].transposed() }
        let table = randomDoubleTensor([5, 3], seed: 12)
        try checkGradients([table]) { $0[0].gatheringRows([4, 0, 4, 2]) }  // row 4 used twice
    }

    @Test("matmul: all transposes, batched, and shared matrices", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matrixProducts(transposes: (Bool, Bool)) throws {
        let (tA, tB) = transposes
        let (m, k, n) = (2, 3, 4)
        let a = randomDoubleTensor(tA ? [k, m] : [m, k], seed: 13)
        let b = randomDoubleTensor(tB ? [n, k] : [k, n], seed: 14)
        try checkGradients([a, b]) { matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
        let batchedA = randomDoubleTensor(tA ? [2, k, m] : [2, m, k], seed: 15)
        let batchedB = randomDoubleTensor(tB ? [2, n, k] : [2, k, n], seed: 16)
        try checkGradients([batchedA, batchedB]) { matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
        try checkGradients([batchedA, b]) { matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
        try checkGradients([a, batchedB]) { matmul($0[0], $0[1], transposeA: tA, transposeB: tB) }
    }

    @Test("a composite: softmax attention over a tiny sequence")
    func composite() throws {
        let q = randomDoubleTensor([2, 3, 4], seed: 17), k = randomDoubleTensor([2, 3, 4], seed: 18)
        let v = randomDoubleTensor([2, 3, 4], seed: 19)
        try checkGradients([q, k, v]) { x in
            let weights = matmul(x[0], x[1], transposeB: true).softmax()  // [2, 3, 3]
            return matmul(weights, x[2])  // [2, 3, 4]
        }
    }

    @Test("a value used twice receives the sum of both gradients")
    func accumulation() {
        let tape = Tape<Double>()
        let x = tape.variable(Tensor([2, -3]))
        let y = (x * x + x * 3).sum()  // dy/dx = 2x + 3
        let g = tape.gradients(of: y)
        #expect(g[x] == Tensor([7, -3]))
    }

    @Test("inference mode records nothing and yields constants")
    func inferenceRecordsNothing() {
        let tape = Tape<Float>()
        let w = tape.variable(Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        let before = tape.count
        let y = tape.withoutRecording { matmul(w, w).softmax().sum() }
        #expect(tape.count == before)
        #expect(!y.isRecorded)
        let constant = Variable(constant: Tensor<Float>([1, 2]))
        #expect(!(constant * constant).isRecorded)
        // Recording resumes afterwards.
        #expect(matmul(w, w).isRecorded)
    }

    @Test("a detached value stops the gradient")
    func detach() {
        let tape = Tape<Double>()
        let x = tape.variable(Tensor([3]))
        let y = (x * x.detached()).sum()  // d/dx = x (not 2x)
        #expect(tape.gradients(of: y)[x] == Tensor([3]))
    }

    @Test("a tape and everything it recorded are released once its variables are gone (no cycles)")
    func tapeIsReleased() throws {
        weak var released: Tape<Float>?
        do {
            let tape = Tape<Float>()
            released = tape
            let configuration = try namedConfiguration("tiny")
            let variables = try ModelParameters(configuration: configuration, seed: 1).variables(on: tape)
            let batch = TokenBatch(
                batchSize: 2, length: 8, tokens: Array(0..<16), targets: Array(1..<17), paddings: [Float](repeating: 0, count: 15) + [1])
            let output: DecoderOutput<Float> = try variables(batch)
            _ = tape.gradients(of: try #require(output.loss))
        }
        #expect(released == nil, "the tape leaked: a backward closure captures a Variable")
    }

    @Test("seeded gradients: no seeds give no gradients; seeds add up, and seeding an output with ones is gradients(of:)")
    func seededGradients() {
        let tape = Tape<Double>()
        let w = tape.variable(Tensor<Double>(shape: [2, 2], scalars: [1, 2, 3, 4]))
        let y = (w * w).sum()  // dy/dw = 2w
        let none = tape.gradients(seeds: [])
        #expect(none[w] == nil && none[y] == nil)
        let once = tape.gradients(seeds: [(output: y, seed: Tensor<Double>(1))])
        #expect(once[w] == tape.gradients(of: y)[w] && once[w]?.scalars == [2, 4, 6, 8])
        // Two seeds of the same output add: 1 + 2 = 3 times the gradient.
        let twice = tape.gradients(seeds: [(output: y, seed: Tensor<Double>(1)), (output: y, seed: Tensor<Double>(2))])
        #expect(twice[w]?.scalars == [6, 12, 18, 24])
    }

    @Test("broadcasting against an empty axis: an empty result, and each operand's gradient zeros of its own shape")
    func broadcastingToAnEmptyAxis() {
        let tape = Tape<Double>()
        let a = tape.variable(Tensor<Double>(shape: [2, 1], scalars: [1, 2]))
        let b = tape.variable(Tensor<Double>(shape: [0], scalars: []))
        let y = a * b  // [2, 1] · [0] → [2, 0]
        #expect(y.shape == [2, 0])
        let gradients = tape.gradients(of: y.sum() + a.sum())
        #expect(gradients[a] == Tensor<Double>(shape: [2, 1], scalars: [1, 1]) && gradients[b] == Tensor<Double>(zeros: [0]))
    }
}
