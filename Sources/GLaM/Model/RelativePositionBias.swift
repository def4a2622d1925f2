// T5-style bucketed relative-position bias, one [N, 32] table per layer ("The model" article,
// praxis `attentions.RelativeBias`, causal). The paper cites Transformer-XL; the code is this.

import Foundation

/// The bucket of a causal relative distance (praxis `RelativeBias`, `bidirectional=False`):
/// `n = max(query − key, 0)`; `n < B/2 → n`; otherwise
/// `min(B − 1, B/2 + int(log(n / (B/2)) / log(maxDistance / (B/2)) · (B/2)))`, computed in float32
/// as praxis does (lingvo's bfloat16 moves the boundaries 77 → 76 and 113 → 112).
public func relativePositionBucket(distance: Int, buckets: Int = 32, maxDistance: Int = 128) -> Int {
    let n = max(distance, 0)
    let exact = buckets / 2
    if n < exact { return n }
    let ratio = Foundation.log(Float(n) / Float(exact))
    let scale = Foundation.log(Float(maxDistance) / Float(exact))  // praxis: jnp.log of a float32 array
    let large = exact + Int((ratio / scale * Float(buckets - exact)).rounded(.towardZero))
    return min(buckets - 1, large)
}

extension Variable {
    /// Picks columns of this `[N, K]` table: `out[n, i] = table[n, columns[i]]`, shape `[N] + shape`.
    /// The relative bias `[N, T, T]` from `[N, 32]` and the bucket of every (query, key) pair;
    /// backward sums each output column's gradient into its table column.
    func gatheringColumns(_ columns: [Int], shape outShape: [Int]) -> Variable {
        precondition(value.rank == 2, "gatheringColumns: expects [N, K], got \(shape)")
        let (n, k) = (shape[0], shape[1])
        let count = columns.count
        let table = value.scalars
        var out = [Scalar](repeating: 0, count: n * count)
        for row in 0..<n {
            for (i, column) in columns.enumerated() { out[row * count + i] = table[row * k + column] }
        }
        return Variable.record(Tensor(shape: [n] + outShape, scalars: out), inputs: [self]) { g in
            var d = [Scalar](repeating: 0, count: n * k)
            for row in 0..<n {
                for (i, column) in columns.enumerated() { d[row * k + column] += g.scalars[row * count + i] }
            }
            return [Tensor(shape: [n, k], scalars: d)]
        }
    }
}
