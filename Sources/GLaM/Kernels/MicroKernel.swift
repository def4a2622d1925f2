// The GEMM register-tile micro-kernel: a 6 × 16 block of C held in registers while it accumulates
// the product of a packed 6 × kc panel of A and a packed kc × 16 panel of B (BLIS' "microkernel").
//
// Twelve 8-lane (AVX2) or six 16-lane (AVX-512) accumulators; per step of k one 16-float load of
// B, six broadcasts of A and six fused multiply-adds. With `-DGLAM_FMA` the multiply-add is fused
// (`addProduct`), which is only fast when the build targets a CPU with FMA (`-target-cpu native`):
// without that flag each lane would become a call to `fmaf`. Without `-DGLAM_FMA` the kernel uses
// `acc + a * b`, which Swift never fuses, so it gives the same bits on every CPU level.

/// One multiply-accumulate step `acc += a * b`, fused under `-DGLAM_FMA`.
@inline(__always)
func multiplyAdd(_ acc: inout SIMD16<Float>, _ a: Float, _ b: SIMD16<Float>) {
    #if GLAM_FMA
        acc.addProduct(SIMD16(repeating: a), b)
    #else
        acc = acc + SIMD16(repeating: a) * b
    #endif
}

/// Computes the 6 × 16 tile `T = Ã · B̃` over `kc` steps and writes it to `c` (row stride `ldc`),
/// adding it to what is there when `accumulate` is true.
///
/// - `packedA`: `kc` groups of 6 floats (`Ã[p][r]`, column `p` of six rows of A).
/// - `packedB`: `kc` groups of 16 floats (`B̃[p][j]`, row `p` of sixteen columns of B), 64-byte aligned.
/// - `rows`, `columns`: how much of the tile is inside C (edge tiles are partial).
@inline(__always)
func microKernel6x16(
    depth kc: Int,
    packedA: UnsafePointer<Float>, packedB: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    rows: Int, columns: Int, accumulate: Bool
) {
    var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>()
    var c3 = SIMD16<Float>(), c4 = SIMD16<Float>(), c5 = SIMD16<Float>()
    var a = packedA
    let rawB = UnsafeRawPointer(packedB)
    for p in 0..<kc {
        let b = rawB.load(fromByteOffset: p &* 64, as: SIMD16<Float>.self)
        multiplyAdd(&c0, a[0], b)
        multiplyAdd(&c1, a[1], b)
        multiplyAdd(&c2, a[2], b)
        multiplyAdd(&c3, a[3], b)
        multiplyAdd(&c4, a[4], b)
        multiplyAdd(&c5, a[5], b)
        a += 6
    }
    if rows == 6 && columns == 16 {
        let raw = UnsafeMutableRawPointer(c)
        let stride = ldc &* 4
        if accumulate {
            c0 += raw.loadUnaligned(fromByteOffset: 0, as: SIMD16<Float>.self)
            c1 += raw.loadUnaligned(fromByteOffset: stride, as: SIMD16<Float>.self)
            c2 += raw.loadUnaligned(fromByteOffset: 2 &* stride, as: SIMD16<Float>.self)
            c3 += raw.loadUnaligned(fromByteOffset: 3 &* stride, as: SIMD16<Float>.self)
            c4 += raw.loadUnaligned(fromByteOffset: 4 &* stride, as: SIMD16<Float>.self)
            c5 += raw.loadUnaligned(fromByteOffset: 5 &* stride, as: SIMD16<Float>.self)
        }
        raw.storeBytes(of: c0, toByteOffset: 0, as: SIMD16<Float>.self)
        raw.storeBytes(of: c1, toByteOffset: stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c2, toByteOffset: 2 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c3, toByteOffset: 3 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c4, toByteOffset: 4 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c5, toByteOffset: 5 &* stride, as: SIMD16<Float>.self)
        return
    }
    // Edge tile: write only the part inside C.
    withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 6) { tile in
        tile[0] = c0; tile[1] = c1; tile[2] = c2; tile[3] = c3; tile[4] = c4; tile[5] = c5
        for r in 0..<rows {
            let row = c + r &* ldc
            for j in 0..<columns {
                row[j] = accumulate ? row[j] + tile[r][j] : tile[r][j]
            }
        }
    }
}

extension GEMM {
    /// Whether this build fuses multiply-adds (built with `-DGLAM_FMA`); results differ in the
    /// last bits between the two, never between thread counts.
    package static var isFused: Bool {
        #if GLAM_FMA
            true
        #else
            false
        #endif
    }
}
