// Which register tile the GEMM uses on this CPU, decided once per process at run time.
//
// The right tile depends on the vector width of the CPU the program runs on: a 6 × 16 tile is
// twelve 8-lane accumulators on AVX2 (of 16 registers) but only six 16-lane ones on AVX-512, too
// few to cover the latency of two FMA ports; a 12 × 32 tile is 24 accumulators on AVX-512 (of 32
// registers) but would spill on AVX2. Swift has no per-function target attribute, and one binary
// may meet either CPU, so the choice is measured rather than guessed: each compiled tile multiplies
// the same cache-resident block a few times and the faster one wins. The tiles compute every
// element of C by the same sequence of operations, so the choice changes the speed, never the bits.

import Dispatch
import Foundation

/// The register tile of the GEMM micro-kernel: the `MR × NR` block of C that one kernel call keeps
/// in vector registers (BLIS' `MR` and `NR`).
///
/// Every tile gives bitwise identical results; they differ only in speed. `selected` is the one
/// this process uses; `GLAM_GEMM_TILE=6x16` or `12x32` in the environment overrides the timing.
package enum GEMMTile: String, CaseIterable, Sendable {
    /// 6 × 16: one 16-float vector per row; twelve AVX2 or six AVX-512 accumulators.
    case rows6Columns16 = "6x16"
    /// 12 × 32: two 16-float vectors per row; 24 AVX-512 accumulators (SkylakeX's BLIS shape).
    case rows12Columns32 = "12x32"

    /// Rows of C per kernel call (`MR`).
    package var rows: Int {
        switch self {
        case .rows6Columns16: 6
        case .rows12Columns32: 12
        }
    }

    /// Columns of C per kernel call (`NR`), a multiple of 16.
    package var columns: Int {
        switch self {
        case .rows6Columns16: 16
        case .rows12Columns32: 32
        }
    }

    /// The tile this process uses: the environment's `GLAM_GEMM_TILE` if set to a tile's name,
    /// otherwise the fastest by `timeKernels()`, measured on first use.
    package static let selected: GEMMTile = {
        if let name = ProcessInfo.processInfo.environment["GLAM_GEMM_TILE"], let tile = GEMMTile(rawValue: name) {
            return tile
        }
        let timings = timeKernels()
        return timings.min { $0.seconds < $1.seconds }!.tile
    }()

    /// How `selected` was decided: "environment" or "timed".
    package static var selectionReason: String {
        if let name = ProcessInfo.processInfo.environment["GLAM_GEMM_TILE"], GEMMTile(rawValue: name) != nil { return "GLAM_GEMM_TILE" }
        return "timed"
    }

    /// The width of the block `timeKernels` multiplies (a multiple of every tile's `NR`).
    package static let timedColumns = 128

    /// Times every tile's micro-kernel on one cache-resident `MC × NC × KC` block (96 × 128 × 256,
    /// 6.3 MFLOP), one thread, best of `rounds` after a warm-up, alternating so that a noisy
    /// neighbour hurts each alike. A few milliseconds in all.
    package static func timeKernels(rounds: Int = 15) -> [(tile: GEMMTile, seconds: Double)] {
        let m = GEMM.rowBlock, n = timedColumns, k = GEMM.depthBlock
        var generator = SeededGenerator(seed: 12_032)
        let a = (0..<(m * k)).map { _ in generator.nextUniform() - 0.5 }
        let b = (0..<(k * n)).map { _ in generator.nextUniform() - 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        // The kernels read the block through raw pointers: the operands must be whole.
        precondition(a.count == m * k && b.count == k * n, "timeKernels: operands of \(a.count) and \(b.count) for a \(m)×\(n)×\(k) block")
        var best = [Double](repeating: .infinity, count: allCases.count)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    for round in 0...rounds {
                        for (index, tile) in allCases.enumerated() {
                            let start = DispatchTime.now().uptimeNanoseconds
                            GEMM.multiply(
                                m: m, n: n, k: k,
                                a: MatrixOperand(rowMajor: pa.baseAddress!, rows: m, columns: k),
                                b: MatrixOperand(rowMajor: pb.baseAddress!, rows: k, columns: n),
                                c: pc.baseAddress!, ldc: n, threads: 1, tile: tile)
                            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                            if round > 0 { best[index] = min(best[index], seconds) }
                        }
                    }
                }
            }
        }
        return zip(allCases, best).map { ($0, $1) }
    }
}
