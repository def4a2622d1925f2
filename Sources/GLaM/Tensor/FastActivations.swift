// tanh and GELU on whole Float tensors through the vectorised kernels of Kernels/FastMath.swift,
// sixteen lanes at a time over the worker pool (libm for other scalar types).

/// The constants of GELU's tanh approximation, `gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`
/// (praxis `GELU(approximate=True)`), defined once for the forward pass and its derivative.
enum GELUConstants {
    /// √(2/π).
    static let sqrtTwoOverPi = 0.7978845608028654
    /// The cubic coefficient 0.044715.
    static let cubic = 0.044715
}

extension Tensor {
    /// tanh elementwise: vectorised for Float (FastMath, error ≤ 3e-7), libm for Double.
    func fastTanh() -> Tensor {
        guard Scalar.self == Float.self else { return map { Scalar.tanh($0) } }
        return scalars.withUnsafeBufferPointer { px in
            let x = UncheckedSendable(UnsafeRawPointer(px.baseAddress))
            return Tensor(shape: shape, generating: scalarCount) { range, out in
                // Each lane is computed alone, so how the ranges split the vectors changes nothing.
                FastMath.tanh(
                    x.value!.assumingMemoryBound(to: Float.self) + range.lowerBound,
                    UnsafeMutableRawPointer(out + range.lowerBound).assumingMemoryBound(to: Float.self),
                    count: range.count)
            }
        }
    }

    /// GELU (tanh approximation) and its `t = tanh(√(2/π)(x + 0.044715x³))` in one pass: for Float
    /// sixteen lanes at a time, the same operations per element as `gelu()` written as three
    /// passes (`u`, `fastTanh`, `½x(1 + t)`), so the same bits; other scalar types take those passes.
    func geluAndTanh() -> (gelu: Tensor, tanh: Tensor) {
        let c = Scalar(GELUConstants.sqrtTwoOverPi), a = Scalar(GELUConstants.cubic), half = Scalar(0.5)
        guard Scalar.self == Float.self, scalarCount > 0 else {
            let t = map { x in c * (x + a * x * x * x) }.fastTanh()
            return (Tensor.zip(self, t) { x, t in half * x * (1 + t) }, t)
        }
        let (cf, af) = (Float(GELUConstants.sqrtTwoOverPi), Float(GELUConstants.cubic))
        var gelu: Tensor?
        let tanhValues = scalars.withUnsafeBufferPointer { px in
            [Scalar](unsafeUninitializedCapacity: scalarCount) { tanhBuffer, initialized in
                let x = SendablePointer(UnsafeRawPointer(px.baseAddress!).assumingMemoryBound(to: Float.self))
                let tOut = SendableMutablePointer(UnsafeMutableRawPointer(tanhBuffer.baseAddress!).assumingMemoryBound(to: Float.self))
                gelu = Tensor(shape: shape, generating: scalarCount) { range, out in
                    let yOut = UnsafeMutableRawPointer(out).assumingMemoryBound(to: Float.self)
                    var i = range.lowerBound
                    while i < range.upperBound {
                        let lanes = Swift.min(16, range.upperBound - i)
                        let v =
                            lanes == 16
                            ? UnsafeRawPointer(x.base + i).loadUnaligned(as: SIMD16<Float>.self)
                            : FastMath.partialVector(x.base + i, count: lanes)
                        let u = cf * (v + af * v * v * v)
                        let t = FastMath.tanh(u)
                        let g = Float(0.5) * v * (1 + t)
                        if lanes == 16 {
                            UnsafeMutableRawPointer(tOut.base + i).storeBytes(of: t, as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(yOut + i).storeBytes(of: g, as: SIMD16<Float>.self)
                        } else {
                            for lane in 0..<lanes { (tOut.base[i + lane], yOut[i + lane]) = (t[lane], g[lane]) }
                        }
                        i += lanes
                    }
                }
                initialized = scalarCount
            }
        }
        return (gelu!, Tensor(shape: shape, scalars: tanhValues))
    }
}
