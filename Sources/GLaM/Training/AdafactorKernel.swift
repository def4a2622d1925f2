// Adafactor on one whole weight in three passes over memory (the single-device fast path):
//
//   1. g2 = g² + ε1 summed along rows and columns (factored) or folded into v (unfactored);
//   2. u = g / √(vr ⊗ vc / mean(vr)) (or g / √v) into a scratch buffer, with Σu² and ΣW²;
//   3. W −= (lr · scale / clip) · u.
//
// The floating-point operations are those of `referenceAdafactorUpdate`, in the same order and
// precision, so the two agree bit for bit (Tests/GLaMTests/AdafactorTests.swift). The sharded
// update (ShardedAdafactor.swift) is the same computation split across cores.

extension Adafactor {
    /// One Adafactor step on a whole `weight` and its statistics `slot`, in place.
    static func updateWhole(
        weight: inout Tensor<Float>, gradient: Tensor<Float>, slot: inout AdafactorSlot?, configuration c: AdafactorConfiguration,
        step: Int, learningRate: Float
    ) {
        let shape = weight.shape, count = gradient.scalarCount
        let rho = Adafactor(configuration: c).decay(step: step)
        let epsilon1 = c.epsilon1
        // u in a pooled scratch buffer (every element written in pass 2): a fresh array per weight
        // and step would be faulted in page by page every time.
        ScratchBuffers.withBuffer(count: count) { out in
            var sumU = 0.0, sumW = 0.0
            gradient.scalars.withUnsafeBufferPointer { gBuffer in
                guard count > 0, let g = gBuffer.baseAddress else { return }
                if c.isFactored(shape) {
                    let (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
                    let blocks = count / (rows * columns)  // leading indices: experts
                    var vr: [Float], vc: [Float]
                    if case .factored(let oldRows, let oldColumns)? = slot {
                        (vr, vc) = (oldRows.scalars, oldColumns.scalars)
                    } else {
                        (vr, vc) = ([Float](repeating: 0, count: blocks * rows), [Float](repeating: 0, count: blocks * columns))
                    }
                    var columnSums = [Float](repeating: 0, count: columns)
                    var columnFactors = [Float](repeating: 0, count: columns)
                    for block in 0..<blocks {
                        let base = g + block * rows * columns
                        // Pass 1: Float sums in index order, then one division by the count.
                        for j in 0..<columns { columnSums[j] = 0 }
                        for i in 0..<rows {
                            let row = base + i * columns
                            var sum: Float = 0
                            for j in 0..<columns {
                                let g2 = row[j] * row[j] + epsilon1
                                sum += g2
                                columnSums[j] += g2
                            }
                            vr[block * rows + i] = rho * vr[block * rows + i] + (1 - rho) * (sum / Float(columns))
                        }
                        for j in 0..<columns {
                            vc[block * columns + j] = rho * vc[block * columns + j] + (1 - rho) * (columnSums[j] / Float(rows))
                            columnFactors[j] = 1 / vc[block * columns + j].squareRoot()
                        }
                        var vrSum: Float = 0
                        for i in 0..<rows { vrSum += vr[block * rows + i] }
                        let vrMean = vrSum / Float(rows)
                        // Pass 2: u = (g · 1/√(vr_i / mean(vr))) · 1/√vc_j.
                        for i in 0..<rows {
                            let rowFactor = 1 / (vr[block * rows + i] / vrMean).squareRoot()
                            let row = base + i * columns, target = out + (block * rows + i) * columns
                            for j in 0..<columns { target[j] = row[j] * rowFactor * columnFactors[j] }
                        }
                    }
                    let leading = Array(shape.dropLast(2))
                    slot = .factored(vr: Tensor(shape: leading + [rows], scalars: vr), vc: Tensor(shape: leading + [columns], scalars: vc))
                } else {
                    var v: [Float]
                    if case .full(let old)? = slot { v = old.scalars } else { v = [Float](repeating: 0, count: count) }
                    v.withUnsafeMutableBufferPointer { vBuffer in
                        let statistics = vBuffer.baseAddress!
                        for i in 0..<count {
                            statistics[i] = rho * statistics[i] + (1 - rho) * (g[i] * g[i] + epsilon1)
                            out[i] = g[i] / statistics[i].squareRoot()
                        }
                    }
                    slot = .full(v: Tensor(shape: shape, scalars: v))
                }
                // RMS(u) and RMS(W) (of the weight before the step) from sums of squares in Double.
                sumU = sumOfSquares(out, count: count)
            }
            weight.scalars.withUnsafeBufferPointer { w in
                if let base = w.baseAddress { sumW = sumOfSquares(base, count: count) }
            }
            let rms = { (total: Double) in count == 0 ? Float(0) : Float((total / Double(count)).squareRoot()) }
            let clip = max(1, rms(sumU) / c.clippingThreshold)
            let parameterScale = c.multiplyByParameterScale ? max(rms(sumW), c.epsilon2) : 1
            // Pass 3: W − ((lr · scale) / clip) · u.
            let stepSize = learningRate * parameterScale / clip
            weight.scalars.withUnsafeMutableBufferPointer { w in
                for i in 0..<count { w[i] -= stepSize * out[i] }
            }
        }
    }
}
