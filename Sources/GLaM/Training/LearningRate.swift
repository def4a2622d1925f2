// GLaM's learning-rate schedule (the "Training" article; lingvo `SqrtDecay`, as the GLaM
// configurations set it): constant at its peak, then decaying as 1/√t.
//
//   lr_t = peak · √(constantSteps / max(t, constantSteps))

/// GLaM's learning-rate schedule (lingvo `SqrtDecay`): `lr_t = peak · √(constantSteps / max(t, constantSteps))`;
/// with peak 0.01 and 10,000 constant steps this is `1/√max(t, 10⁴)`: 0.01, then ∝ 1/√t.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    /// The learning rate of the constant phase (0.01).
    public var peak: Float
    /// Steps at the peak before the 1/√t decay (10,000 in GLaM; fewer for small runs).
    public var constantSteps: Int

    /// A schedule; GLaM's by default.
    public init(peak: Float = 0.01, constantSteps: Int = 10_000) {
        self.peak = peak
        self.constantSteps = constantSteps
    }

    /// The learning rate at 0-based step `t`.
    public func learningRate(step t: Int) -> Float {
        peak * Float((Double(constantSteps) / Double(max(t, constantSteps))).squareRoot())
    }
}
