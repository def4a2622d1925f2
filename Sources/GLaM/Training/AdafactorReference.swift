// The reference Adafactor update: the formula at the top of Adafactor.swift written out as plain
// loops over one whole weight. The fast update (AdafactorKernel.swift, `Adafactor.update`) and the
// sharded one (ShardedAdafactor.swift) are tested against it bit for bit. Kept deliberately
// simple; never used in training.

/// One Adafactor step on a whole weight, by the definition (praxis `sharded_adafactor`, optax
/// `adafactor`, without momentum). For gradient g at 0-based `step` t:
///
///     g2 = g² + ε1                                        epsilon1
///     ρ  = 1 − (t + 1)^−p                                 decay_rate (p = decayExponent)
///     factored (rank ≥ 2, last two dimensions ≥ min_dim_size_to_factor; per leading index):
///       vr = ρ·vr + (1 − ρ)·mean(g2, over columns)       [..., R]
///       vc = ρ·vc + (1 − ρ)·mean(g2, over rows)          [..., C]
///       u  = g / √(vr ⊗ vc / mean(vr))
///     otherwise:  v = ρ·v + (1 − ρ)·g2;  u = g / √v
///     u  = u / max(1, RMS(u) / d)                         clipping_threshold d
///     W  = W − lr · max(RMS(W), ε2) · u                   multiply_by_parameter_scale, epsilon2
///
/// `factored` off, or a small last dimension, gives the unfactored case; with
/// `multiply_by_parameter_scale` off the step is lr · u. `slot` holds the previous step's
/// statistics (nil, or of the other kind: zeros). Returns the new weight and statistics.
///
/// The floating-point operations are those of the fast path, in the same order and precision
/// (noted below where that order is not the formula's obvious reading), so the results are bitwise
/// equal to `Adafactor.update`.
package func referenceAdafactorUpdate(
    weight: Tensor<Float>, gradient: Tensor<Float>, slot: AdafactorSlot?, step: Int, learningRate: Float,
    configuration c: AdafactorConfiguration
) -> (weight: Tensor<Float>, slot: AdafactorSlot) {
    precondition(weight.shape == gradient.shape, "referenceAdafactorUpdate: gradient \(gradient.shape) for weight \(weight.shape)")
    let shape = weight.shape, g = gradient.scalars
    let g2 = g.map { $0 * $0 + c.epsilon1 }
    let rho = Adafactor(configuration: c).decay(step: step)
    var u = [Float](repeating: 0, count: g.count)
    let newSlot: AdafactorSlot
    if c.isFactored(shape) {
        let (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
        let blocks = g.count / (rows * columns)  // leading indices: experts
        var vr = [Float](repeating: 0, count: blocks * rows), vc = [Float](repeating: 0, count: blocks * columns)
        if case .factored(let oldRows, let oldColumns)? = slot { (vr, vc) = (oldRows.scalars, oldColumns.scalars) }
        for b in 0..<blocks {
            let base = b * rows * columns
            // The means are Float sums in index order (columns within a row, rows for a column),
            // then one division by the count.
            var rowSums = [Float](repeating: 0, count: rows), columnSums = [Float](repeating: 0, count: columns)
            for i in 0..<rows {
                for j in 0..<columns {
                    rowSums[i] += g2[base + i * columns + j]
                    columnSums[j] += g2[base + i * columns + j]
                }
            }
            for i in 0..<rows { vr[b * rows + i] = rho * vr[b * rows + i] + (1 - rho) * (rowSums[i] / Float(columns)) }
            for j in 0..<columns { vc[b * columns + j] = rho * vc[b * columns + j] + (1 - rho) * (columnSums[j] / Float(rows)) }
            var vrSum: Float = 0
            for i in 0..<rows { vrSum += vr[b * rows + i] }
            let vrMean = vrSum / Float(rows)
            // u = g / √(vr_i · vc_j / mean(vr)), evaluated as (g · 1/√(vr_i / mean(vr))) · 1/√vc_j.
            for i in 0..<rows {
                let rowFactor = 1 / (vr[b * rows + i] / vrMean).squareRoot()
                for j in 0..<columns {
                    u[base + i * columns + j] = g[base + i * columns + j] * rowFactor * (1 / vc[b * columns + j].squareRoot())
                }
            }
        }
        let leading = Array(shape.dropLast(2))
        newSlot = .factored(vr: Tensor(shape: leading + [rows], scalars: vr), vc: Tensor(shape: leading + [columns], scalars: vc))
    } else {
        var v = [Float](repeating: 0, count: g.count)
        if case .full(let old)? = slot { v = old.scalars }
        for i in g.indices {
            v[i] = rho * v[i] + (1 - rho) * g2[i]
            u[i] = g[i] / v[i].squareRoot()
        }
        newSlot = .full(v: Tensor(shape: shape, scalars: v))
    }
    // RMS(u) and RMS(W) (of the weight before the step) from sums of squares in Double, in the
    // eight-lane order of `Adafactor.sumOfSquares`.
    let clip = max(1, Adafactor.rms(u) / c.clippingThreshold)
    let parameterScale = c.multiplyByParameterScale ? max(Adafactor.rms(weight.scalars), c.epsilon2) : 1
    // W − lr · scale · (u / clip), evaluated as W − ((lr · scale) / clip) · u.
    let stepSize = learningRate * parameterScale / clip
    var w = weight.scalars
    for i in w.indices { w[i] -= stepSize * u[i] }
    return (Tensor(shape: shape, scalars: w), newSlot)
}
