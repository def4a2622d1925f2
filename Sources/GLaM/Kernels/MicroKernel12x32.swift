// The AVX-512 register tile: a 12 × 32 block of C in 24 sixteen-lane accumulators, the shape
// BLIS and OpenBLAS use on SkylakeX (their 32 × 12, transposed). Each step of k loads two 16-float
// vectors of B̃, broadcasts twelve values of Ã and issues 24 fused multiply-adds: enough
// independent accumulators to keep two FMA ports busy through the instruction's latency, which
// six cannot (MicroKernel.swift). With 8-lane registers (AVX2) the 24 accumulators would need 48
// registers and spill, so GEMMTile chooses between the two at run time.
//
// Every element of C is the same chain of multiply-adds over p as in the 6 × 16 kernel, in the
// same order, so the two kernels give identical bits (Tests/GLaMTests/GEMMTests.swift).
//
// It also reads ahead: every fourth step loads one cache line of the B̃ block that comes after
// its own, an eighth of that block per call, so that the first row panel to use the next block
// finds it in cache instead of waiting on L3 (n = 2048, one thread, alternated in one process:
// +8%; n = 1024: +3%). OpenBLAS' kernels do this with prefetch instructions, which Swift lacks.

/// Computes the 12 × 32 tile `T = Ã · B̃` over `kc` steps and writes it to `c` (row stride `ldc`),
/// adding it to what is there when `accumulate` is true.
///
/// - `packedA`: `kc` groups of 12 floats (`Ã[p][r]`, column `p` of twelve rows of A).
/// - `packedB`: `kc` groups of 32 floats (`B̃[p][j]`, row `p` of 32 columns of B), 64-byte aligned.
/// - `rows`, `columns`: how much of the tile is inside C (edge tiles are partial).
/// - `ahead`: memory a later call will read, `kc · 16` bytes of it (`kc / 4` cache lines). Every
///   fourth step loads four bytes of its next line, so that the line is in cache by then: Swift
///   has no prefetch instruction, and these loads stand in for one. Their values go into the
///   returned checksum only, so that the compiler keeps them; the result never depends on them.
///
/// Returns the checksum of the loads from `ahead`, for the caller to keep (see `GEMM.macroKernel`).
@inline(__always)
func microKernel12x32(
    depth kc: Int,
    packedA: UnsafePointer<Float>, packedB: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, ldc: Int,
    rows: Int, columns: Int, accumulate: Bool, ahead: UnsafeRawPointer
) -> Int32 {
    var checksum: Int32 = 0
    var c0l = SIMD16<Float>(), c0h = SIMD16<Float>()
    var c1l = SIMD16<Float>(), c1h = SIMD16<Float>()
    var c2l = SIMD16<Float>(), c2h = SIMD16<Float>()
    var c3l = SIMD16<Float>(), c3h = SIMD16<Float>()
    var c4l = SIMD16<Float>(), c4h = SIMD16<Float>()
    var c5l = SIMD16<Float>(), c5h = SIMD16<Float>()
    var c6l = SIMD16<Float>(), c6h = SIMD16<Float>()
    var c7l = SIMD16<Float>(), c7h = SIMD16<Float>()
    var c8l = SIMD16<Float>(), c8h = SIMD16<Float>()
    var c9l = SIMD16<Float>(), c9h = SIMD16<Float>()
    var c10l = SIMD16<Float>(), c10h = SIMD16<Float>()
    var c11l = SIMD16<Float>(), c11h = SIMD16<Float>()
    var a = packedA
    let rawB = UnsafeRawPointer(packedB)
    for p in 0..<kc {
        let bl = rawB.load(fromByteOffset: p &* 128, as: SIMD16<Float>.self)
        let bh = rawB.load(fromByteOffset: p &* 128 &+ 64, as: SIMD16<Float>.self)
        multiplyAdd(&c0l, a[0], bl); multiplyAdd(&c0h, a[0], bh)
        multiplyAdd(&c1l, a[1], bl); multiplyAdd(&c1h, a[1], bh)
        multiplyAdd(&c2l, a[2], bl); multiplyAdd(&c2h, a[2], bh)
        multiplyAdd(&c3l, a[3], bl); multiplyAdd(&c3h, a[3], bh)
        multiplyAdd(&c4l, a[4], bl); multiplyAdd(&c4h, a[4], bh)
        multiplyAdd(&c5l, a[5], bl); multiplyAdd(&c5h, a[5], bh)
        multiplyAdd(&c6l, a[6], bl); multiplyAdd(&c6h, a[6], bh)
        multiplyAdd(&c7l, a[7], bl); multiplyAdd(&c7h, a[7], bh)
        multiplyAdd(&c8l, a[8], bl); multiplyAdd(&c8h, a[8], bh)
        multiplyAdd(&c9l, a[9], bl); multiplyAdd(&c9h, a[9], bh)
        multiplyAdd(&c10l, a[10], bl); multiplyAdd(&c10h, a[10], bh)
        multiplyAdd(&c11l, a[11], bl); multiplyAdd(&c11h, a[11], bh)
        checksum &+= ahead.load(fromByteOffset: (p &>> 2) &* 64, as: Int32.self)
        a += 12
    }
    let raw = UnsafeMutableRawPointer(c)
    let stride = ldc &* 4
    if rows == 12 && columns == 32 {
        if accumulate {
            c0l += raw.loadUnaligned(fromByteOffset: 0 &* stride, as: SIMD16<Float>.self)
            c0h += raw.loadUnaligned(fromByteOffset: 0 &* stride &+ 64, as: SIMD16<Float>.self)
            c1l += raw.loadUnaligned(fromByteOffset: 1 &* stride, as: SIMD16<Float>.self)
            c1h += raw.loadUnaligned(fromByteOffset: 1 &* stride &+ 64, as: SIMD16<Float>.self)
            c2l += raw.loadUnaligned(fromByteOffset: 2 &* stride, as: SIMD16<Float>.self)
            c2h += raw.loadUnaligned(fromByteOffset: 2 &* stride &+ 64, as: SIMD16<Float>.self)
            c3l += raw.loadUnaligned(fromByteOffset: 3 &* stride, as: SIMD16<Float>.self)
            c3h += raw.loadUnaligned(fromByteOffset: 3 &* stride &+ 64, as: SIMD16<Float>.self)
            c4l += raw.loadUnaligned(fromByteOffset: 4 &* stride, as: SIMD16<Float>.self)
            c4h += raw.loadUnaligned(fromByteOffset: 4 &* stride &+ 64, as: SIMD16<Float>.self)
            c5l += raw.loadUnaligned(fromByteOffset: 5 &* stride, as: SIMD16<Float>.self)
            c5h += raw.loadUnaligned(fromByteOffset: 5 &* stride &+ 64, as: SIMD16<Float>.self)
            c6l += raw.loadUnaligned(fromByteOffset: 6 &* stride, as: SIMD16<Float>.self)
            c6h += raw.loadUnaligned(fromByteOffset: 6 &* stride &+ 64, as: SIMD16<Float>.self)
            c7l += raw.loadUnaligned(fromByteOffset: 7 &* stride, as: SIMD16<Float>.self)
            c7h += raw.loadUnaligned(fromByteOffset: 7 &* stride &+ 64, as: SIMD16<Float>.self)
            c8l += raw.loadUnaligned(fromByteOffset: 8 &* stride, as: SIMD16<Float>.self)
            c8h += raw.loadUnaligned(fromByteOffset: 8 &* stride &+ 64, as: SIMD16<Float>.self)
            c9l += raw.loadUnaligned(fromByteOffset: 9 &* stride, as: SIMD16<Float>.self)
            c9h += raw.loadUnaligned(fromByteOffset: 9 &* stride &+ 64, as: SIMD16<Float>.self)
            c10l += raw.loadUnaligned(fromByteOffset: 10 &* stride, as: SIMD16<Float>.self)
            c10h += raw.loadUnaligned(fromByteOffset: 10 &* stride &+ 64, as: SIMD16<Float>.self)
            c11l += raw.loadUnaligned(fromByteOffset: 11 &* stride, as: SIMD16<Float>.self)
            c11h += raw.loadUnaligned(fromByteOffset: 11 &* stride &+ 64, as: SIMD16<Float>.self)
        }
        raw.storeBytes(of: c0l, toByteOffset: 0 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c0h, toByteOffset: 0 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c1l, toByteOffset: 1 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c1h, toByteOffset: 1 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c2l, toByteOffset: 2 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c2h, toByteOffset: 2 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c3l, toByteOffset: 3 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c3h, toByteOffset: 3 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c4l, toByteOffset: 4 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c4h, toByteOffset: 4 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c5l, toByteOffset: 5 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c5h, toByteOffset: 5 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c6l, toByteOffset: 6 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c6h, toByteOffset: 6 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c7l, toByteOffset: 7 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c7h, toByteOffset: 7 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c8l, toByteOffset: 8 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c8h, toByteOffset: 8 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c9l, toByteOffset: 9 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c9h, toByteOffset: 9 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c10l, toByteOffset: 10 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c10h, toByteOffset: 10 &* stride &+ 64, as: SIMD16<Float>.self)
        raw.storeBytes(of: c11l, toByteOffset: 11 &* stride, as: SIMD16<Float>.self)
        raw.storeBytes(of: c11h, toByteOffset: 11 &* stride &+ 64, as: SIMD16<Float>.self)
        return checksum
    }
    // Edge tile: write only the part inside C.
    withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 24) { tile in
        tile[0] = c0l; tile[1] = c0h
        tile[2] = c1l; tile[3] = c1h
        tile[4] = c2l; tile[5] = c2h
        tile[6] = c3l; tile[7] = c3h
        tile[8] = c4l; tile[9] = c4h
        tile[10] = c5l; tile[11] = c5h
        tile[12] = c6l; tile[13] = c6h
        tile[14] = c7l; tile[15] = c7h
        tile[16] = c8l; tile[17] = c8h
        tile[18] = c9l; tile[19] = c9h
        tile[20] = c10l; tile[21] = c10h
        tile[22] = c11l; tile[23] = c11h
        for r in 0..<rows {
            let row = c + r &* ldc
            for j in 0..<columns {
                let value = tile[2 &* r &+ j / 16][j % 16]
                row[j] = accumulate ? row[j] + value : value
            }
        }
    }
    return checksum
}
