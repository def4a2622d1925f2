// The per-head products that read q, k and v in the projections' layout: bit for bit the products
// of the same heads transposed into contiguous matrices (the former path), in every layout and
// transpose; their gradients against finite differences; Float and Double paths in agreement.

import Testing

@testable import GLaM

struct HeadMatmulTests {
    /// A tensor in `layout` moved to head-major `[B, N, R, C]` (a plain copy).
    static func headMajor<Scalar>(_ x: Tensor<Scalar>, _ layout: HeadLayout) -> Tensor<Scalar> {
        switch layout {
        case .headMajor: return x
        case .tokenMajor: return x.transposed(permutation: [0, 2, 1, 3])
        }
    }

    /// Cases: (A's layout, B's layout, output layout, transposeA, transposeB).
    static let cases: [(HeadLayout, HeadLayout, HeadLayout, Bool, Bool)] = [
        (.tokenMajor, .tokenMajor, .headMajor, false, true),  // scores q·kᵀ, dp = dO·vᵀ
        (.headMajor, .tokenMajor, .tokenMajor, false, false),  // p·v, dq = dS·k
        (.headMajor, .tokenMajor, .tokenMajor, true, false),  // dv = pᵀ·dO, dk = dSᵀ·q
        (.tokenMajor, .headMajor, .tokenMajor, true, true),
        (.headMajor, .headMajor, .headMajor, false, false),
        (.tokenMajor, .tokenMajor, .tokenMajor, true, false),
        (.headMajor, .headMajor, .tokenMajor, true, true),
    ]

    static func operands(
        _ aLayout: HeadLayout, _ bLayout: HeadLayout, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, seed: UInt64
    ) -> (Tensor<Float>, Tensor<Float>) {
        let (batch, heads) = (3, 4)
        var generator = SeededGenerator(seed: seed)
        let a = Tensor<Float>.randomNormal(
            shape: aLayout.shape(batch: batch, heads: heads, rows: transposeA ? k : m, columns: transposeA ? m : k), standardDeviation: 1,
            generator: &generator)
        let b = Tensor<Float>.randomNormal(
            shape: bLayout.shape(batch: batch, heads: heads, rows: transposeB ? n : k, columns: transposeB ? k : n), standardDeviation: 1,
            generator: &generator)
        return (a, b)
    }

    @Test(
        "every layout and transpose gives the bits of matmul on contiguous copies of the heads, at 1, 2 and 8 threads (one task per head, or each item's heads shared out)"
    )
    func matchesTransposedMatmul() throws {
        for (index, (aLayout, bLayout, outLayout, transposeA, transposeB)) in Self.cases.enumerated() {
            // Sizes over one register tile and one depth block (k = 300 > 256), a small one, and empty
            // ones (no depth: zeros; no rows or columns: no elements).
            for (m, n, k) in [(37, 45, 64), (130, 70, 300), (1, 5, 3), (4, 3, 0), (0, 5, 3), (4, 0, 3), (0, 0, 0)] {
                let (a, b) = Self.operands(
                    aLayout, bLayout, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, seed: UInt64(index))
                let expected = matmul(
                    Self.headMajor(a, aLayout), Self.headMajor(b, bLayout), transposeA: transposeA, transposeB: transposeB)
                for threads in [1, 2, 8] {  // 12 heads: one task each at 1 and 2 threads, fewer than 2 per thread at 8
                    let got = try withThreadCount(threads) {
                        headMatmul(a, aLayout, b, bLayout, transposeA: transposeA, transposeB: transposeB, output: outLayout)
                    }
                    #expect(got.shape == outLayout.shape(batch: 3, heads: 4, rows: m, columns: n))
                    #expect(
                        Self.headMajor(got, outLayout).scalars.map(\.bitPattern) == expected.scalars.map(\.bitPattern),
                        "case \(index), m \(m) n \(n) k \(k), \(threads) threads")
                }
            }
        }
    }

    @Test("the Double loop agrees with the Float GEMM")
    func doubleAgreesWithFloat() {
        for (index, (aLayout, bLayout, outLayout, transposeA, transposeB)) in Self.cases.enumerated() {
            let (a, b) = Self.operands(
                aLayout, bLayout, transposeA: transposeA, transposeB: transposeB, m: 9, n: 11, k: 40, seed: 50 + UInt64(index))
            let float = headMatmul(a, aLayout, b, bLayout, transposeA: transposeA, transposeB: transposeB, output: outLayout)
            let double = headMatmul(
                Tensor(shape: a.shape, scalars: a.scalars.map(Double.init)), aLayout,
                Tensor(shape: b.shape, scalars: b.scalars.map(Double.init)),
                bLayout, transposeA: transposeA, transposeB: transposeB, output: outLayout)
            #expect(zip(float.scalars, double.scalars).allSatisfy { abs(Double($0) - $1) < 1e-4 }, "case \(index)")
        }
    }

    @Test("gradients of both operands in every layout and transpose against finite differences")
    func gradients() throws {
        for (index, (aLayout, bLayout, outLayout, transposeA, transposeB)) in Self.cases.enumerated() {
            let (m, n, k) = (3, 4, 5)
            let a = randomDoubleTensor(
                aLayout.shape(batch: 2, heads: 2, rows: transposeA ? k : m, columns: transposeA ? m : k), seed: 10 + UInt64(index))
            let b = randomDoubleTensor(
                bLayout.shape(batch: 2, heads: 2, rows: transposeB ? n : k, columns: transposeB ? k : n), seed: 20 + UInt64(index))
            try checkGradients([a, b]) { v in
                headMatmul(v[0], aLayout, v[1], bLayout, transposeA: transposeA, transposeB: transposeB, output: outLayout)
            }
        }
    }
}
