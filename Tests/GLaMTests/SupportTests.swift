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
}
