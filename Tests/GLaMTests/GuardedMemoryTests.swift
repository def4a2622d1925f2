// The GEMM never touches memory outside its operands, whatever the layout, sizes, tile or thread
// count: each operand is placed against a page the process may not read or write (PROT_NONE), at
// its end and, in a second run, at its start, so that one element read or written past it stops
// the test with a fault. A read past a buffer that changes no result (a read-ahead, a packing loop
// one step too long) is still a bug; the AddressSanitizer run finds the same class in CI, this finds
// it in every run of the suite.

import Testing

@testable import GLaM

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `count` floats placed against an inaccessible page: their last element ends where the page
/// begins (`atEnd`), or their first starts where it ends.
final class GuardedFloats {
    let count: Int
    private let region: UnsafeMutableRawPointer
    private let regionSize: Int
    let pointer: UnsafeMutablePointer<Float>

    init(_ values: [Float], atEnd: Bool) {
        count = values.count
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let dataPages = (max(values.count, 1) * MemoryLayout<Float>.stride + page - 1) / page
        regionSize = (dataPages + 2) * page
        let mapped = mmap(nil, regionSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        precondition(mapped != MAP_FAILED && mapped != nil, "GuardedFloats: mmap failed")
        region = mapped!
        // One guard page before the data pages and one after them.
        precondition(mprotect(region, page, PROT_NONE) == 0 && mprotect(region + (dataPages + 1) * page, page, PROT_NONE) == 0)
        let bytes = values.count * MemoryLayout<Float>.stride
        let start = atEnd ? region + (dataPages + 1) * page - bytes : region + page
        pointer = start.bindMemory(to: Float.self, capacity: max(values.count, 1))
        for (i, value) in values.enumerated() { pointer[i] = value }
    }

    var values: [Float] { (0..<count).map { pointer[$0] } }

    deinit { munmap(region, regionSize) }
}

/// Serialized: the scratch-buffer tests below must not overlap (one lends every buffer fresh while
/// it runs, the other counts how rarely buffers are allocated).
@Suite(.serialized)
struct GuardedMemoryTests {
    @Test(
        "the GEMM reads and writes only its operands: every layout, edge sizes, both tiles, 1 and 2 threads, operands against guard pages",
        arguments: [false, true])
    func gemmStaysInsideItsOperands(atEnd: Bool) {
        var generator = SeededGenerator(seed: 41)
        // Sizes at and around the tiles (6, 12, 16, 32), the packing depth of a transposed B (16),
        // and the unpacked path for fewer than 4 rows.
        let shapes = [(1, 1, 1), (3, 17, 15), (5, 33, 31), (13, 16, 47), (7, 31, 257), (12, 32, 16), (2, 40, 33), (25, 7, 300)]
        for (m, n, k) in shapes {
            for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = (0..<(m * k)).map { _ in generator.nextUniform() - 0.5 }
                let b = (0..<(k * n)).map { _ in generator.nextUniform() - 0.5 }
                let expected = referenceMatmul(a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
                for tile in GEMMTile.allCases {
                    for threads in [1, 2] {
                        let ga = GuardedFloats(a, atEnd: atEnd), gb = GuardedFloats(b, atEnd: atEnd)
                        let gc = GuardedFloats([Float](repeating: .nan, count: m * n), atEnd: atEnd)
                        GEMM.multiply(
                            m: m, n: n, k: k,
                            a: MatrixOperand(
                                rowMajor: ga.pointer, rows: transposeA ? k : m, columns: transposeA ? m : k, transposed: transposeA),
                            b: MatrixOperand(
                                rowMajor: gb.pointer, rows: transposeB ? n : k, columns: transposeB ? k : n, transposed: transposeB),
                            c: gc.pointer, ldc: n, threads: threads, tile: tile)
                        let got = gc.values
                        let close = zip(got, expected).allSatisfy { abs($0 - $1) <= 1e-5 * (1 + abs($1)) * Float(k) }
                        #expect(close, "m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB) tile \(tile.rawValue) threads \(threads)")
                    }
                }
            }
        }
    }

    @Test("packing stays inside its scratch buffers: every tile and layout, sizes whose packed panels end exactly at a guard page")
    func packingStaysInsideScratchBuffers() {
        // Every scratch buffer is lent fresh against a guard page while this runs (other tests that
        // run meanwhile only get slower).
        ScratchBuffers.guardsPages.store(true, ordering: .relaxed)
        defer { ScratchBuffers.guardsPages.store(false, ordering: .relaxed) }
        var generator = SeededGenerator(seed: 43)
        // Depths that are multiples of 16 make each packed panel a whole number of 64-byte lines,
        // so a buffer's last element sits against the page. A's buffer holds a 96-row block: 91 to
        // 95 rows put a partial last row panel (of 6 or 12) at its very end; the others check the
        // partial edges elsewhere.
        let shapes = [
            (93, 20, 32), (95, 33, 16), (91, 17, 48), (5, 17, 16), (13, 33, 32), (25, 48, 48), (3, 20, 33), (30, 31, 272), (97, 129, 64),
        ]
        for (m, n, k) in shapes {
            for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = (0..<(m * k)).map { _ in generator.nextUniform() - 0.5 }
                let b = (0..<(k * n)).map { _ in generator.nextUniform() - 0.5 }
                let expected = referenceMatmul(a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB)
                for tile in GEMMTile.allCases {
                    for threads in [1, 2] {
                        let got = fastMatmul(
                            a, b, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, threads: threads, tile: tile)
                        #expect(maxError(got, expected) <= Float(k) * 2e-7 + 1e-6, "m \(m) n \(n) k \(k) tile \(tile.rawValue)")
                    }
                }
                // A batch with its own B per item (per-item packing) and a shared one.
                let batched = (0..<(3 * m * k)).map { _ in generator.nextUniform() - 0.5 }
                let perItem = (0..<(3 * k * n)).map { _ in generator.nextUniform() - 0.5 }
                let got = fastMatmul(batched, perItem, m: m, n: n, k: k, batch: 3, transposeA: transposeA, transposeB: transposeB)
                for item in 0..<3 {
                    let reference = referenceMatmul(
                        Array(batched[(item * m * k)..<((item + 1) * m * k)]), Array(perItem[(item * k * n)..<((item + 1) * k * n)]), m: m,
                        n: n, k: k, transposeA: transposeA, transposeB: transposeB)
                    #expect(maxError(Array(got[(item * m * n)..<((item + 1) * m * n)]), reference) <= Float(k) * 2e-7 + 1e-6)
                }
            }
        }
    }

    @Test("a returned scratch buffer is lent again: many uses one after another allocate only a few buffers")
    func scratchBuffersAreReused() {
        // An unusual size, so that the buffers other tests return rarely fit it... and if one
        // does, it is lent instead of a new one, which allocates even less.
        let count = 1_234_567
        ScratchBuffers.withBuffer(count: count) { $0[count - 1] = 1 }
        let before = ScratchBuffers.allocations.load(ordering: .relaxed)
        for _ in 0..<200 { ScratchBuffers.withBuffer(count: count) { $0[0] = 2 } }
        let made = ScratchBuffers.allocations.load(ordering: .relaxed) - before
        // Tests running beside this one allocate too; 200 uses without reuse would be 200.
        #expect(made < 100, "\(made) buffers allocated for 200 uses in turn")
        // ... and the count counts: two buffers held at once of a size hardly any idle buffer has
        // (160 MB each, far above what the suite's GEMMs pack into) take at least one allocation.
        let large = 40_000_003
        let beforeLarge = ScratchBuffers.allocations.load(ordering: .relaxed)
        ScratchBuffers.withBuffer(count: large) { outer in
            outer[large - 1] = 3
            ScratchBuffers.withBuffer(count: large) { $0[large - 1] = 4 }
        }
        #expect(ScratchBuffers.allocations.load(ordering: .relaxed) > beforeLarge)
    }

    @Test("every scratch buffer is idle in the pool, lent, or freed: buffers evicted past the pool's size are freed, not lost")
    func scratchBuffersAreFreed() {
        func unaccounted() -> Int {
            ScratchBuffers.allocations.load(ordering: .relaxed) - ScratchBuffers.frees.load(ordering: .relaxed) - ScratchBuffers.idleCount
        }
        // Twenty buffers held at once, then returned: the pool keeps eight, the rest are freed.
        func hold(_ depth: Int) {
            guard depth > 0 else { return }
            ScratchBuffers.withBuffer(count: 3_001 + depth) {
                $0[0] = 1; hold(depth - 1)
            }
        }
        let before = unaccounted()
        for _ in 0..<5 { hold(20) }
        // What is unaccounted for is only what other tests hold at this moment (a few buffers per
        // thread); five rounds that each lost twelve would be sixty.
        #expect(unaccounted() - before < 20, "\(unaccounted() - before) buffers neither idle nor freed")
        #expect(ScratchBuffers.idleCount <= 8)
    }
}
