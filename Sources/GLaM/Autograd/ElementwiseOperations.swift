// Differentiable elementwise operations on `Variable`: arithmetic with broadcasting and the
// pointwise functions. Each states its derivative; broadcast operands get their gradient summed
// back to their own shape (`unbroadcasted(to:)`).

extension Variable {
    /// `a + b` with broadcasting; ∂/∂a = ∂/∂b = 1.
    @_specialize(where Scalar == Float)
    public static func + (a: Variable, b: Variable) -> Variable {
        let (needA, needB, shapeA, shapeB) = (a.isRecorded, b.isRecorded, a.shape, b.shape)
        return record(a.value + b.value, inputs: [a, b]) { g in
            [needA ? g.unbroadcasted(to: shapeA) : nil, needB ? g.unbroadcasted(to: shapeB) : nil]
        }
    }

    /// `a − b` with broadcasting; ∂/∂a = 1, ∂/∂b = −1.
    @_specialize(where Scalar == Float)
    public static func - (a: Variable, b: Variable) -> Variable {
        let (needA, needB, shapeA, shapeB) = (a.isRecorded, b.isRecorded, a.shape, b.shape)
        return record(a.value - b.value, inputs: [a, b]) { g in
            [needA ? g.unbroadcasted(to: shapeA) : nil, needB ? (-g).unbroadcasted(to: shapeB) : nil]
        }
    }

    /// `a ⊙ b` with broadcasting; ∂/∂a = b, ∂/∂b = a.
    @_specialize(where Scalar == Float)
    public static func * (a: Variable, b: Variable) -> Variable {
        let (needA, needB, valueA, valueB) = (a.isRecorded, b.isRecorded, a.value, b.value)
        return record(valueA * valueB, inputs: [a, b]) { g in
            [
                needA ? (g * valueB).unbroadcasted(to: valueA.shape) : nil,
                needB ? (g * valueA).unbroadcasted(to: valueB.shape) : nil,
            ]
        }
    }

    /// `a / b` with broadcasting; ∂/∂a = 1/b, ∂/∂b = −a/b².
    @_specialize(where Scalar == Float)
    public static func / (a: Variable, b: Variable) -> Variable {
        let (needA, needB, valueA, valueB) = (a.isRecorded, b.isRecorded, a.value, b.value)
        return record(valueA / valueB, inputs: [a, b]) { g in
            [
                needA ? (g / valueB).unbroadcasted(to: valueA.shape) : nil,
                needB ? (-(g * valueA) / (valueB * valueB)).unbroadcasted(to: valueB.shape) : nil,
            ]
        }
    }

    /// `a · s` for a constant scalar `s`.
    @_specialize(where Scalar == Float)
    public static func * (a: Variable, s: Scalar) -> Variable {
        record(a.value * s, inputs: [a]) { g in [g * s] }
    }

    /// `s · a` for a constant scalar `s`.
    @_specialize(where Scalar == Float)
    public static func * (s: Scalar, a: Variable) -> Variable { a * s }

    /// `a + s` for a constant scalar `s`.
    @_specialize(where Scalar == Float)
    public static func + (a: Variable, s: Scalar) -> Variable {
        record(a.value + s, inputs: [a]) { g in [g] }
    }

    /// `−a`.
    @_specialize(where Scalar == Float)
    public static prefix func - (a: Variable) -> Variable {
        record(-a.value, inputs: [a]) { g in [-g] }
    }

    /// eˣ; derivative eˣ.
    @_specialize(where Scalar == Float)
    public func exp() -> Variable {
        let y = value.exp()
        return Variable.record(y, inputs: [self]) { g in [g * y] }
    }

    /// log x; derivative 1/x.
    @_specialize(where Scalar == Float)
    public func log() -> Variable {
        let x = value
        return Variable.record(x.log(), inputs: [self]) { g in [g / x] }
    }

    /// tanh x; derivative 1 − tanh²x.
    @_specialize(where Scalar == Float)
    public func tanh() -> Variable {
        let y = value.tanh()
        return Variable.record(y, inputs: [self]) { g in [Tensor.zip(g, y) { g, y in g * (1 - y * y) }] }
    }

    /// √x; derivative 1/(2√x).
    @_specialize(where Scalar == Float)
    public func squareRoot() -> Variable {
        let y = value.squareRoot()
        return Variable.record(y, inputs: [self]) { g in [Tensor.zip(g, y) { g, y in g / (2 * y) }] }
    }

    /// x²; derivative 2x.
    @_specialize(where Scalar == Float)
    public func squared() -> Variable {
        let x = value
        return Variable.record(x.squared(), inputs: [self]) { g in [Tensor.zip(g, x) { g, x in 2 * g * x }] }
    }

    /// ReLU max(x, 0); derivative 1 where x > 0, else 0.
    @_specialize(where Scalar == Float)
    public func relu() -> Variable {
        let x = value
        return Variable.record(x.relu(), inputs: [self]) { g in [Tensor.zip(g, x) { g, x in x > 0 ? g : 0 }] }
    }

    /// GELU (tanh approximation). With `u = √(2/π)(x + 0.044715x³)` and `t = tanh u`, the forward
    /// keeps t so the backward needs no second tanh:
    /// `d gelu/dx = ½(1 + t) + ½·x·(1 − t²)·√(2/π)(1 + 3·0.044715·x²)`.
    @_specialize(where Scalar == Float)
    public func gelu() -> Variable {
        let x = value
        let c = Scalar(GELUConstants.sqrtTwoOverPi), a = Scalar(GELUConstants.cubic), half = Scalar(0.5)
        let (y, t) = x.geluAndTanh()  // ½x(1 + t), t = tanh u, in one pass
        return Variable.record(y, inputs: [self]) { g in
            // One pass over x, t and g.
            let d = x.scalars.withUnsafeBufferPointer { px in
                t.scalars.withUnsafeBufferPointer { pt in
                    g.scalars.withUnsafeBufferPointer { pg in
                        let (xs, ts, gs) = (UncheckedSendable(px), UncheckedSendable(pt), UncheckedSendable(pg))
                        return Tensor(shape: x.shape, generating: x.scalarCount) { range, out in
                            for i in range {
                                let (xi, ti) = (xs.value[i], ts.value[i])
                                let inner: Scalar = c * (1 + 3 * a * xi * xi)
                                out[i] = gs.value[i] * (half * (1 + ti) + half * xi * (1 - ti * ti) * inner)
                            }
                        }
                    }
                }
            }
            return [d]
        }
    }
}
