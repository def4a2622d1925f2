// GLaM's parameters by name (contracts.md section 2), their shapes, and their initialisation
// (glam-spec.md section 1.2, identical in lingvo and praxis' glam.py).

/// A model's parameter tensors, keyed by the names of contracts.md section 2.
public struct ModelParameters: Sendable, Equatable {
    /// The configuration the tensors belong to.
    public let configuration: ModelConfiguration
    /// The tensors by name.
    public private(set) var tensors: [String: Tensor<Float>]

    /// Every parameter's name and shape, in a fixed order (embedding, layers in order, final norm).
    public static func shapes(for c: ModelConfiguration) -> [(name: String, shape: [Int])] {
        let (m, nd) = (c.modelDim, c.numHeads * c.headDim)
        var out: [(String, [Int])] = [("embedding", [c.vocabSize, m])]
        for i in 0..<c.numLayers {
            let p = "layers.\(i)."
            out += [
                (p + "attention_norm.scale", [m]), (p + "attention.wq", [m, nd]), (p + "attention.wk", [m, nd]),
                (p + "attention.wv", [m, nd]), (p + "attention.wo", [nd, m]),
                (p + "attention.relative_bias", [c.numHeads, c.relativeBuckets]), (p + "ffn_norm.scale", [m]),
            ]
            if c.isMoELayer(i) {
                out += [
                    (p + "moe.gate", [m, c.numExperts]), (p + "moe.wi", [c.numExperts, m, c.moeHiddenDim]),
                    (p + "moe.wo", [c.numExperts, c.moeHiddenDim, m]),
                ]
            } else {
                out += [(p + "ffn.wi_gate", [m, c.ffDim]), (p + "ffn.wi_linear", [m, c.ffDim]), (p + "ffn.wo", [c.ffDim, m])]
            }
        }
        out.append(("final_norm.scale", [m]))
        return out
    }

    /// Freshly initialised parameters: every tensor drawn from its own stream of `seed`, so the
    /// same seed always gives the same bits, and one tensor's values never depend on another's.
    ///
    /// | weight | init |
    /// |---|---|
    /// | embedding | N(0, 1) |
    /// | wq | N(0, (M·D)^-½) (the attention has no 1/√D scaling; it lives here) |
    /// | wk, wv | N(0, M^-½) |
    /// | attention wo | N(0, (N·D)^-½) |
    /// | relative_bias | N(0, (N·32)^-½) |
    /// | ffn wi_gate, wi_linear; moe gate, wi | U(±√(3/M)) |
    /// | ffn wo; moe wo | U(±√(3/H)) |
    /// | norm scales | 1 |
    public init(configuration c: ModelConfiguration, seed: UInt64) {
        precondition(c.problem == nil, "ModelParameters: \(c.problem ?? "")")
        var tensors: [String: Tensor<Float>] = [:]
        for (name, shape) in Self.shapes(for: c) {
            var generator = SeededGenerator(seed: CounterRandom.bits(seed: seed, stream: Self.stream(of: name), index: 0))
            let leaf = name.split(separator: ".").suffix(2).joined(separator: ".")
            let (m, d, nd) = (Float(c.modelDim), Float(c.headDim), Float(c.numHeads * c.headDim))
            switch leaf {
            case "embedding": tensors[name] = .randomNormal(shape: shape, generator: &generator)
            case "attention.wq":
                tensors[name] = .randomNormal(shape: shape, standardDeviation: 1 / (m * d).squareRoot(), generator: &generator)
            case "attention.wk", "attention.wv":
                tensors[name] = .randomNormal(shape: shape, standardDeviation: 1 / m.squareRoot(), generator: &generator)
            case "attention.wo": tensors[name] = .randomNormal(shape: shape, standardDeviation: 1 / nd.squareRoot(), generator: &generator)
            case "attention.relative_bias":
                tensors[name] = .randomNormal(
                    shape: shape, standardDeviation: 1 / Float(c.numHeads * c.relativeBuckets).squareRoot(), generator: &generator)
            case "ffn.wi_gate", "ffn.wi_linear", "moe.gate", "moe.wi":
                tensors[name] = .randomUniform(shape: shape, bound: (3 / m).squareRoot(), generator: &generator)
            case "ffn.wo", "moe.wo":
                let h = Float(shape[shape.count - 2])
                tensors[name] = .randomUniform(shape: shape, bound: (3 / h).squareRoot(), generator: &generator)
            default:  // norm scales
                tensors[name] = Tensor(repeating: 1, shape: shape)
            }
        }
        self.configuration = c
        self.tensors = tensors
    }

    /// Parameters from tensors, which must be exactly the configuration's names and shapes.
    ///
    /// - Throws: `ModelError` naming the first missing, unexpected or ill-shaped tensor.
    public init(configuration: ModelConfiguration, tensors: [String: Tensor<Float>]) throws(ModelError) {
        if let problem = configuration.problem { throw ModelError("invalid configuration: \(problem)") }
        let expected = Self.shapes(for: configuration)
        for (name, shape) in expected {
            guard let tensor = tensors[name] else { throw ModelError("missing parameter \(name) (shape \(shape))") }
            guard tensor.shape == shape else {
                throw ModelError("parameter \(name) has shape \(tensor.shape), the configuration needs \(shape)")
            }
        }
        let names = Set(expected.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !names.contains($0) }) {
            throw ModelError("unexpected parameter \(extra) for this configuration")
        }
        self.configuration = configuration
        self.tensors = tensors
    }

    /// Replaces one tensor (same shape).
    public mutating func update(_ name: String, to tensor: Tensor<Float>) {
        precondition(
            tensors[name]?.shape == tensor.shape,
            "ModelParameters.update: \(name) has shape \(tensors[name]?.shape ?? []), got \(tensor.shape)")
        tensors[name] = tensor
    }

    /// FNV-1a hash of a parameter name: its random stream.
    static func stream(of name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01B3
        }
        return hash
    }
}

/// A model, checkpoint or input that does not fit: one line saying what and why.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    /// The message.
    public let description: String
    /// An error with `message`.
    public init(_ message: String) { description = message }
}
