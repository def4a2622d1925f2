// GLaM's stored parameters and their initialisation (identical in lingvo and praxis' glam.py; see
// the "The model" article).

/// A model's parameters as tensors: `GLaMModel<Tensor<Float>>`.
public typealias ModelParameters = GLaMModel<Tensor<Float>>

extension GLaMModel where Weight == Tensor<Float> {
    /// Freshly initialised parameters: every tensor drawn from its own stream of `seed` (keyed by
    /// its file name), so the same seed always gives the same bits, and one tensor's values never
    /// depend on another's.
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
    ///
    /// - Throws: `ModelError` naming the problem when `c` is not a valid configuration.
    public init(configuration c: ModelConfiguration, seed: UInt64) throws(ModelError) {
        if let problem = c.problem { throw ModelError("invalid configuration: \(problem)") }
        let (m, d, nd) = (Float(c.modelDim), Float(c.headDim), Float(c.numHeads * c.headDim))
        self.init(configuration: c) { path in
            let shape = path.shape(in: c)
            var generator = SeededGenerator(seed: CounterRandom.bits(seed: seed, stream: Self.stream(of: path.name), index: 0))
            let weight: LayerWeight
            switch path {
            case .embedding: return .randomNormal(shape: shape, generator: &generator)
            case .finalNorm: return Tensor(repeating: 1, shape: shape)
            case .layer(_, let w): weight = w
            }
            switch weight {
            case .query: return .randomNormal(shape: shape, standardDeviation: 1 / (m * d).squareRoot(), generator: &generator)
            case .key, .value: return .randomNormal(shape: shape, standardDeviation: 1 / m.squareRoot(), generator: &generator)
            case .attentionOutput: return .randomNormal(shape: shape, standardDeviation: 1 / nd.squareRoot(), generator: &generator)
            case .relativeBias:
                return .randomNormal(
                    shape: shape, standardDeviation: 1 / Float(c.numHeads * c.relativeBuckets).squareRoot(), generator: &generator)
            case .gateProjection, .linearProjection, .router, .expertInput:
                return .randomUniform(shape: shape, bound: (3 / m).squareRoot(), generator: &generator)
            case .ffnOutput, .expertOutput:
                let h = Float(shape[shape.count - 2])
                return .randomUniform(shape: shape, bound: (3 / h).squareRoot(), generator: &generator)
            case .attentionNorm, .ffnNorm:
                return Tensor(repeating: 1, shape: shape)
            }
        }
    }

    /// Parameters from tensors by path, which must be exactly the configuration's paths and shapes.
    ///
    /// - Throws: `ModelError` naming the first missing, unexpected or ill-shaped tensor.
    public init(configuration: ModelConfiguration, tensors: [ParameterPath: Tensor<Float>]) throws(ModelError) {
        if let problem = configuration.problem { throw ModelError("invalid configuration: \(problem)") }
        let expected = ParameterPath.all(in: configuration)
        for path in expected {
            let shape = path.shape(in: configuration)
            guard let tensor = tensors[path] else { throw ModelError("missing parameter \(path) (shape \(shape))") }
            guard tensor.shape == shape else {
                throw ModelError("parameter \(path) has shape \(tensor.shape), the configuration needs \(shape)")
            }
        }
        let paths = Set(expected)
        if let extra = tensors.keys.sorted().first(where: { !paths.contains($0) }) {
            throw ModelError("unexpected parameter \(extra) for this configuration")
        }
        self.init(configuration: configuration) { tensors[$0]! }
    }

    /// Replaces one tensor (same shape).
    public mutating func update(_ path: ParameterPath, to tensor: Tensor<Float>) {
        precondition(self[path].shape == tensor.shape, "ModelParameters.update: \(path) has shape \(self[path].shape), got \(tensor.shape)")
        self[path] = tensor
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
