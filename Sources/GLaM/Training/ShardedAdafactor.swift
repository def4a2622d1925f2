// Adafactor on a weight split into shards that live on different cores ("Sharding over TPU cores" article:
// the optimizer state is sharded like its weight). Each shard keeps the statistics of its own
// part; the update needs only a few sums across shards:
//
// - factored weights `[..., R, C]` whose columns are split (an expert's `wi` `[E, M, H]` with H
//   on `mdl`): the row sums of g² that feed vr;
// - factored weights whose rows are split (`wo` `[E, H, M]`): the column sums of g² that feed vc,
//   and the sum of vr over rows (its mean normalises the factored estimate);
// - every weight: Σu² and ΣW² over the whole weight (update clipping and the parameter scale).
//
// A split of the leading dimensions (experts) needs none of the first two: statistics are per
// leading index. Who makes the sums is the caller's choice (`AdafactorShardSums`): in order on one
// machine, or as all-reduces on a mesh. With one shard this is exactly `Adafactor.update`.

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

/// How the sums across shards are made. Partials come as a grid `[b][k]` like the shards.
struct AdafactorShardSums {
    /// Element-wise sums of equal-length vectors across each row `b` of the grid: one total per row.
    var alongSplit: (_ partials: [[[Float]]]) -> [[Float]]
    /// Element-wise sums of equal-length Double vectors across every shard.
    var overAll: (_ partials: [[[Double]]]) -> [Double]

    /// Sums made in place, in shard order.
    static var inOrder: AdafactorShardSums {
        AdafactorShardSums(
            alongSplit: { grid in grid.map { row in row.dropFirst().reduce(row[0]) { zip($0, $1).map { $0 + $1 } } } },
            overAll: { grid in
                let flat = grid.flatMap { $0 }
                return flat.dropFirst().reduce(flat[0]) { zip($0, $1).map { $0 + $1 } }
            })
    }
}

extension Adafactor {
    /// Updates every shard of one weight of full `shape`. `shards[b]` holds the shards that cover
    /// the same leading indices, in order along the `split` dimension; leading indices are split
    /// across the `b`s. `sums` makes the sums across shards.
    static func updateShards(
        _ shards: inout [[AdafactorShard]], split: AdafactorShardSplit, shape: [Int], configuration c: AdafactorConfiguration,
        step: Int, learningRate: Float, sums: AdafactorShardSums = .inOrder
    ) {
        let rho = Adafactor(configuration: c).decay(step: step)
        var updates: [[[Float]]]
        if c.isFactored(shape) {
            updates = factoredUpdates(
                &shards, split: split, rows: shape[shape.count - 2], columns: shape[shape.count - 1], rho: rho, epsilon1: c.epsilon1,
                sums: sums)
        } else {
            updates = shards.map { $0.map { [Float](repeating: 0, count: $0.gradient.scalarCount) } }
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
        // whole weight: sums of squares in Double, per shard, then across shards.
        let squares = shards.indices.map { b in
            shards[b].indices.map { k in
                let u = updates[b][k].withUnsafeBufferPointer { $0.isEmpty ? 0 : sumOfSquares($0.baseAddress!, count: $0.count) }
                let w = shards[b][k].weight.scalars.withUnsafeBufferPointer {
                    $0.isEmpty ? 0 : sumOfSquares($0.baseAddress!, count: $0.count)
                }
                return [u, w]
            }
        }
        let totals = sums.overAll(squares)
        let count = shape.reduce(1, *)
        let rms = { (total: Double) in count == 0 ? Float(0) : Float((total / Double(count)).squareRoot()) }
        let clip = max(1, rms(totals[0]) / c.clippingThreshold)
        let scale = learningRate * (c.multiplyByParameterScale ? max(rms(totals[1]), c.epsilon2) : 1) / clip
        for b in shards.indices {
            for k in shards[b].indices {
                for i in updates[b][k].indices { shards[b][k].weight.scalars[i] -= scale * updates[b][k][i] }
            }
        }
    }

    /// The factored second moments of every shard and their unclipped updates
    /// u = g / √(vr ⊗ vc / mean(vr)). Full weights have `rows` × `columns` matrices per leading index.
    private static func factoredUpdates(
        _ shards: inout [[AdafactorShard]], split: AdafactorShardSplit, rows: Int, columns: Int, rho: Float, epsilon1: Float,
        sums: AdafactorShardSums
    ) -> [[[Float]]] {
        let shapes = shards.map { $0.map { $0.gradient.shape } }
        func localRows(_ b: Int, _ k: Int) -> Int { shapes[b][k][shapes[b][k].count - 2] }
        func localColumns(_ b: Int, _ k: Int) -> Int { shapes[b][k][shapes[b][k].count - 1] }
        let blocks = shards[0][0].gradient.scalarCount / (localRows(0, 0) * localColumns(0, 0))
        // Row and column sums of g² + ε1 per shard.
        var rowSums = shards.map { $0.map { _ in [Float]() } }, columnSums = rowSums
        for b in shards.indices {
            for k in shards[b].indices {
                let (r, cols) = (localRows(b, k), localColumns(b, k))
                let g = shards[b][k].gradient.scalars
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
                (rowSums[b][k], columnSums[b][k]) = (rowSum, columnSum)
            }
        }
        // Totals across the shards that the split cuts through.
        if split == .columns {
            let totals = sums.alongSplit(rowSums)
            rowSums = rowSums.indices.map { b in rowSums[b].map { _ in totals[b] } }
        }
        if split == .rows {
            let totals = sums.alongSplit(columnSums)
            columnSums = columnSums.indices.map { b in columnSums[b].map { _ in totals[b] } }
        }
        // vr, vc, and the sum of vr over each leading index's rows.
        var vrs = rowSums, vcs = columnSums
        var vrSums = shards.map { $0.map { _ in [Float](repeating: 0, count: blocks) } }
        for b in shards.indices {
            for k in shards[b].indices {
                let (r, cols) = (localRows(b, k), localColumns(b, k))
                var vr: [Float], vc: [Float]
                if case .factored(let oldRows, let oldColumns)? = shards[b][k].slot {
                    (vr, vc) = (oldRows.scalars, oldColumns.scalars)
                } else {
                    (vr, vc) = ([Float](repeating: 0, count: blocks * r), [Float](repeating: 0, count: blocks * cols))
                }
                for i in vr.indices { vr[i] = rho * vr[i] + (1 - rho) * (rowSums[b][k][i] / Float(columns)) }
                for j in vc.indices { vc[j] = rho * vc[j] + (1 - rho) * (columnSums[b][k][j] / Float(rows)) }
                for block in 0..<blocks {
                    for i in 0..<r { vrSums[b][k][block] += vr[block * r + i] }
                }
                (vrs[b][k], vcs[b][k]) = (vr, vc)
                let leading = Array(shapes[b][k].dropLast(2))
                shards[b][k].slot = .factored(
                    vr: Tensor(shape: leading + [r], scalars: vr), vc: Tensor(shape: leading + [cols], scalars: vc))
            }
        }
        // mean(vr) per leading index: over all rows, which a row split spreads across shards.
        if split == .rows {
            let totals = sums.alongSplit(vrSums)
            vrSums = vrSums.indices.map { b in vrSums[b].map { _ in totals[b] } }
        }
        return shards.indices.map { b in
            shards[b].indices.map { k in
                let (r, cols) = (localRows(b, k), localColumns(b, k))
                let g = shards[b][k].gradient.scalars
                var u = [Float](repeating: 0, count: g.count)
                for block in 0..<blocks {
                    let base = block * r * cols
                    let rowMean = vrSums[b][k][block] / Float(rows)
                    for i in 0..<r {
                        let rowFactor = 1 / (vrs[b][k][block * r + i] / rowMean).squareRoot()
                        for j in 0..<cols {
                            let columnFactor = 1 / vcs[b][k][block * cols + j].squareRoot()
                            u[base + i * cols + j] = g[base + i * cols + j] * rowFactor * columnFactor
                        }
                    }
                }
                return u
            }
        }
    }
}
