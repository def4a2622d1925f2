// Seeded, reproducible randomness. Two generators:
//
// - `SeededGenerator`: a sequential SplitMix64 stream (Steele, Lea & Flood 2014) for parameter
//   initialisation and data shuffling, where values are drawn in a fixed order on one thread.
// - `CounterRandom`: a counter-based generator: the value for (seed, stream, index) is a pure hash
//   of those three numbers, so a value depends on *what* it is for (a token position, an expert),
//   never on which thread draws it or in what order. Used for anything drawn in parallel.
//
// Neither is cryptographic. Both are defined here bit for bit, so results are reproducible on
// every platform and Swift version (the standard library's generators are not).

import Foundation

/// A seeded SplitMix64 pseudo-random number generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose stream is fully determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return CounterRandom.mix(state)
    }

    /// A uniform `Float` in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// A standard normal `Float` (Box–Muller on two uniforms, computed in Double).
    public mutating func nextNormal() -> Float {
        let u1 = Self.openUnitInterval(next())  // (0, 1]: log(u1) is finite
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// The top 53 bits of `bits` as a Double in (0, 1]: `(n + 1)·2⁻⁵³`, never 0.
    static func openUnitInterval(_ bits: UInt64) -> Double { (Double(bits >> 11) + 1) * 0x1p-53 }
}

/// Stateless, counter-based random numbers: a pure function of (seed, stream, index).
package enum CounterRandom {
    /// The SplitMix64 finaliser: a bijective 64-bit mixing function.
    @inlinable
    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 64 random bits for `(seed, stream, index)`.
    @inlinable
    package static func bits(seed: UInt64, stream: UInt64, index: UInt64) -> UInt64 {
        mix(mix(mix(seed &+ 0x9E37_79B9_7F4A_7C15) ^ stream &* 0xD6E8_FEB8_6659_FD93) ^ index &* 0x9E37_79B9_7F4A_7C15)
    }

    /// A uniform `Float` in [0, 1) for `(seed, stream, index)`.
    @inlinable
    package static func uniform(seed: UInt64, stream: UInt64, index: UInt64) -> Float {
        Float(bits(seed: seed, stream: stream, index: index) >> 40) * 0x1p-24
    }
}

@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
