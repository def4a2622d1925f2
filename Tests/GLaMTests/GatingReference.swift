// An independent transcription of praxis' top2_gating_on_logits as numpy-style loops (the "Top-2 gating" article) (praxis
// `top2_gating_on_logits`), written with dense one-hot masks and cumulative sums exactly as the
// pseudo-code does, in Double. The production code (Top2Routing/Top2Gating) is written with
// per-expert counters instead; the exhaustive tests compare the two.

import Foundation

struct ReferenceGating {
    var combine: [Double]  // [G, S, E, C]
    var aux: Double
    var overCapacity: [Double]
    var routed: [Int]
    var capacity: Int
}

func referenceTop2Gating(
    logits: [Double], g: Int, s: Int, e: Int, paddings: [Double]?, expertCapacity: Int?, capacityFactor: Double?, legacy: Bool
) -> ReferenceGating {
    // Capacity (praxis L180-188).
    var c = expertCapacity ?? 1
    if let cf = capacityFactor, cf > 0 {
        let auto = Int(Double(s) * cf / Double(e))
        if c < auto { c = ((auto + 3) / 4) * 4 }
    } else {
        c = expertCapacity ?? 0
    }
    let nonpad = paddings.map { $0.map { 1 - $0 } } ?? [Double](repeating: 1, count: g * s)
    // Softmax over E.
    var p = [Double](repeating: 0, count: g * s * e)
    for t in 0..<(g * s) {
        let row = Array(logits[(t * e)..<((t + 1) * e)])
        let peak = row.max() ?? 0
        let ex = row.map { exp($0 - peak) }
        let total = ex.reduce(0, +)
        for j in 0..<e { p[t * e + j] = ex[j] / total }
    }
    func argmax(_ v: ArraySlice<Double>) -> Int { (v.indices.first { v[$0] == v.max() } ?? v.startIndex) - v.startIndex }
    var m1 = [Double](repeating: 0, count: g * s * e), m2 = m1
    var g1 = [Double](repeating: 0, count: g * s), g2 = g1
    var i1 = [Int](repeating: 0, count: g * s), i2 = i1
    for t in 0..<(g * s) {
        i1[t] = argmax(p[(t * e)..<((t + 1) * e)])
        m1[t * e + i1[t]] = nonpad[t]
        g1[t] = (0..<e).reduce(0) { $0 + p[t * e + $1] * m1[t * e + $1] }
        let without = (0..<e).map { p[t * e + $0] * (1 - m1[t * e + $0]) }
        i2[t] = argmax(without[...])
        m2[t * e + i2[t]] = nonpad[t] > 0 ? 1 : 0
        g2[t] = (0..<e).reduce(0) { $0 + without[$1] * m2[t * e + $1] }
        if legacy {
            let den = g1[t] + g2[t] + 1e-9
            g1[t] /= den
            g2[t] /= den
        }
    }
    // Aux loss.
    var aux = 0.0
    for group in 0..<g {
        let dd = legacy ? 1.0 : (0..<s).reduce(0) { $0 + nonpad[group * s + $1] } / Double(s) + 1e-6
        for j in 0..<e {
            var f = 0.0, pMean = 0.0
            for k in 0..<s {
                f += m1[(group * s + k) * e + j]
                pMean += p[(group * s + k) * e + j] * nonpad[group * s + k]
            }
            aux += (f / Double(s) / dd) * (pMean / Double(s) / dd)
        }
    }
    aux = aux / Double(g * e) * Double(e * e)
    // Positions: exclusive cumsums over S.
    var pos1 = [Double](repeating: 0, count: g * s * e), pos2 = pos1
    var count1 = [Double](repeating: 0, count: g * e)
    var over = [0.0, 0.0]
    for group in 0..<g {
        for j in 0..<e {
            var running = 0.0
            for k in 0..<s {
                pos1[(group * s + k) * e + j] = running
                running += m1[(group * s + k) * e + j]
            }
        }
    }
    over[0] = (0..<(g * s * e)).filter { m1[$0] * pos1[$0] >= Double(c) }.count.doubleValue / max(1, m1.reduce(0, +))
    for index in 0..<(g * s * e) where pos1[index] >= Double(c) { m1[index] = 0 }
    for group in 0..<g {
        for j in 0..<e { count1[group * e + j] = (0..<s).reduce(0) { $0 + m1[(group * s + $1) * e + j] } }
        for j in 0..<e {
            var running = 0.0
            for k in 0..<s {
                pos2[(group * s + k) * e + j] = running + count1[group * e + j]
                running += m2[(group * s + k) * e + j]
            }
        }
    }
    over[1] = (0..<(g * s * e)).filter { m2[$0] * pos2[$0] >= Double(c) }.count.doubleValue / max(1, m2.reduce(0, +))
    for index in 0..<(g * s * e) where pos2[index] >= Double(c) { m2[index] = 0 }
    var combine = [Double](repeating: 0, count: g * s * e * c)
    var routed = [0, 0, 0]
    for t in 0..<(g * s) {
        let keep1 = (0..<e).reduce(0) { $0 + m1[t * e + $1] }, keep2 = (0..<e).reduce(0) { $0 + m2[t * e + $1] }
        var a = g1[t] * keep1, b = g2[t] * keep2
        if !legacy {
            let den = a + b > 0 ? a + b : 1
            a /= den
            b /= den
        }
        let p1 = Int((0..<e).reduce(0) { $0 + pos1[t * e + $1] * m1[t * e + $1] })
        let p2 = Int((0..<e).reduce(0) { $0 + pos2[t * e + $1] * m2[t * e + $1] })
        if c > 0 {
            combine[(t * e + i1[t]) * c + p1] += a * keep1
            combine[(t * e + i2[t]) * c + p2] += b * keep2
        }
        let dispatched = (0..<(e * c)).filter { combine[t * e * c + $0] != 0 }.count
        routed[dispatched] += 1
    }
    routed[0] -= g * s - Int(nonpad.reduce(0, +))
    return ReferenceGating(combine: combine, aux: aux, overCapacity: over, routed: routed, capacity: c)
}

extension Int {
    var doubleValue: Double { Double(self) }
}
