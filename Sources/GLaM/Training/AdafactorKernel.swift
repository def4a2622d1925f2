// Adafactor on one whole weight, the single-device fast path. A factored weight (a matrix, or a
// stack of them, one per expert) takes two passes over memory, block (matrix) by block:
//
//   1. g2 = g² + ε1 summed along rows and columns, giving the new vr and vc; ΣW² of the block;
//      then, while the block of g is still in cache, Σu² of u = g / √(vr ⊗ vc / mean(vr));
//   2. (once the clip, which needs Σu² of every block, is known) W −= (lr · scale / clip) · u,
//      recomputing u from g exactly as before.
//
// u is never stored: it would cost a write and a read of the whole weight's size. An unfactored
// weight (a vector) keeps its u in a scratch buffer.
//
// The floating-point operations are those of `referenceAdafactorUpdate`, in the same order and
// precision, so the two agree bit for bit (Tests/GLaMTests/AdafactorTests.swift): u is the same
// product each time it is computed, and the sums of squares are fed in index order to the lanes
// of `sumOfSquares`. The sharded update (ShardedAdafactor.swift) is the same computation split
// across cores.

extension Adafactor {
    /// One Adafactor step on a whole `weight` and its statistics `slot`, in place.
    static func updateWhole(
        weight: inout Tensor<Float>, gradient: Tensor<Float>, slot: inout AdafactorSlot?, configuration c: AdafactorConfiguration,
        step: Int, learningRate: Float
    ) {
        let shape = weight.shape, count = gradient.scalarCount
        guard count > 0 else { return }
        let rho = Adafactor(configuration: c).decay(step: step)
        let stepSize = { (sumU: Double, sumW: Double) -> Float in
            let rms = { (total: Double) in Float((total / Double(count)).squareRoot()) }
            let clip = max(1, rms(sumU) / c.clippingThreshold)
            let parameterScale = c.multiplyByParameterScale ? max(rms(sumW), c.epsilon2) : 1
            return learningRate * parameterScale / clip
        }
        if c.isFactored(shape) {
            updateFactored(weight: &weight, gradient: gradient, slot: &slot, rho: rho, epsilon1: c.epsilon1, stepSize: stepSize)
        } else {
            updateFull(weight: &weight, gradient: gradient, slot: &slot, rho: rho, epsilon1: c.epsilon1, stepSize: stepSize)
        }
    }

    /// The factored update of a `[..., rows, columns]` weight in two passes (see above).
    private static func updateFactored(
        weight: inout Tensor<Float>, gradient: Tensor<Float>, slot: inout AdafactorSlot?, rho: Float, epsilon1: Float,
        stepSize: (Double, Double) -> Float
    ) {
        let shape = weight.shape, count = gradient.scalarCount
        let (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
        let blocks = count / (rows * columns)  // leading indices: experts
        var vr: [Float], vc: [Float]
        if case .factored(let oldRows, let oldColumns)? = slot {
            (vr, vc) = (oldRows.scalars, oldColumns.scalars)
        } else {
            (vr, vc) = ([Float](repeating: 0, count: blocks * rows), [Float](repeating: 0, count: blocks * columns))
        }
        var vrMeans = [Float](repeating: 0, count: blocks)
        var sumU = SquareSum(), sumW = SquareSum()
        var columnSums = [Float](repeating: 0, count: columns)
        var columnFactors = [Float](repeating: 0, count: columns)
        var uRow = [Float](repeating: 0, count: columns)
        gradient.scalars.withUnsafeBufferPointer { gBuffer in
            let g = gBuffer.baseAddress!
            weight.scalars.withUnsafeBufferPointer { wBuffer in
                let w = wBuffer.baseAddress!
                for block in 0..<blocks {
                    let offset = block * rows * columns
                    let base = g + offset
                    // Pass 1: Float sums in index order, then one division by the count.
                    for j in 0..<columns { columnSums[j] = 0 }
                    if rows % 16 == 0 && columns % 16 == 0 {
                        columnSums.withUnsafeMutableBufferPointer { sums in
                            squaredSums(of: base, rows: rows, columns: columns, epsilon1: epsilon1, columnSums: sums.baseAddress!) {
                                i, sum in
                                vr[block * rows + i] = rho * vr[block * rows + i] + (1 - rho) * (sum / Float(columns))
                            }
                        }
                    } else {
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
                    }
                    sumW.add(w + offset, count: rows * columns, at: offset)
                    for j in 0..<columns {
                        vc[block * columns + j] = rho * vc[block * columns + j] + (1 - rho) * (columnSums[j] / Float(rows))
                    }
                    for j in 0..<columns { columnFactors[j] = 1 / vc[block * columns + j].squareRoot() }
                    var vrSum: Float = 0
                    for i in 0..<rows { vrSum += vr[block * rows + i] }
                    vrMeans[block] = vrSum / Float(rows)
                    // Σu² with u = (g · 1/√(vr_i / mean(vr))) · 1/√vc_j, a row at a time.
                    columnFactors.withUnsafeBufferPointer { factors in
                        uRow.withUnsafeMutableBufferPointer { u in
                            for i in 0..<rows {
                                let factor = 1 / (vr[block * rows + i] / vrMeans[block]).squareRoot()
                                let row = base + i * columns
                                for j in 0..<columns { u[j] = row[j] * factor * factors[j] }
                                sumU.add(u.baseAddress!, count: columns, at: offset + i * columns)
                            }
                        }
                    }
                }
            }
            // Pass 2: W − ((lr · scale) / clip) · u.
            let size = stepSize(sumU.total, sumW.total)
            weight.scalars.withUnsafeMutableBufferPointer { w in
                for block in 0..<blocks {
                    for j in 0..<columns { columnFactors[j] = 1 / vc[block * columns + j].squareRoot() }
                    columnFactors.withUnsafeBufferPointer { factors in
                        for i in 0..<rows {
                            let factor = 1 / (vr[block * rows + i] / vrMeans[block]).squareRoot()
                            let row = g + (block * rows + i) * columns
                            let target = w.baseAddress! + (block * rows + i) * columns
                            for j in 0..<columns { target[j] -= size * (row[j] * factor * factors[j]) }
                        }
                    }
                }
            }
        }
        let leading = Array(shape.dropLast(2))
        slot = .factored(vr: Tensor(shape: leading + [rows], scalars: vr), vc: Tensor(shape: leading + [columns], scalars: vc))
    }

    /// Pass 1's sums of g² + ε1 for a `[rows, columns]` block (both multiples of 16): each row's sum
    /// `Σ_j`, in column order from 0, passed to `row(i, sum)`; each column's `Σ_i`, in row order,
    /// added to `columnSums`. The same Float operations in the same order as one row at a time,
    /// so the same bits, but sixteen rows' chains at once: a 16 × 16 tile of g² is transposed in
    /// registers so that lane r of one vector carries row r's running sum (one row's chain alone
    /// waits for each add in turn: 40% of the factored update at E = 64 on the EPYC).
    private static func squaredSums(
        of g: UnsafePointer<Float>, rows: Int, columns: Int, epsilon1: Float, columnSums: UnsafeMutablePointer<Float>,
        row: (Int, Float) -> Void
    ) {
        let epsilon = SIMD16<Float>(repeating: epsilon1)
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 32) { buffer in
            let (tile, transposed) = (buffer.baseAddress!, buffer.baseAddress! + 16)
            for i0 in stride(from: 0, to: rows, by: 16) {
                var rowSums = SIMD16<Float>()  // lane r: row i0 + r
                for j0 in stride(from: 0, to: columns, by: 16) {
                    let columnSum = UnsafeMutableRawPointer(columnSums + j0)
                    var sum = columnSum.loadUnaligned(as: SIMD16<Float>.self)
                    for r in 0..<16 {
                        let v = UnsafeRawPointer(g + (i0 + r) * columns + j0).loadUnaligned(as: SIMD16<Float>.self)
                        let g2 = v * v + epsilon
                        sum += g2
                        tile[r] = g2
                    }
                    columnSum.storeBytes(of: sum, as: SIMD16<Float>.self)
                    UnsafeRawPointer(tile).withMemoryRebound(to: Float.self, capacity: 256) { elements in
                        loadTransposed16x16(into: transposed, from: elements, rowStride: 16, rows: 16)
                    }
                    for c in 0..<16 { rowSums += transposed[bitReversed4(c)] }
                }
                for r in 0..<16 { row(i0 + r, rowSums[r]) }
            }
        }
    }

    /// The unfactored update (a vector): v, then u into a scratch buffer, then W.
    private static func updateFull(
        weight: inout Tensor<Float>, gradient: Tensor<Float>, slot: inout AdafactorSlot?, rho: Float, epsilon1: Float,
        stepSize: (Double, Double) -> Float
    ) {
        let shape = weight.shape, count = gradient.scalarCount
        var v: [Float]
        if case .full(let old)? = slot { v = old.scalars } else { v = [Float](repeating: 0, count: count) }
        ScratchBuffers.withBuffer(count: count) { out in
            gradient.scalars.withUnsafeBufferPointer { gBuffer in
                let g = gBuffer.baseAddress!
                v.withUnsafeMutableBufferPointer { vBuffer in
                    let statistics = vBuffer.baseAddress!
                    for i in 0..<count {
                        statistics[i] = rho * statistics[i] + (1 - rho) * (g[i] * g[i] + epsilon1)
                        out[i] = g[i] / statistics[i].squareRoot()
                    }
                }
            }
            let sumU = sumOfSquares(out, count: count)
            let sumW = weight.scalars.withUnsafeBufferPointer { sumOfSquares($0.baseAddress!, count: count) }
            let size = stepSize(sumU, sumW)
            weight.scalars.withUnsafeMutableBufferPointer { w in
                for i in 0..<count { w[i] -= size * out[i] }
            }
        }
        slot = .full(v: Tensor(shape: shape, scalars: v))
    }
}
