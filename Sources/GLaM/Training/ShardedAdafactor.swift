import Foundation

// Adafactor on a weight split into shards that live on different cores (glam-spec.md section 5:
// the optimizer state is sharded like its weight). Each shard keeps the statistics of its own
// part; the update needs only a few sums across shards, made in shard order:
//
// - factored weights `[..., R, C]` whose columns are split (an expert's `wi` `[E, M, H]` with H
//   on `mdl`): the row sums of g² that feed vr;
// - factored weights whose rows are split (`wo` `[E, H, M]`): the column sums of g² that feed vc,
//   and the sum of vr over rows (its mean normalises the factored estimate);
// - every weight: Σu² and ΣW² over the whole weight (update clipping and the parameter scale).
//
// A split of the leading dimensions (experts) needs none of the first two: statistics are per
// leading index. With one shard this is exactly `Adafactor.update` (which calls it).

/// One shard of a weight being updated: its values, its gradient and its statistics.
struct AdafactorShard {
    var weight: Tensor<Float>
    let gradient: Tensor<Float>
    var slot: AdafactorSlot?
}

/// Which of a weight's last two dimensions its shards split, besides leading dimensions.
enum AdafactorShardSplit {
    /// Only leading dimensions (or nothing) are split.
    case none
    /// The second-to-last dimension (rows).
    case rows
    /// The last dimension (columns).
    case columns
}

extension Adafactor {
    /// Updates every shard of one weight of full `shape`. `shards[b]` holds the shards that cover
    /// the same leading indices, in order along the `split` dimension; leading indices are split
    /// across the `b`s. Returns how many values each shard contributed to sums across its `b` group
    /// (besides the two Double sums of squares over all shards), for communication accounting.
    static func updateShards(
        _ shards: inout [[AdafactorShard]], split: AdafactorShardSplit, shape: [Int], configuration c: AdafactorConfiguration,
        step: Int, learningRate: Float
    ) -> Int {
        let rho = Float(1 - Foundation.pow(Double(step) + 1, -c.decayExponent))
        var updates = shards.map { $0.map { [Float](repeating: 0, count: $0.gradient.scalarCount) } }
        var exchanged = 0
        if c.isFactored(shape) {
            let (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
            for b in shards.indices {
                exchanged = factoredStatistics(
                    &shards[b], updates: &updates[b], split: split, rows: rows, columns: columns, rho: rho, epsilon1: c.epsilon1)
            }
        } else {
            for b in shards.indices {
                for k in shards[b].indices {
                    let g = shards[b][k].gradient.scalars
                    var v: [Float]
                    if case .full(let old)? = shards[b][k].slot { v = old.scalars } else { v = [Float](repeating: 0, count: g.count) }
                    for i in g.indices {
                        v[i] = rho * v[i] + (1 - rho) * (g[i] * g[i] + c.epsilon1)
                        updates[b][k][i] = g[i] / v[i].squareRoot()
                    }
                    shards[b][k].slot = .full(v: Tensor(shape: shards[b][k].weight.shape, scalars: v))
                }
            }
        }
        // Update clipping u / max(1, RMS(u)/d) and the parameter scale max(RMS(W), ε2), over the
        // whole weight: sums of squares in Double, shard by shard.
        var uSquares = 0.0, wSquares = 0.0, count = 0
        for b in shards.indices {
            for k in shards[b].indices {
                for value in updates[b][k] { uSquares += Double(value) * Double(value) }
                for value in shards[b][k].weight.scalars { wSquares += Double(value) * Double(value) }
                count += updates[b][k].count
            }
        }
        let rms = { (total: Double) in count == 0 ? Float(0) : Float((total / Double(count)).squareRoot()) }
        let clip = max(1, rms(uSquares) / c.clippingThreshold)
        let scale = learningRate * (c.multiplyByParameterScale ? max(rms(wSquares), c.epsilon2) : 1) / clip
        for b in shards.indices {
            for k in shards[b].indices {
                for i in updates[b][k].indices { shards[b][k].weight.scalars[i] -= scale * updates[b][k][i] }
            }
        }
        return exchanged
    }

    /// The factored second moments of the shards covering the same leading indices, and their
    /// unclipped updates u = g / √(vr ⊗ vc / mean(vr)). Full weights have `rows` × `columns`
    /// matrices per leading index. Returns the values each shard sent to the others' sums.
    private static func factoredStatistics(
        _ parts: inout [AdafactorShard], updates: inout [[Float]], split: AdafactorShardSplit, rows: Int, columns: Int, rho: Float,
        epsilon1: Float
    ) -> Int {
        let shapes = parts.map { $0.gradient.shape }
        let localRows = shapes.map { $0[$0.count - 2] }, localColumns = shapes.map { $0[$0.count - 1] }
        let blocks = parts[0].gradient.scalarCount / (localRows[0] * localColumns[0])
        // Row and column sums of g² + ε1 per shard.
        var rowSums = [[Float]](), columnSums = [[Float]]()
        for (k, part) in parts.enumerated() {
            let (r, cols) = (localRows[k], localColumns[k])
            let g = part.gradient.scalars
            var rowSum = [Float](repeating: 0, count: blocks * r), columnSum = [Float](repeating: 0, count: blocks * cols)
            for block in 0..<blocks {
                let base = block * r * cols
                for i in 0..<r {
                    var sum: Float = 0
                    for j in 0..<cols {
                        let g2 = g[base + i * cols + j] * g[base + i * cols + j] + epsilon1
                        sum += g2
                        columnSum[block * cols + j] += g2
                    }
                    rowSum[block * r + i] = sum
                }
            }
            rowSums.append(rowSum)
            columnSums.append(columnSum)
        }
        // Sums across shards, in shard order, where the split cuts through them.
        var exchanged = 0
        if split == .columns && parts.count > 1 {
            let total = rowSums.dropFirst().reduce(rowSums[0]) { zip($0, $1).map { $0 + $1 } }
            rowSums = rowSums.map { _ in total }
            exchanged = total.count
        }
        if split == .rows && parts.count > 1 {
            let total = columnSums.dropFirst().reduce(columnSums[0]) { zip($0, $1).map { $0 + $1 } }
            columnSums = columnSums.map { _ in total }
            exchanged = total.count + blocks
        }
        // vr, vc.
        var vrs = [[Float]](), vcs = [[Float]]()
        for (k, part) in parts.enumerated() {
            let (r, cols) = (localRows[k], localColumns[k])
            var vr: [Float], vc: [Float]
            if case .factored(let oldRows, let oldColumns)? = part.slot {
                (vr, vc) = (oldRows.scalars, oldColumns.scalars)
            } else {
                (vr, vc) = ([Float](repeating: 0, count: blocks * r), [Float](repeating: 0, count: blocks * cols))
            }
            for i in vr.indices { vr[i] = rho * vr[i] + (1 - rho) * (rowSums[k][i] / Float(columns)) }
            for j in vc.indices { vc[j] = rho * vc[j] + (1 - rho) * (columnSums[k][j] / Float(rows)) }
            vrs.append(vr)
            vcs.append(vc)
            let leading = Array(shapes[k].dropLast(2))
            parts[k].slot = .factored(vr: Tensor(shape: leading + [r], scalars: vr), vc: Tensor(shape: leading + [cols], scalars: vc))
        }
        // mean(vr) per leading index: over all rows, which a row split spreads across shards.
        var rowMeans = [Float](repeating: 0, count: blocks)
        for block in 0..<blocks {
            var sum: Float = 0
            for k in (split == .rows ? Array(parts.indices) : [0]) {
                var partial: Float = 0
                for i in 0..<localRows[k] { partial += vrs[k][block * localRows[k] + i] }
                sum = k == 0 ? partial : sum + partial
            }
            rowMeans[block] = sum / Float(rows)
        }
        for (k, part) in parts.enumerated() {
            let (r, cols) = (localRows[k], localColumns[k])
            let g = part.gradient.scalars
            for block in 0..<blocks {
                let base = block * r * cols
                for i in 0..<r {
                    let rowFactor = 1 / (vrs[k][block * r + i] / rowMeans[block]).squareRoot()
                    for j in 0..<cols {
                        let columnFactor = 1 / vcs[k][block * cols + j].squareRoot()
                        updates[k][base + i * cols + j] = g[base + i * cols + j] * rowFactor * columnFactor
                    }
                }
            }
        }
        return exchanged
    }
}
