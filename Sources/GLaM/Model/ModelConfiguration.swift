// The GLaM model's configuration: field for field the `glam_lm` fixture config and the checkpoint
// metadata ("Checkpoints and parameter names" and "Golden fixtures" articles), with the paper's Table 4 models and small CPU models.

import Foundation

/// The hyper-parameters of a GLaM decoder (the "The model" article).
///
/// JSON keys (checkpoints, fixtures) are the snake_case names in `CodingKeys`.
public struct ModelConfiguration: Codable, Sendable, Equatable {
    /// V, the vocabulary size (tied input embedding and softmax).
    public var vocabSize: Int
    /// M, the model dimension (praxis `model_dim`).
    public var modelDim: Int
    /// L, the number of Transformer layers (attention + FFN); even ones are MoE when E > 0.
    public var numLayers: Int
    /// N, attention heads.
    public var numHeads: Int
    /// D, the dimension of each head (praxis `attention_key_value_dim`).
    public var headDim: Int
    /// H of the dense gated-GELU FFN (praxis `ff_dim`).
    public var ffDim: Int
    /// H of each expert (praxis `moe_hidden_dim`; None there means ff_dim).
    public var moeHiddenDim: Int
    /// E, experts per MoE layer; 0 makes a dense model.
    public var numExperts: Int
    /// Capacity per expert per group given directly (praxis `c_dim`), or nil.
    public var expertCapacity: Int?
    /// Capacity factor (praxis `capacity_factor`), or nil; GLaM uses 2.
    public var capacityFactor: Double?
    /// G, groups the B·T tokens are split into for gating (praxis `num_groups`).
    public var numGroups: Int
    /// The experts' activation.
    public var moeActivation: ExpertActivation
    /// Relative-position buckets (32).
    public var relativeBuckets: Int
    /// Distance at which the last bucket starts growing no more (128).
    public var relativeMaxDistance: Int
    /// Whether the attention softmax has an extra zero logit (praxis `attention_extra_logit=0.0`).
    public var attentionExtraLogit: Bool
    /// RMSNorm ε (1e-6).
    public var rmsNormEpsilon: Float
    /// Weight of the output z-loss mean(log Z²) (1e-4).
    public var zLossWeight: Float
    /// Weight of the summed load-balancing loss (0.01, praxis `moe_load_balance_loss_weight`).
    public var auxLossWeight: Float

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabSize = "vocab_size", modelDim = "model_dim", numLayers = "num_layers", numHeads = "num_heads"
        case headDim = "head_dim", ffDim = "ff_dim", moeHiddenDim = "moe_hidden_dim", numExperts = "num_experts"
        case expertCapacity = "expert_capacity", capacityFactor = "capacity_factor", numGroups = "num_groups"
        case moeActivation = "moe_activation", relativeBuckets = "relative_buckets"
        case relativeMaxDistance = "relative_max_distance", attentionExtraLogit = "attention_extra_logit"
        case rmsNormEpsilon = "rmsnorm_epsilon", zLossWeight = "z_loss_weight", auxLossWeight = "aux_loss_weight"
    }

    /// A configuration; unspecified fields take GLaM's values.
    public init(
        vocabSize: Int, modelDim: Int, numLayers: Int, numHeads: Int, headDim: Int, ffDim: Int,
        moeHiddenDim: Int? = nil, numExperts: Int, expertCapacity: Int? = nil, capacityFactor: Double? = 2.0,
        numGroups: Int = 1, moeActivation: ExpertActivation = .geluTanh, relativeBuckets: Int = 32,
        relativeMaxDistance: Int = 128, attentionExtraLogit: Bool = true, rmsNormEpsilon: Float = 1e-6,
        zLossWeight: Float = 1e-4, auxLossWeight: Float = 0.01
    ) {
        self.vocabSize = vocabSize
        self.modelDim = modelDim
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.headDim = headDim
        self.ffDim = ffDim
        self.moeHiddenDim = moeHiddenDim ?? ffDim
        self.numExperts = numExperts
        self.expertCapacity = expertCapacity
        self.capacityFactor = capacityFactor
        self.numGroups = numGroups
        self.moeActivation = moeActivation
        self.relativeBuckets = relativeBuckets
        self.relativeMaxDistance = relativeMaxDistance
        self.attentionExtraLogit = attentionExtraLogit
        self.rmsNormEpsilon = rmsNormEpsilon
        self.zLossWeight = zLossWeight
        self.auxLossWeight = auxLossWeight
    }

    /// Whether the model has MoE layers.
    public var isMoE: Bool { numExperts > 0 }

    /// Whether layer `i` (from 0) is an MoE layer: the even layers of an MoE model.
    public func isMoELayer(_ i: Int) -> Bool { isMoE && i % 2 == 0 }

    /// The indices of the MoE layers, in order (`DecoderOutput.gatings[k]` is layer `moeLayers[k]`).
    public var moeLayers: [Int] { (0..<numLayers).filter(isMoELayer) }

    /// The gating settings of the MoE layers.
    public var gating: Top2GatingConfiguration {
        Top2GatingConfiguration(numExperts: numExperts, expertCapacity: expertCapacity, capacityFactor: capacityFactor)
    }

    /// The largest value each size may take: far beyond the paper's models (M 8192, H 65536,
    /// 64 layers, 256K vocabulary, 256 experts), small enough that no product of two or three of
    /// them overflows and nothing sized by a file value alone can exhaust memory before the
    /// tensors themselves are checked.
    public static let limits: [String: Int] = [
        "vocab_size": 1 << 22, "model_dim": 1 << 17, "num_layers": 1 << 12, "num_heads": 1 << 12, "head_dim": 1 << 14,
        "ff_dim": 1 << 20, "moe_hidden_dim": 1 << 20, "num_experts": 1 << 14, "num_groups": 1 << 20, "relative_buckets": 1 << 12,
        "relative_max_distance": 1 << 24, "expert_capacity": 1 << 24,
    ]

    /// Why a configuration is unusable, or nil when it is fine: sizes of at least 1 (num_experts 0
    /// for a dense model, relative_buckets 2) and at most `limits`, relative_max_distance above
    /// relative_buckets / 2, finite weights and epsilon ≥ 0, a capacity factor in [0, 1e6], and for
    /// an MoE model a positive capacity factor or expert capacity.
    public var problem: String? {
        for (name, value) in [
            ("vocab_size", vocabSize), ("model_dim", modelDim), ("num_layers", numLayers), ("num_heads", numHeads),
            ("head_dim", headDim), ("ff_dim", ffDim), ("moe_hidden_dim", moeHiddenDim), ("num_groups", numGroups),
            ("relative_buckets", relativeBuckets), ("relative_max_distance", relativeMaxDistance),
        ] where value < 1 {
            return "\(name) must be at least 1, got \(value)"
        }
        if numExperts < 0 { return "num_experts must be ≥ 0, got \(numExperts)" }
        for (name, value) in [
            ("vocab_size", vocabSize), ("model_dim", modelDim), ("num_layers", numLayers), ("num_heads", numHeads),
            ("head_dim", headDim), ("ff_dim", ffDim), ("moe_hidden_dim", moeHiddenDim), ("num_experts", numExperts),
            ("num_groups", numGroups), ("relative_buckets", relativeBuckets), ("relative_max_distance", relativeMaxDistance),
            ("expert_capacity", expertCapacity ?? 0),
        ] where value > Self.limits[name]! {
            return "\(name) \(value) exceeds the supported \(Self.limits[name]!)"
        }
        if let expertCapacity, expertCapacity < 0 { return "expert_capacity must be ≥ 0, got \(expertCapacity)" }
        if let capacityFactor, !(capacityFactor >= 0 && capacityFactor <= 1e6) {
            return "capacity_factor must be a number in [0, 1e6], got \(capacityFactor)"
        }
        for (name, value) in [("rmsnorm_epsilon", rmsNormEpsilon), ("z_loss_weight", zLossWeight), ("aux_loss_weight", auxLossWeight)]
        where !value.isFinite || value < 0 {
            return "\(name) must be a finite number ≥ 0, got \(value)"
        }
        if relativeBuckets < 2 { return "relative_buckets must be at least 2" }
        if relativeMaxDistance <= relativeBuckets / 2 { return "relative_max_distance must exceed relative_buckets / 2" }
        if isMoE && (capacityFactor ?? 0) <= 0 && (expertCapacity ?? 0) <= 0 {
            return "an MoE model needs capacity_factor > 0 or expert_capacity > 0"
        }
        return nil
    }

    /// Every key a configuration has in JSON (a `glam_lm` fixture must give all of them).
    public static var jsonKeys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// The configuration as JSON with sorted keys (checkpoint and fixture metadata). Non-finite
    /// numbers (never in a valid configuration) are written as the strings "NaN", "Infinity" and
    /// "-Infinity", so this cannot fail.
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Parses a configuration from JSON (the keys of `CodingKeys`; absent optional keys take GLaM's
    /// values).
    public static func fromJSON(_ text: String) throws -> ModelConfiguration {
        try JSONDecoder().decode(ModelConfiguration.self, from: Data(text.utf8))
    }

    /// Decodes a configuration; absent optional keys take GLaM's values (see `fromJSON(_:)`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let ffDim = try c.decode(Int.self, forKey: .ffDim)
        self.init(
            vocabSize: try c.decode(Int.self, forKey: .vocabSize), modelDim: try c.decode(Int.self, forKey: .modelDim),
            numLayers: try c.decode(Int.self, forKey: .numLayers), numHeads: try c.decode(Int.self, forKey: .numHeads),
            headDim: try c.decode(Int.self, forKey: .headDim), ffDim: ffDim,
            moeHiddenDim: try c.decodeIfPresent(Int.self, forKey: .moeHiddenDim) ?? ffDim,
            numExperts: try c.decodeIfPresent(Int.self, forKey: .numExperts) ?? 0,
            expertCapacity: try c.decodeIfPresent(Int.self, forKey: .expertCapacity),
            capacityFactor: try c.decodeIfPresent(Double.self, forKey: .capacityFactor),
            numGroups: try c.decodeIfPresent(Int.self, forKey: .numGroups) ?? 1,
            moeActivation: try c.decodeIfPresent(ExpertActivation.self, forKey: .moeActivation) ?? .geluTanh,
            relativeBuckets: try c.decodeIfPresent(Int.self, forKey: .relativeBuckets) ?? 32,
            relativeMaxDistance: try c.decodeIfPresent(Int.self, forKey: .relativeMaxDistance) ?? 128,
            attentionExtraLogit: try c.decodeIfPresent(Bool.self, forKey: .attentionExtraLogit) ?? true,
            rmsNormEpsilon: try c.decodeIfPresent(Float.self, forKey: .rmsNormEpsilon) ?? 1e-6,
            zLossWeight: try c.decodeIfPresent(Float.self, forKey: .zLossWeight) ?? 1e-4,
            auxLossWeight: try c.decodeIfPresent(Float.self, forKey: .auxLossWeight) ?? 0.01)
    }
}

extension ExpertActivation: Codable {}
