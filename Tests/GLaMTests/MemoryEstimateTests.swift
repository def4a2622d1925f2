// The training memory estimate against its documented formula, written out here from the shapes of
// the parameter table (not from ParameterPath), and its scaling in each dimension.

import Testing

@testable import GLaM

struct MemoryEstimateTests {
    /// P counted from the documented parameter shapes: embedding V·M; per layer two norms 2M,
    /// attention 4·M·N·D and the relative bias N·32; an MoE layer's router M·E and experts 2·E·M·H,
    /// a dense layer's FFN 3·M·H; the final norm M.
    static func parameterCount(_ c: ModelConfiguration) -> Int {
        var p = c.vocabSize * c.modelDim + c.modelDim
        for i in 0..<c.numLayers {
            p += 2 * c.modelDim + 4 * c.modelDim * c.numHeads * c.headDim + c.numHeads * c.relativeBuckets
            p += c.isMoELayer(i) ? c.modelDim * c.numExperts + 2 * c.numExperts * c.modelDim * c.moeHiddenDim : 3 * c.modelDim * c.ffDim
        }
        return p
    }

    /// The header's formula: 16·P bytes of parameters; 4 bytes × B × (L × (8·N·T² + 40·T·M + 8·T·H′) + 4·T·V)
    /// of activations, H′ = max(H, 2·H_moe).
    static func expected(_ c: ModelConfiguration, batch b: Int, length t: Int) -> (parameters: Int, activations: Int) {
        let hidden = max(c.ffDim, 2 * c.moeHiddenDim)
        let perLayer = 8 * c.numHeads * t * t + 40 * t * c.modelDim + 8 * t * hidden
        return (16 * parameterCount(c), 4 * b * (c.numLayers * perLayer + 4 * t * c.vocabSize))
    }

    @Test(
        "the estimate is the documented formula for every named configuration and several batch shapes",
        arguments: ["tiny", "small", "small-dense", "medium"])
    func documentedFormula(name: String) throws {
        let c = try #require(ModelConfiguration.named(name))
        for (b, t) in [(1, 1), (8, 128), (3, 77), (32, 1024)] {
            let estimate = MemoryEstimate(configuration: c, batchSize: b, length: t)
            let (parameters, activations) = Self.expected(c, batch: b, length: t)
            #expect(estimate.parameterBytes == parameters, "\(name) B=\(b) T=\(t)")
            #expect(estimate.activationBytes == activations, "\(name) B=\(b) T=\(t)")
            #expect(estimate.totalBytes == parameters + activations)
        }
    }

    @Test("activations scale linearly in B, L, M, V and quadratically in T through attention; parameters ignore B and T")
    func scaling() throws {
        var c = try #require(ModelConfiguration.named("small"))
        let base = MemoryEstimate(configuration: c, batchSize: 4, length: 64)
        let doubledBatch = MemoryEstimate(configuration: c, batchSize: 8, length: 64)
        #expect(doubledBatch.activationBytes == 2 * base.activationBytes && doubledBatch.parameterBytes == base.parameterBytes)
        // T: the attention maps grow with T², the rest with T.
        let doubledLength = MemoryEstimate(configuration: c, batchSize: 4, length: 128)
        let attention = 4 * 4 * c.numLayers * 8 * c.numHeads * 64 * 64
        #expect(doubledLength.activationBytes == 2 * base.activationBytes + 2 * attention)
        #expect(doubledLength.parameterBytes == base.parameterBytes)
        // More experts: more parameters, the same activations (H′ does not depend on E).
        c.numExperts *= 2
        let moreExperts = MemoryEstimate(configuration: c, batchSize: 4, length: 64)
        #expect(moreExperts.activationBytes == base.activationBytes && moreExperts.parameterBytes > base.parameterBytes)
        #expect(moreExperts.parameterBytes == 16 * Self.parameterCount(c))
    }

    @Test("a configuration too large to count estimates Int.max and does not fit; a small one fits")
    func overflow() throws {
        let c = try #require(ModelConfiguration.named("small"))
        #expect(MemoryEstimate(configuration: c, batchSize: 8, length: 128).fits(in: 24_000_000_000))
        #expect(!MemoryEstimate(configuration: c, batchSize: 8, length: 128).fits(in: 1_000_000))
        let huge = MemoryEstimate(configuration: c, batchSize: Int.max / 2, length: 1 << 20)
        #expect(huge.activationBytes == Int.max && huge.totalBytes == Int.max && !huge.fits())
        #expect(MemoryEstimate.describe(Int.max) == "more than 9.2 EB" && MemoryEstimate.describe(12_345_000_000) == "12.3 GB")
    }
}
