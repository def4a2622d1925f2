// The library's preconditions, each stated both ways: the misuse it names stops the process (an
// exit test, run in a child process), and the nearest valid call goes through. A precondition that
// is deleted or weakened would let garbage or an out-of-bounds access through; one made stricter
// would refuse valid work.

import Testing

@testable import GLaM

struct PreconditionTests {
    @Test("tensors: negative dimensions, too few or too many scalars, bad indices, axes and reshapes stop")
    func tensorMisuseStops() async {
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [-1, 2], scalars: []) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 2], scalars: [1, 2, 3]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2], scalars: [1, 2, 3]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>([1, 2]).scalar }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 2], scalars: [1, 2, 3, 4])[2, 0] }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 2], scalars: [1, 2, 3, 4])[0] }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).reshaped(to: [4, -1]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).reshaped(to: [0, -1]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).reshaped(to: [5]) }
        await #expect(processExitsWith: .failure) {
            _ = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).transposed(permutation: [0, 0])
        }
        await #expect(processExitsWith: .failure) {
            _ = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]).split(alongAxis: 1, into: 2)
        }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>.concatenated([], alongAxis: 0) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>([1, 2]).transposed() }
        await #expect(processExitsWith: .failure) {
            var cache = Tensor<Float>(zeros: [1, 4, 3])
            cache.append(Tensor<Float>(zeros: [1, 1, 2]), alongAxis: 1)  // another size along axis 2
        }
        // The nearest valid calls.
        let t = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(Tensor<Float>(shape: [0, 2], scalars: []).scalarCount == 0 && Tensor<Float>([7]).scalar == 7)
        #expect(t[1, 2] == 6 && t.reshaped(to: [3, -1]).shape == [3, 2] && t.reshaped(to: [6]).shape == [6])
        #expect(t.transposed(permutation: [1, 0]).shape == [3, 2] && t.split(alongAxis: 1, into: 3).count == 3)
        #expect(Tensor<Float>(shape: [0, 3], scalars: []).reshaped(to: [0, 3]).shape == [0, 3])
        var cache = Tensor<Float>(zeros: [1, 4, 3])
        cache.append(Tensor<Float>(zeros: [1, 1, 3]), alongAxis: 1)
        #expect(cache.shape == [1, 5, 3])
        // Broadcasting to exactly one element, and to none.
        #expect(Tensor<Float>([2]) * Tensor<Float>(shape: [1, 1], scalars: [3]) == Tensor<Float>(shape: [1, 1], scalars: [6]))
        #expect((Tensor<Float>([2]) * Tensor<Float>(shape: [1, 0], scalars: [])).shape == [1, 0])
    }

    @Test("products: operands of the wrong rank, batch or inner size stop; the smallest and empty products go through")
    func productMisuseStops() async {
        await #expect(processExitsWith: .failure) { _ = matmul(Tensor<Float>([1, 2]), Tensor<Float>(shape: [2, 1], scalars: [1, 2])) }
        await #expect(processExitsWith: .failure) {
            _ = matmul(Tensor<Float>(shape: [1, 2], scalars: [1, 2]), Tensor<Float>(shape: [3, 1], scalars: [1, 2, 3]))
        }
        await #expect(processExitsWith: .failure) {
            _ = matmul(Tensor<Float>(shape: [2, 1, 1], scalars: [1, 2]), Tensor<Float>(shape: [3, 1, 1], scalars: [1, 2, 3]))
        }
        await #expect(processExitsWith: .failure) {
            _ = headMatmul(
                Tensor<Float>(zeros: [1, 2, 3, 4]), .headMajor, Tensor<Float>(zeros: [1, 3, 4, 3]), .headMajor, output: .headMajor)
        }
        await #expect(processExitsWith: .failure) {
            _ = headMatmul(
                Tensor<Float>(zeros: [1, 2, 3, 4]), .headMajor, Tensor<Float>(zeros: [2, 2, 4, 3]), .headMajor, output: .headMajor)
        }
        await #expect(processExitsWith: .failure) {
            _ = headMatmul(
                Tensor<Float>(zeros: [1, 2, 3, 4]), .headMajor, Tensor<Float>(zeros: [1, 2, 5, 3]), .headMajor, output: .headMajor)
        }
        await #expect(processExitsWith: .failure) {
            _ = headMatmul(Tensor<Float>(zeros: [2, 3, 4]), .headMajor, Tensor<Float>(zeros: [2, 4, 3]), .headMajor, output: .headMajor)
        }
        // The nearest valid calls: matching heads, a shared right operand, and k = 0.
        #expect(
            headMatmul(Tensor<Float>(zeros: [1, 2, 3, 4]), .headMajor, Tensor<Float>(zeros: [1, 2, 4, 3]), .headMajor, output: .headMajor)
                .shape == [1, 2, 3, 3])
        #expect(
            headMatmul(
                Tensor<Float>(zeros: [1, 3, 2, 4]), .tokenMajor, Tensor<Float>(zeros: [1, 4, 2, 3]), .tokenMajor, output: .headMajor
            )
            .shape == [1, 2, 3, 3])
        #expect(
            matmul(Tensor<Float>(shape: [2, 1, 2], scalars: [1, 2, 3, 4]), Tensor<Float>(shape: [2, 1], scalars: [1, 1])).shape == [
                2, 1, 1,
            ])
        #expect(matmul(Tensor<Float>(zeros: [2, 0]), Tensor<Float>(zeros: [0, 3])) == Tensor<Float>(zeros: [2, 3]))
    }

    @Test("gating results: a choice other than 0 (first) or 1 (second) stops; both choices answer; so does a thread count below 1")
    func gatingChoiceMisuseStops() async throws {
        await #expect(processExitsWith: .failure) {
            _ = try? gate(GatingTests.exampleLogits, g: 1, s: 8, e: 4, capacityFactor: 1.0).isDispatched(token: 0, choice: 2)
        }
        await #expect(processExitsWith: .failure) {
            _ = try? gate(GatingTests.exampleLogits, g: 1, s: 8, e: 4, capacityFactor: 1.0).isDispatched(token: 0, choice: -1)
        }
        let result = try gate(GatingTests.exampleLogits, g: 1, s: 8, e: 4, capacityFactor: 1.0)
        // A thread count below one is refused (results never depend on the count, only speed).
        await #expect(processExitsWith: .failure) { Parallelism.threadCount = 0 }
        await #expect(processExitsWith: .failure) { Parallelism.threadCount = -4 }
        #expect(try withThreadCount(1) { Parallelism.threadCount } == 1)
        // Token 0 is kept at both of its choices (the worked example at factor 1.0).
        #expect(result.isDispatched(token: 0, choice: 0) && result.isDispatched(token: 0, choice: 1))
    }

    @Test("lookups: rows and gathers out of range, and scale and segment ids of the wrong size, stop")
    func lookupMisuseStops() async {
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [3, 2]).gatheringRows([3]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [3, 2]).gatheringRows([-1]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [6]).gatheringRows([0]) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [2, 2]).scatterAddingRows([0, 2], rowCount: 2) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [3, 2]).scatterAddingRows([0, 1], rowCount: 2) }
        await #expect(processExitsWith: .failure) { _ = Tensor<Float>(zeros: [2, 0]).argmaxAlongLastAxis() }
        await #expect(processExitsWith: .failure) {
            _ = rmsNormalized(Tensor<Float>(zeros: [2, 3]), scale: Tensor<Float>(zeros: [2]), epsilon: 1e-6)
        }
        await #expect(processExitsWith: .failure) { _ = TextDataset.rows(step: 0, batchSize: 5, rowCount: 4, seed: 0) }
        await #expect(processExitsWith: .failure) { _ = TextDataset.rows(step: 0, batchSize: 0, rowCount: 4, seed: 0) }
        // The nearest valid calls: the last row, a batch of all rows.
        #expect(Tensor<Float>(shape: [3, 1], scalars: [1, 2, 3]).gatheringRows([2, 0]).scalars == [3, 1])
        #expect(Tensor<Float>(shape: [2, 1], scalars: [1, 2]).scatterAddingRows([1, 1], rowCount: 2).scalars == [0, 3])
        #expect(Tensor<Float>(shape: [1, 3], scalars: [1, 3, 2]).argmaxAlongLastAxis() == [1])
        #expect(rmsNormalized(Tensor<Float>(zeros: [2, 3]), scale: Tensor<Float>(zeros: [3]), epsilon: 1e-6).0.shape == [2, 3])
        #expect(TextDataset.rows(step: 0, batchSize: 4, rowCount: 4, seed: 0).sorted() == [0, 1, 2, 3])
        #expect(PackedRows(documents: [[1, 2, 3]], length: 1).count == 2)
        #expect(Tensor<Float>(shape: [1, 2], scalars: [1, 2]).transposed().shape == [2, 1])
    }
}
