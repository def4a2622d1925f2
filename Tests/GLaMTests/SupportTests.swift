// Support code that everything rests on: the CRC-32 of checkpoints and corpora, and the pool of
// scratch buffers the GEMM packs into.

import Foundation
import Testing

@testable import GLaM

struct SupportTests {
    @Test("CRC-32 equals zlib's crc32: the catalogue's check value of \"123456789\" and values from Python's zlib")
    func crc32MatchesZlib() {
        // Expected values: Python 3's zlib.crc32 (zlib's own implementation), and 0xCBF43926, the
        // published check value of CRC-32/ISO-HDLC.
        let cases: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xCBF4_3926), ([], 0), (Array("a".utf8), 0xE8B7_BE43),
            (Array("The quick brown fox jumps over the lazy dog".utf8), 0x414F_A339), (Array(0...255), 0x2905_8C73),
        ]
        for (bytes, expected) in cases {
            var crc = CRC32()
            crc.update(bytes)
            #expect(crc.value == expected, "\(bytes.prefix(9)): \(String(crc.value, radix: 16))")
            // Fed in two pieces, the same.
            var pieces = CRC32()
            pieces.update(Array(bytes.prefix(bytes.count / 3)))
            pieces.update(Array(bytes.dropFirst(bytes.count / 3)))
            #expect(pieces.value == expected)
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
}
