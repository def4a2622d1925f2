// Adafactor as GLaM trained with it (the "Training" article; lingvo `XLAShardingAdafactor` with
// `decay_exponent_pow=0.8`, praxis `sharded_adafactor`): no momentum (β1 = 0), factored second
// moments, update clipping, and steps scaled by the parameter's RMS. For weight W, gradient g and
// 0-based step t:
//
//   g2 = g² + ε1                               ε1 = 1e-30
//   ρ  = 1 − (t + 1)^−0.8                      ("β2 = 0.99" in the paper has no effect in the code)
//   factored (rank ≥ 2, last two dims ≥ minDimSizeToFactor; per leading index, so per expert):
//     vr = ρ·vr + (1 − ρ)·mean(g2, over columns)        [..., R]
//     vc = ρ·vc + (1 − ρ)·mean(g2, over rows)           [..., C]
//     u  = g / √(vr ⊗ vc / mean(vr))
//   otherwise:  v = ρ·v + (1 − ρ)·g2;  u = g / √v
//   u  = u / max(1, RMS(u) / d)                d = 1 (update clipping)
//   W  = W − lr_t · max(RMS(W), ε2) · u        ε2 = 1e-3 (multiply_by_parameter_scale)
//
// No weight decay and no global-norm clipping. The learning-rate schedule is in LearningRate.swift.

import Foundation

/// Adafactor's settings (the `adafactor_step` fixture config keys in parentheses).
public struct AdafactorConfiguration: Sendable, Equatable {
    /// The exponent of the decay schedule ρ_t = 1 − (t+1)^−p (`decay_pow`, 0.8).
    public var decayExponent: Double = 0.8
    /// d, the update-clipping threshold on RMS(u) (`clipping_threshold`, 1.0).
    public var clippingThreshold: Float = 1.0
    /// Scale steps by max(RMS(W), ε2) (`multiply_by_parameter_scale`, true).
    public var multiplyByParameterScale: Bool = true
    /// ε1, added to g² (`epsilon1`, 1e-30).
    public var epsilon1: Float = 1e-30
    /// ε2, the floor of the parameter scale (`epsilon2`, 1e-3).
    public var epsilon2: Float = 1e-3
    /// Factor second moments of matrices (`factored`, true).
    public var factored: Bool = true
    /// Factor only when both of the last two dimensions are at least this (`min_dim_size_to_factor`,
    /// 128 as lingvo).
    public var minDimSizeToFactor: Int = 128

    /// GLaM's settings.
    public init() {}

    /// Whether a weight of `shape` gets factored statistics.
    public func isFactored(_ shape: [Int]) -> Bool {
        factored && shape.count >= 2 && shape[shape.count - 1] >= minDimSizeToFactor && shape[shape.count - 2] >= minDimSizeToFactor
    }
}

/// The second-moment statistics of one weight.
public enum AdafactorSlot: Sendable, Equatable {
    /// Row statistics `vr` `[..., R]` and column statistics `vc` `[..., C]`.
    case factored(vr: Tensor<Float>, vc: Tensor<Float>)
    /// The full statistic `v`, shaped like the weight.
    case full(v: Tensor<Float>)
}

/// Adafactor: per-weight statistics and the update rule.
public struct Adafactor: Sendable, Equatable {
    /// The settings.
    public let configuration: AdafactorConfiguration
    /// Statistics by parameter (absent until the first update: zeros).
    public var slots: [ParameterPath: AdafactorSlot] = [:]

    /// An optimizer with no statistics yet.
    public init(configuration: AdafactorConfiguration = AdafactorConfiguration()) {
        self.configuration = configuration
    }

    /// ρ_t = 1 − (t + 1)^−p, the decay of the statistics at 0-based step t (ρ_0 = 0).
    public func decay(step t: Int) -> Float {
        Float(1 - Foundation.pow(Double(t) + 1, -configuration.decayExponent))
    }

    /// Updates parameter `path`'s `weight` in place with `gradient` at 0-based `step` and learning
    /// rate `learningRate`, and its statistics in `slots`.
    public mutating func update(
        _ path: ParameterPath, weight: inout Tensor<Float>, gradient g: Tensor<Float>, step: Int, learningRate: Float
    ) {
        update(weight: &weight, gradient: g, slot: &slots[path], step: step, learningRate: learningRate)
    }

    /// Updates one `weight` and its statistics `slot` (nil before the first update) in place with
    /// `gradient` at 0-based `step` and learning rate `learningRate`. This is the fast path
    /// (AdafactorKernel.swift); `referenceAdafactorUpdate` is the same formula written plainly.
    public func update(weight: inout Tensor<Float>, gradient g: Tensor<Float>, slot: inout AdafactorSlot?, step: Int, learningRate: Float) {
        precondition(weight.shape == g.shape, "Adafactor: gradient \(g.shape) for a weight \(weight.shape)")
        Self.updateWhole(weight: &weight, gradient: g, slot: &slot, configuration: configuration, step: step, learningRate: learningRate)
    }

    /// √(mean(x²)), with Σx² by `sumOfSquares`.
    static func rms(_ x: [Float]) -> Float {
        guard !x.isEmpty else { return 0 }
        let total = x.withUnsafeBufferPointer { sumOfSquares($0.baseAddress!, count: $0.count) }
        return Float((total / Double(x.count)).squareRoot())
    }

    /// Σx² in Double, in eight lanes: lane j sums the elements whose index is j mod 8, in index
    /// order, and the lanes are added as ((0+1)+(2+3))+((4+5)+(6+7)). Each square of a Float is
    /// exact in Double. The order is fixed, so every caller (the fast, sharded and reference
    /// updates) gets the same bits; eight chains instead of one keep the adds off the critical path.
    static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var sum = SquareSum()
        sum.add(x, count: count, at: 0)
        return sum.total
    }
}

/// The running state of `Adafactor.sumOfSquares`, fed piece by piece: a piece that starts at
/// element `index` of the whole sends its element `j` to lane `(index + j) mod 8`, so feeding the
/// pieces of an array in order gives the bits of one call on all of it.
struct SquareSum {
    private var lanes = SIMD8<Double>()

    /// Adds the squares of `x[0..<count]`, elements `index..<index + count` of the whole.
    mutating func add(_ x: UnsafePointer<Float>, count: Int, at index: Int) {
        var i = 0
        // Up to the next multiple of 8 of the whole, one lane at a time.
        while i < count && (index + i) % 8 != 0 {
            lanes[(index + i) % 8] += Double(x[i]) * Double(x[i])
            i += 1
        }
        while i + 8 <= count {
            let v = SIMD8<Double>(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self))
            lanes += v * v
            i += 8
        }
        while i < count {
            lanes[(index + i) % 8] += Double(x[i]) * Double(x[i])
            i += 1
        }
    }

    /// Σx² of everything added: the lanes summed as ((0+1)+(2+3))+((4+5)+(6+7)).
    var total: Double {
        ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    }
}
