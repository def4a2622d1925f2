// Attention's per-head products (Tensor/HeadMatmul.swift) on `Variable`, with their backward
// pass: each gradient is itself a per-head product, written in its operand's layout.

/// The per-head product of tensors above (`headMatmul` on `Tensor`), differentiable.
///
/// With `C = op(A)·op(B)` and upstream `G` (in C's layout): `d op(A) = G·op(B)ᵀ` and
/// `d op(B) = op(A)ᵀ·G`, each written in its operand's layout and transposed back when the operand
/// was read transposed; no head is ever copied to another layout.
@_specialize(where Scalar == Float)
package func headMatmul<Scalar>(
    _ a: Variable<Scalar>, _ aLayout: HeadLayout, _ b: Variable<Scalar>, _ bLayout: HeadLayout,
    transposeA: Bool = false, transposeB: Bool = false, output: HeadLayout
) -> Variable<Scalar> {
    let av = a.value, bv = b.value
    let c = headMatmul(av, aLayout, bv, bLayout, transposeA: transposeA, transposeB: transposeB, output: output)
    let (needA, needB) = (a.isRecorded, b.isRecorded)  // never capture Variables: they hold the tape
    return Variable.record(c, inputs: [a, b]) { g in
        var da: Tensor<Scalar>? = nil
        var db: Tensor<Scalar>? = nil
        if needA {
            da =
                transposeA
                ? headMatmul(bv, bLayout, g, output, transposeA: transposeB, transposeB: true, output: aLayout)  // op(B)·Gᵀ
                : headMatmul(g, output, bv, bLayout, transposeB: !transposeB, output: aLayout)  // G·op(B)ᵀ
        }
        if needB {
            db =
                transposeB
                ? headMatmul(g, output, av, aLayout, transposeA: true, transposeB: transposeA, output: bLayout)  // Gᵀ·op(A)
                : headMatmul(av, aLayout, g, output, transposeA: !transposeA, output: bLayout)  // op(A)ᵀ·G
        }
        return [da, db]
    }
}
