// The vectorised tanh against libm.

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
}
