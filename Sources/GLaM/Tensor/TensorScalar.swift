// The element types a `Tensor` may hold: `Float` for everything that runs, `Double` for the
// finite-difference gradient checks and reference computations that must be exact to ~1e-12.

import Foundation

/// A floating-point element type of `Tensor`: `Float` (the working precision) or `Double` (used by
/// gradient checks and references).
///
/// Supplies the elementary functions the tensor operations need, each the correctly rounded libm
/// function of that precision (`expf`/`exp`, …).
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar, Sendable, LosslessStringConvertible, Codable
where Self.RawSignificand: FixedWidthInteger {
    /// eˣ.
    static func exp(_ x: Self) -> Self
    /// The natural logarithm.
    static func log(_ x: Self) -> Self
    /// The hyperbolic tangent.
    static func tanh(_ x: Self) -> Self
}

extension Float: TensorScalar {
    /// eˣ (libm).
    @inlinable public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    /// The natural logarithm (libm).
    @inlinable public static func log(_ x: Float) -> Float { Foundation.log(x) }
    /// The hyperbolic tangent (libm).
    @inlinable public static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
}

extension Double: TensorScalar {
    /// eˣ (libm).
    @inlinable public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    /// The natural logarithm (libm).
    @inlinable public static func log(_ x: Double) -> Double { Foundation.log(x) }
    /// The hyperbolic tangent (libm).
    @inlinable public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
}
