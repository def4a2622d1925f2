// The reference matrix multiplication: the plain triple loop, in Double, that the fast packed
// kernel in GEMM.swift must agree with. Kept deliberately simple; never used on a hot path.

/// `C = op(A) · op(B)` by the definition `C[i][j] = Σ_p A[i][p] · B[p][j]`, accumulated in Double.
///
/// `a` is `[m, k]` (or `[k, m]` when `transposeA`), `b` is `[k, n]` (or `[n, k]` when
/// `transposeB`), row-major; the result is `[m, n]` row-major.
package func referenceMatmul(
    _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int,
    transposeA: Bool = false, transposeB: Bool = false
) -> [Float] {
    precondition(a.count == m * k && b.count == k * n, "referenceMatmul: operand sizes do not match m, n, k")
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let aip = transposeA ? a[p * m + i] : a[i * k + p]
                let bpj = transposeB ? b[j * k + p] : b[p * n + j]
                sum += Double(aip) * Double(bpj)
            }
            c[i * n + j] = Float(sum)
        }
    }
    return c
}
