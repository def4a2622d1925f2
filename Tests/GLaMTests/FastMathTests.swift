// The vectorised tanh and exponential against libm, and the softmax, log-softmax and
// log-sum-exp built on the exponential against the same maths in Double.

import Foundation
import Testing

@testable import GLaM

struct FastMathTests {
    @Test("vectorised tanh is within 3e-7 of libm over [−12, 12], odd, and saturates")
    func tanhAccuracy() {
        let xs = (0...240_001).map { Float(-12 + 24 * Double($0) / 240_001) } + [0, -0.0, 0.4, -0.4, 0.3999999, 1e-30, 50, -50]
        let fast = Tensor<Float>(xs).fastTanh().scalars
        var worst: Double = 0
        for (x, y) in zip(xs, fast) {
            worst = max(worst, abs(Double(y) - Foundation.tanh(Double(x))))
        }
        #expect(worst <= 3e-7, "max error \(worst)")
        #expect(zip(xs, fast).allSatisfy { x, y in Tensor<Float>([-x]).fastTanh().scalars[0] == -y })
        #expect(Tensor<Float>([50, -50]).fastTanh().scalars.allSatisfy { abs(abs($0) - 1) <= 1e-7 })
    }

    @Test("vectorised e^x for x ≤ 0 is within 2 float ulps of libm's e^x in Double down to the smallest normal, 0 below it, NaN for NaN")
    func exponentialAccuracy() {
        let xs =
            (0...200_000).map { -88 * Float($0) / 200_000 } + [
                0, -0.0, -1e-30, -0.34657359, -87.3365, -87.33655, -88, -103, -1e30, -.infinity,
            ]
        var worstUlps: Float = 0
        Tensor<Float>(xs).scalars.withUnsafeBufferPointer { x in
            var y = [Float](repeating: -1, count: xs.count)
            y.withUnsafeMutableBufferPointer { FastMath.exponentials(x.baseAddress!, minus: 0, into: $0.baseAddress!, count: xs.count) }
            for (x, e) in zip(xs, y) {
                let exact = Foundation.exp(Double(x))
                if x < FastMath.smallestExponent {
                    #expect(e == 0, "e^\(x) = \(e)")
                } else {
                    worstUlps = max(worstUlps, Float(abs(Double(e) - exact)) / Float(exact).ulp)
                }
            }
        }
        #expect(worstUlps <= 2, "max error \(worstUlps) ulps")
        #expect(FastMath.exponential(ofNonPositive: SIMD16(repeating: .nan))[0].isNaN)
        // The tail (fewer than 16 values) gives the same bits as full vectors.
        let tail = Array(xs[0..<7])
        var fromTail = [Float](repeating: 0, count: 7)
        tail.withUnsafeBufferPointer { x in
            fromTail.withUnsafeMutableBufferPointer { FastMath.exponentials(x.baseAddress!, minus: 0, into: $0.baseAddress!, count: 7) }
        }
        #expect(fromTail == (0..<7).map { FastMath.exponential(ofNonPositive: SIMD16(repeating: tail[$0]))[0] })
    }

    @Test("softmax, log-softmax and log-sum-exp in Float agree with the same maths in Double, masked rows (−∞, −1e30) included")
    func softmaxFamilyAgainstDouble() {
        var generator = SeededGenerator(seed: 77)
        // Rows of 37 (two vectors and a tail) with a spread of 60, and a row with −∞ and −1e30 entries.
        var values = (0..<(5 * 37)).map { _ in 60 * (generator.nextUniform() - 0.5) }
        values[4 * 37 + 3] = -.infinity
        values[4 * 37 + 20] = -1e30
        let x = Tensor<Float>(shape: [5, 37], scalars: values)
        let xd = Tensor<Double>(shape: [5, 37], scalars: values.map(Double.init))
        func close(_ a: Tensor<Float>, _ b: Tensor<Double>, _ tolerance: Double) -> Bool {
            zip(a.scalars, b.scalars).allSatisfy { Double($0) == $1 || abs(Double($0) - $1) <= tolerance * max(1, abs($1)) }  // −∞ == −∞
        }
        #expect(close(x.softmax(), xd.softmax(), 1e-6))
        #expect(close(x.logSoftmax(), xd.logSoftmax(), 1e-6))
        #expect(close(x.logSumExp(), xd.logSumExp(), 1e-6))
        #expect(x.softmax().scalars[4 * 37 + 3] == 0 && x.softmax().scalars[4 * 37 + 20] == 0)
    }

    @Test("row maximum, sum and dot product: every count from 0 to 40 (vectors and tails) against plain loops; the maximum exact")
    func rowReductions() {
        var generator = SeededGenerator(seed: 78)
        for count in 0...40 {
            let x = (0..<count).map { _ in generator.nextUniform() - 0.5 }, y = (0..<count).map { _ in generator.nextUniform() - 0.5 }
            x.withUnsafeBufferPointer { px in
                y.withUnsafeBufferPointer { py in
                    let (a, b) = (px.baseAddress ?? UnsafePointer(bitPattern: 64)!, py.baseAddress ?? UnsafePointer(bitPattern: 64)!)
                    #expect(Tensor<Float>.rowMaximum(a, count: count, initial: -.infinity) == (x.max() ?? -.infinity), "count \(count)")
                    #expect(Tensor<Float>.rowMaximum(a, count: count, initial: 0.25) == max(0.25, x.max() ?? 0.25), "count \(count)")
                    let sum = x.reduce(0.0) { $0 + Double($1) }, dot = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                    #expect(abs(Double(Tensor<Float>.rowSum(a, count: count)) - sum) <= 1e-5, "count \(count)")
                    #expect(abs(Double(Tensor<Float>.rowDot(a, b, count: count)) - dot) <= 1e-5, "count \(count)")
                }
            }
        }
        // A NaN is passed over by the maximum, as Swift.max(peak, nan) keeps peak.
        let withNaN: [Float] = (0..<20).map { $0 == 3 || $0 == 18 ? .nan : Float($0) }
        #expect(withNaN.withUnsafeBufferPointer { Tensor<Float>.rowMaximum($0.baseAddress!, count: 20, initial: -.infinity) } == 19)
    }
}
