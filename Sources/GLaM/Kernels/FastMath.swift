// Vectorised tanh and e^x for Float. tanh is used by GELU (the hottest elementwise function of
// training: one tanh per hidden unit, forward). libm's `tanhf` is a scalar call of ~20 ns; this
// runs 16 lanes.
//
//   |x| < 0.4:   the Taylor series x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 − 1382x¹¹/155925
//                + 21844x¹³/6081075 (next term < 2e-9 there);
//   otherwise:   sign(x)·(1 − 2/(e^{2|x|} + 1)), with e^y = 2ⁿ·e^r, n = round(y/ln 2),
//                r = y − n·ln 2 (|r| ≤ ln 2 / 2) and e^r by its Taylor series to r⁷ (error < 3e-8);
//                |x| is clamped at 9, where tanh is 1 in float.
// Measured against libm over [−12, 12]: see Tests/GLaMTests/FastMathTests.swift (error ≤ 3e-7).
//
// The same e^y serves the softmaxes (attention's, the output's log-sum-exp and its gradient):
// there every argument is a logit minus its row's maximum, so ≤ 0, and e^x is 0 below −87.34,
// where it would leave the normal floats. Within 2 ulps of libm's e^x (FastMathTests), sixteen
// lanes at a time instead of one `expf` call per logit.

enum FastMath {
    /// tanh of 16 lanes.
    @inline(__always)
    static func tanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let magnitude = x.replacing(with: -x, where: x .< 0)
        // Small |x|: odd polynomial in x².
        let x2 = x * x
        var series = SIMD16<Float>(repeating: 21844.0 / 6081075.0)
        series = series * x2 - 1382.0 / 155925.0
        series = series * x2 + 62.0 / 2835.0
        series = series * x2 - 17.0 / 315.0
        series = series * x2 + 2.0 / 15.0
        series = series * x2 - 1.0 / 3.0
        series = series * x2 + 1
        let small = x * series
        // Large |x|: 1 − 2/(e^{2|x|} + 1).
        let y = 2 * magnitude.replacing(with: 9, where: magnitude .> 9)
        let scaled = exponential(y)
        var large = 1 - 2 / (scaled + 1)
        large = large.replacing(with: -large, where: x .< 0)
        return large.replacing(with: small, where: magnitude .< 0.4)
    }

    /// e^y of 16 lanes for y in [−87.3, 88.3] (unchecked; callers clamp): e^y = 2ⁿ·e^r with
    /// n = round(y / ln 2) and r = y − n·ln 2 (|r| ≤ ln 2 / 2), e^r by its Taylor series to r⁷.
    @inline(__always)
    static func exponential(_ y: SIMD16<Float>) -> SIMD16<Float> {
        // n = round(y / ln 2) by the 1.5·2²³ trick: adding it leaves n in the low mantissa bits.
        let shifter = SIMD16<Float>(repeating: 12_582_912)
        let biased = y * 1.4426950408889634 + shifter
        let n = biased - shifter
        let r = (y - n * 0.693145751953125) - n * 1.428606765330187e-06  // ln 2 split hi/lo (Cody–Waite)
        var e = SIMD16<Float>(repeating: 1.0 / 5040.0)
        e = e * r + 1.0 / 720.0
        e = e * r + 1.0 / 120.0
        e = e * r + 1.0 / 24.0
        e = e * r + 1.0 / 6.0
        e = e * r + 0.5
        e = e * r + 1
        e = e * r + 1
        let integer = unsafeBitCast(biased, to: SIMD16<Int32>.self) &- 0x4B40_0000  // n as an integer
        let exponent = (integer &+ 127) &<< 23  // 2ⁿ as float bits
        return e * unsafeBitCast(exponent, to: SIMD16<Float>.self)
    }

    /// The smallest argument whose e^x is a normal float (e^x ≈ 1.18e-38); below it
    /// `exponential(ofNonPositive:)` returns 0.
    static let smallestExponent: Float = -87.33654

    /// e^x of 16 lanes with x ≤ 0 (a softmax's logits minus their maximum): `exponential(_:)`,
    /// and 0 where e^x would not be a normal float (x < −87.34, −∞ included; libm would give a
    /// subnormal below 1.2e-38 or 0). NaN stays NaN. Positive lanes are outside its contract.
    @inline(__always)
    static func exponential(ofNonPositive x: SIMD16<Float>) -> SIMD16<Float> {
        let tiny = x .< smallestExponent
        return exponential(x.replacing(with: 0, where: tiny)).replacing(with: 0, where: tiny)
    }

    /// `y[j] = e^(x[j] − shift)` for `j < count`, where every `x[j] − shift ≤ 0` (y may be x):
    /// sixteen lanes at a time by `exponential(ofNonPositive:)`, each lane alone.
    static func exponentials(_ x: UnsafePointer<Float>, minus shift: Float, into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - shift
            UnsafeMutableRawPointer(y + i).storeBytes(of: exponential(ofNonPositive: v), as: SIMD16<Float>.self)
            i += 16
        }
        if i < count {
            let e = exponential(ofNonPositive: partialVector(x + i, count: count - i) - shift)  // lanes past count unused
            for j in 0..<(count - i) { y[i + j] = e[j] }
        }
    }

    /// The sum of 16 lanes in a fixed order: the high half added to the low half, four times.
    @inline(__always)
    static func pairwiseSum(_ v: SIMD16<Float>) -> Float {
        let v8 = v.lowHalf + v.highHalf
        let v4 = v8.lowHalf + v8.highHalf
        let v2 = v4.lowHalf + v4.highHalf
        return v2[0] + v2[1]
    }

    /// The `count` (at most 16) floats at `x` in the first lanes, zeros in the rest: the tail of a
    /// loop that runs sixteen lanes at a time.
    @inline(__always)
    static func partialVector(_ x: UnsafePointer<Float>, count: Int) -> SIMD16<Float> {
        var v = SIMD16<Float>(repeating: 0)
        for lane in 0..<count { v[lane] = x[lane] }
        return v
    }

    /// tanh of every element of `x` into `y` (`count` elements).
    static func tanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: tanh(v), as: SIMD16<Float>.self)
            i += 16
        }
        if i < count {
            let t = tanh(partialVector(x + i, count: count - i))
            for j in 0..<(count - i) { y[i + j] = t[j] }
        }
    }
}
