// The GLaM decoder: relative buckets and the extra-logit softmax on the documented values, finite
// differences through a whole tiny model in Double, parameter counts against the paper,
// initialisation, checkpoints, and cached decoding against the full forward pass.

import Foundation
import Testing

@testable import GLaM

/// A tiny configuration for exhaustive checks.
func tinyConfiguration(experts: Int = 3, capacityFactor: Double = 8, extraLogit: Bool = true) -> ModelConfiguration {
    ModelConfiguration(
        vocabSize: 11, modelDim: 6, numLayers: 2, numHeads: 2, headDim: 3, ffDim: 5, moeHiddenDim: 4, numExperts: experts,
        capacityFactor: capacityFactor, numGroups: 1, attentionExtraLogit: extraLogit)
}

/// A named configuration, or a recorded failure (not a trap) when the name is unknown.
func namedConfiguration(_ name: String) throws -> ModelConfiguration { try #require(ModelConfiguration.named(name)) }

struct ModelTests {
    @Test("relative buckets: the first distance of buckets 16…31 (the model article, float32)")
    func relativeBuckets() {
        let firsts = [16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87, 99, 113]
        for (offset, first) in firsts.enumerated() {
            #expect(relativePositionBucket(distance: first) == 16 + offset, "distance \(first)")
            #expect(relativePositionBucket(distance: first - 1) == 15 + offset, "distance \(first - 1)")
        }
        #expect((0..<16).allSatisfy { relativePositionBucket(distance: $0) == $0 })
        #expect(relativePositionBucket(distance: -5) == 0 && relativePositionBucket(distance: 100_000) == 31)
    }

    @Test("softmax with the extra zero logit: [1, 2, masked] → [0.244728, 0.665241, 0]")
    func extraZeroLogit() {
        let logits = Variable(constant: Tensor<Float>(shape: [1, 1, 1, 3], scalars: [1, 2, 7]))
        let p = logits.maskedSoftmax(visible: [true, true, false], extraZeroLogit: true).value.scalars
        #expect(abs(p[0] - 0.244728) < 1e-6 && abs(p[1] - 0.665241) < 1e-6 && p[2] == 0)
        let plain = logits.maskedSoftmax(visible: [true, true, false], extraZeroLogit: false).value.scalars
        #expect(abs(plain[0] - 0.268941) < 1e-6 && abs(plain[1] - 0.731059) < 1e-6)
        // A row with nothing visible attends to nothing.
        let none = logits.maskedSoftmax(visible: [false, false, false], extraZeroLogit: true).value.scalars
        #expect(none == [0, 0, 0])
    }

    @Test("finite differences in Double through a whole tiny model (MoE and dense, with padding)", arguments: [3, 0])
    func wholeModelGradients(experts: Int) throws {
        let configuration = tinyConfiguration(experts: experts)
        let initial = try ModelParameters(configuration: configuration, seed: 5)
        let paths = initial.paths
        // Norm scales away from 1 so their gradients are exercised.
        let inputs = paths.map { path -> Tensor<Double> in
            let t = Tensor<Double>(initial[path])
            let isNorm: Bool
            switch path {
            case .finalNorm, .layer(_, .attentionNorm), .layer(_, .ffnNorm): isNorm = true
            default: isNorm = false
            }
            return isNorm ? t + randomDoubleTensor(t.shape, seed: 3, in: -0.2..<0.2) : t
        }
        let batch = TokenBatch(
            batchSize: 2, length: 5, tokens: [1, 4, 2, 9, 3, 7, 0, 5, 10, 6], targets: [4, 2, 9, 3, 8, 0, 5, 10, 6, 1],
            paddings: [0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        let worst = try checkGradients(inputs, step: 1e-6, tolerance: 1e-6) { v in
            let parameters = Dictionary(uniqueKeysWithValues: zip(paths, v))
            let model = GLaMModel(configuration: configuration) { parameters[$0] ?? Variable(constant: Tensor<Double>(0)) }
            let output: DecoderOutput<Double> = try model(batch)  // an error fails the test with it
            return try #require(output.loss)
        }
        #expect(worst < 1e-6)
    }

    @Test("the committed token-drop fixture really drops tokens")
    func dropFixtureDrops() throws {
        let file = try SafeTensorsFile(contentsOf: fixturesDirectory.appendingPathComponent("model/glam_lm_moe_drops.safetensors"))
        let configuration = try ModelConfiguration.fromJSON(try #require(file.metadata["config"]))
        let parameters = try ModelParameters(configuration: configuration) { path in
            try #require(file.tensors["param." + path.name]).floatTensor()
        }
        let batch = TokenBatch(
            batchSize: 2, length: 8, tokens: try #require(file.tensors["input.tokens"]?.integers()),
            paddings: try #require(file.tensors["input.paddings"]).floatTensor().scalars)
        let output: DecoderOutput<Float> = try parameters.constants(batch)
        #expect(output.gatings.contains { $0.routing.overCapacity[0] > 0 || $0.routing.overCapacity[1] > 0 })
    }

    @Test("parameter counts: glam-64b-64e 1.2T total / 96.6B activated, glam-137b ≈ 137B")
    func parameterCounts() throws {
        let big = ParameterCount(try namedConfiguration("glam-64b-64e"))
        #expect(abs(Double(big.total) / 1e12 - 1.1618) < 0.0005)  // the paper prints 1.2T
        #expect(abs(Double(big.activated) / 1e9 - 96.6) < 0.05)
        let dense = ParameterCount(try namedConfiguration("glam-137b"))
        #expect(abs(Double(dense.total - dense.embedding) / 1e9 - 137.44) < 0.01)  // the paper's 137B excludes the embedding
        #expect(dense.total == dense.activated)
        let moe = ParameterCount(try namedConfiguration("glam-1.7b-64e"))
        #expect(abs(Double(moe.total) / 1e9 - 27.3) < 0.05)  // paper 27B
        // Activated counts grow with E through the router only.
        let e32 = ParameterCount(try namedConfiguration("glam-1.7b-32e")),
            e256 = ParameterCount(try namedConfiguration("glam-1.7b-256e"))
        #expect(e256.activated - e32.activated == 12 * 2048 * (256 - 32))
        // Every model's count equals the sum of its parameter shapes.
        for named in ModelConfiguration.named where named.configuration.vocabSize < 10_000 {
            let shapes = ParameterPath.all(in: named.configuration).map { $0.shape(in: named.configuration) }
            #expect(ParameterCount(named.configuration).total == shapes.reduce(0) { $0 + $1.reduce(1, *) }, "\(named.name)")
        }
    }

    @Test("initialisation follows the documented table and depends only on the seed")
    func initialisation() throws {
        let configuration = try namedConfiguration("small")
        let a = try ModelParameters(configuration: configuration, seed: 1), b = try ModelParameters(configuration: configuration, seed: 1)
        #expect(a == b)
        #expect(try a != ModelParameters(configuration: configuration, seed: 2))
        func std(_ t: Tensor<Float>) -> Double {
            let values = t.scalars.map(Double.init)
            let mean = values.reduce(0, +) / Double(values.count)
            return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        }
        let (m, d) = (Double(configuration.modelDim), Double(configuration.headDim))
        #expect(abs(std(a.embedding) - 1) < 0.02)
        #expect(abs(std(a.layers[1].attention.wq) * (m * d).squareRoot() - 1) < 0.05)
        #expect(abs(std(a[.layer(1, .key)]) * m.squareRoot() - 1) < 0.05)
        let bound = (3 / m).squareRoot()
        let wi = try #require(a.layers[0].feedForward.mixtureOfExperts).wi
        #expect(wi.scalars.allSatisfy { abs(Double($0)) <= bound })
        #expect(abs(std(wi) - bound / 3.0.squareRoot()) < 0.002)
        #expect(a.finalNorm.scalars.allSatisfy { $0 == 1 })
    }

    @Test(
        "model FLOPs per token: twice the weights a token multiplies (top-2 of the experts, the tied output projection), plus attention's 4·L·T·N·D"
    )
    func modelFLOPsPerToken() throws {
        for named in ModelConfiguration.named {
            let c = named.configuration
            // The weights one token uses, counted from the parameter tensors' shapes: each expert
            // tensor's share for two of E experts; the embedding lookup is free, the output projection
            // (the same V × M matrix) is not.
            var used = 0.0
            for path in ParameterPath.all(in: c) {
                let elements = Double(path.shape(in: c).reduce(1, *))
                switch path {
                case .embedding: used += 0
                case .layer(_, .expertInput), .layer(_, .expertOutput): used += elements * 2 / Double(c.numExperts)
                default: used += elements
                }
            }
            used += Double(c.vocabSize * c.modelDim)
            for t in [1, 128, 2048] {
                let expected = 2 * used + Double(4 * c.numLayers * t * c.numHeads * c.headDim)
                #expect(abs(c.forwardFLOPsPerToken(length: t) / expected - 1) < 1e-12, "\(named.name) T = \(t)")
                #expect(c.trainingFLOPsPerToken(length: t) == 3 * c.forwardFLOPsPerToken(length: t))
            }
        }
    }

    @Test("every parameter of every layer has the documented distribution: its spread, and a uniform's bound, from the table")
    func initialisationOfEveryParameter() throws {
        var c = try namedConfiguration("small")
        c.ffDim = 4 * c.modelDim
        c.moeHiddenDim = 2 * c.modelDim  // every fan-in differs from the model width
        let parameters = try ModelParameters(configuration: c, seed: 3)
        let (m, d, n) = (Double(c.modelDim), Double(c.headDim), Double(c.numHeads))
        for path in ParameterPath.all(in: c) {
            let values = parameters[path].scalars.map(Double.init)
            // (standard deviation, uniform bound): the table of ModelParameters(configuration:seed:).
            let expected: (std: Double, bound: Double?)
            switch path {
            case .embedding: expected = (1, nil)
            case .finalNorm: expected = (0, nil)
            case .layer(_, let weight):
                switch weight {
                case .attentionNorm, .ffnNorm: expected = (0, nil)
                case .query: expected = (1 / (m * d).squareRoot(), nil)
                case .key, .value: expected = (1 / m.squareRoot(), nil)
                case .attentionOutput: expected = (1 / (n * d).squareRoot(), nil)
                case .relativeBias: expected = (1 / (n * Double(c.relativeBuckets)).squareRoot(), nil)
                case .gateProjection, .linearProjection, .router, .expertInput:
                    expected = ((1 / m).squareRoot(), (3 / m).squareRoot())
                case .ffnOutput: expected = ((1 / Double(c.ffDim)).squareRoot(), (3 / Double(c.ffDim)).squareRoot())
                case .expertOutput: expected = ((1 / Double(c.moeHiddenDim)).squareRoot(), (3 / Double(c.moeHiddenDim)).squareRoot())
                }
            }
            let mean = values.reduce(0, +) / Double(values.count)
            let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
            if expected.std == 0 {
                #expect(values.allSatisfy { $0 == 1 }, "\(path.name): a norm scale starts at 1")
                continue
            }
            // The sample spread is within 5 of its standard errors (about σ/√(2n)) of σ.
            #expect(
                abs(std / expected.std - 1) < 5 / (2 * Double(values.count)).squareRoot(),
                "\(path.name): std \(std), expected \(expected.std)")
            if let bound = expected.bound {
                let largest = values.map(abs).max() ?? 0
                #expect(largest <= bound && largest > 0.95 * bound, "\(path.name): largest |w| \(largest), bound \(bound)")
            }
        }
    }

    @Test("parameter paths and file names map one to one for every named configuration, in the documented spelling")
    func parameterNamesRoundTrip() throws {
        for named in ModelConfiguration.named {
            let c = named.configuration
            let paths = ParameterPath.all(in: c)
            #expect(Set(paths).count == paths.count && paths == paths.sorted(), "\(named.name)")
            for path in paths { #expect(ParameterPath(name: path.name) == path, "\(named.name) \(path.name)") }
            // File order is a strict total order: for any two paths exactly one of <, > and == holds.
            if named.name == "tiny" {
                for p in paths {
                    for q in paths { #expect([p < q, q < p, p == q].filter { $0 }.count == 1, "\(p) \(q)") }
                }
            }
            let moeLayers = (0..<c.numLayers).filter(c.isMoELayer).count
            #expect(paths.count == 2 + 7 * c.numLayers + 3 * c.numLayers, "\(named.name)")
            #expect(paths.filter(\.isExpertWeight).count == 2 * moeLayers, "\(named.name)")
        }
        // The spelling of the checkpoint format, written out independently of ParameterPath.
        let expected = [
            "embedding", "layers.0.attention_norm.scale", "layers.0.attention.wq", "layers.0.attention.wk", "layers.0.attention.wv",
            "layers.0.attention.wo", "layers.0.attention.relative_bias", "layers.0.ffn_norm.scale", "layers.0.moe.gate",
            "layers.0.moe.wi", "layers.0.moe.wo", "layers.1.attention_norm.scale", "layers.1.attention.wq", "layers.1.attention.wk",
            "layers.1.attention.wv", "layers.1.attention.wo", "layers.1.attention.relative_bias", "layers.1.ffn_norm.scale",
            "layers.1.ffn.wi_gate", "layers.1.ffn.wi_linear", "layers.1.ffn.wo", "final_norm.scale",
        ]
        #expect(ParameterPath.all(in: tinyConfiguration()).map(\.name) == expected)
        for bad in ["layers.01.moe.wi", "layers.-1.moe.wi", "layers.0.moe.w", "layers..moe.wi", "Embedding", "layers.0", ""] {
            #expect(ParameterPath(name: bad) == nil, "\(bad)")
        }
        // Every small configuration's parameters survive a checkpoint file, path for path.
        let scratch = ScratchDirectory()
        for named in ModelConfiguration.named where named.configuration.vocabSize < 10_000 {
            let parameters = try ModelParameters(configuration: named.configuration, seed: 2)
            let url = scratch.url.appendingPathComponent("\(named.name).safetensors")
            try parameters.write(to: url)
            let file = try SafeTensorsFile(contentsOf: url)
            #expect(Set(file.tensors.keys.filter { $0 != "__metadata__" }) == Set(parameters.paths.map(\.name)), "\(named.name)")
            #expect(try ModelParameters(contentsOf: url) == parameters, "\(named.name)")
        }
    }

    @Test("checkpoints round-trip, and mismatched ones are refused with the reason")
    func checkpoints() throws {
        let scratch = ScratchDirectory()
        let configuration = tinyConfiguration()
        let parameters = try ModelParameters(configuration: configuration, seed: 9)
        let url = scratch.path("model.safetensors")
        try parameters.write(to: url)
        #expect(try ModelParameters(contentsOf: url) == parameters)
        #expect(try ModelParameters(contentsOf: url, expecting: configuration) == parameters)
        func refused(
            _ file: SafeTensorsFile, expecting: ModelConfiguration? = nil, _ fragment: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            do {
                _ = try ModelParameters(file, name: "ckpt", expecting: expecting)
                Issue.record("accepted a bad checkpoint (\(fragment))", sourceLocation: sourceLocation)
            } catch {
                #expect(error.description.contains(fragment), "\(error.description)", sourceLocation: sourceLocation)
            }
        }
        let good = parameters.safeTensorsFile()
        var other = configuration
        other.numHeads = 3
        refused(good, expecting: other, "num_heads (3 vs 2)")
        var missing = good
        missing.tensors["layers.1.ffn.wo"] = nil
        refused(missing, "missing parameter layers.1.ffn.wo")
        var extra = good
        extra.tensors["layers.9.ffn.wo"] = SafeTensor(Tensor<Float>(zeros: [2]))
        refused(extra, "unexpected parameter layers.9.ffn.wo")
        var shape = good
        shape.tensors["embedding"] = SafeTensor(Tensor<Float>(zeros: [11, 7]))
        refused(shape, "embedding has shape [11, 7]")
        var noConfig = good
        noConfig.metadata = [:]
        refused(noConfig, "not a glam checkpoint")
        var badConfig = good
        badConfig.metadata["config"] = "{\"vocab_size\": 3}"
        refused(badConfig, "not a valid model configuration")
        // Training-state entries are ignored by the parameter loader.
        var withOptimizer = good
        withOptimizer.tensors["optimizer.embedding.vr"] = SafeTensor(Tensor<Float>(zeros: [11]))
        #expect(try ModelParameters(withOptimizer, name: "ckpt") == parameters)
    }

    @Test("cached decoding reproduces the full forward pass when nothing is dropped", arguments: [true, false])
    func cachedDecoding(extraLogit: Bool) throws {
        let configuration = ModelConfiguration(
            vocabSize: 50, modelDim: 16, numLayers: 3, numHeads: 2, headDim: 8, ffDim: 24, numExperts: 4, capacityFactor: 16,
            attentionExtraLogit: extraLogit)
        let parameters = try ModelParameters(configuration: configuration, seed: 4)
        let tokens = [3, 17, 42, 8, 8, 0, 49, 23, 11, 5, 30, 2]
        let full: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: tokens.count, tokens: tokens))
        #expect(full.gatings.allSatisfy { $0.routing.overCapacity == [0, 0] })
        var decoder = IncrementalDecoder(parameters: parameters)
        for (position, token) in tokens.enumerated() {
            let step = try decoder.step([token]).scalars
            let expected = Array(full.logits.value.scalars[(position * 50)..<((position + 1) * 50)])
            #expect(zip(step, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "position \(position)")
        }
    }

    @Test("a prompt prefilled in one pass gives the full forward pass's logits bitwise, and decoding goes on from it")
    func prefillEqualsFullPass() throws {
        let configuration = ModelConfiguration(
            vocabSize: 50, modelDim: 16, numLayers: 3, numHeads: 2, headDim: 8, ffDim: 24, numExperts: 4, capacityFactor: 16)
        let parameters = try ModelParameters(configuration: configuration, seed: 4)
        let tokens = [3, 17, 42, 8, 8, 0, 49, 23, 11, 5, 30, 2]
        let full: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: tokens.count, tokens: tokens))
        var decoder = IncrementalDecoder(parameters: parameters)
        let prefilled = try decoder.prefill(Array(tokens.prefix(9)))  // [1, 9, V]
        #expect(prefilled.shape == [1, 9, 50])
        let prefix: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: 9, tokens: Array(tokens.prefix(9))))
        #expect(prefilled.scalars.map(\.bitPattern) == prefix.logits.value.scalars.map(\.bitPattern))
        #expect(decoder.position == 9)
        // The rest, a chunk and then a step: the full pass's logits to rounding (no token was dropped).
        #expect(full.gatings.allSatisfy { $0.routing.overCapacity == [0, 0] })
        let chunk = try decoder.prefill([tokens[9], tokens[10]])
        let step = try decoder.step([tokens[11]])
        let expected = Array(full.logits.value.scalars[(9 * 50)...])
        #expect(zip(chunk.scalars + step.scalars, expected).allSatisfy { abs($0 - $1) < 1e-4 })
        #expect(throws: ModelError.self) { try decoder.prefill([]) }
    }

    @Test("a prompt longer than one prefill chunk generates what the full forward pass predicts, token by token")
    func promptLongerThanOneChunk() throws {
        let configuration = ModelConfiguration(
            vocabSize: 50, modelDim: 16, numLayers: 2, numHeads: 2, headDim: 8, ffDim: 24, numExperts: 4, capacityFactor: 4)
        let parameters = try ModelParameters(configuration: configuration, seed: 9)
        var generator = SeededGenerator(seed: 77)
        let length = IncrementalDecoder.prefillChunk + IncrementalDecoder.prefillChunk / 2 + 3  // two chunks, the second partial
        let prompt = (0..<length).map { _ in Int(generator.next() % 50) }
        let generated = try IncrementalDecoder.generate(parameters: parameters, prompt: prompt, count: 3, strategy: .greedy, seed: 1)
        #expect(generated.count == 3)
        var checked = 0
        for i in 0..<3 {
            let tokens = prompt + generated[..<i]
            let full: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: tokens.count, tokens: tokens))
            #expect(full.gatings.allSatisfy { $0.routing.overCapacity == [0, 0] }, "the full pass dropped tokens")
            let last = Array(full.logits.value.scalars[((tokens.count - 1) * 50)...])
            let order = last.indices.sorted { last[$0] > last[$1] }
            // Chunked prefill routes each chunk as its own group, so logits agree to rounding: compare
            // the choice only where the full pass's top two are clearly apart.
            guard last[order[0]] - last[order[1]] > 1e-3 else { continue }
            #expect(generated[i] == order[0], "token \(i) after a \(tokens.count)-token context")
            checked += 1
        }
        #expect(checked >= 2)
    }

    @Test("two rows decoded together: prefill, a chunk and steps give each row's full forward pass")
    func batchedDecoding() throws {
        // Two rows of different tokens: the cache [B, L, N, D] must keep each row's keys and values apart.
        let configuration = ModelConfiguration(
            vocabSize: 50, modelDim: 16, numLayers: 3, numHeads: 2, headDim: 8, ffDim: 24, numExperts: 4, capacityFactor: 16)
        let parameters = try ModelParameters(configuration: configuration, seed: 4)
        let rows = [[3, 17, 42, 8, 8, 0, 49, 23, 11, 5], [9, 1, 1, 30, 44, 2, 7, 19, 25, 6]]
        var decoder = IncrementalDecoder(parameters: parameters, batchSize: 2)
        let prompt = try decoder.prefill(Array(rows[0][0..<6]) + Array(rows[1][0..<6]))  // [2, 6, V]
        let chunk = try decoder.prefill(Array(rows[0][6..<8]) + Array(rows[1][6..<8]))  // [2, 2, V]
        let step8 = try decoder.step([rows[0][8], rows[1][8]])  // [2, V]
        let step9 = try decoder.step([rows[0][9], rows[1][9]])
        for (r, row) in rows.enumerated() {
            let full: DecoderOutput<Float> = try parameters.constants(TokenBatch(batchSize: 1, length: row.count, tokens: row))
            #expect(full.gatings.allSatisfy { $0.routing.overCapacity == [0, 0] })
            let expected = full.logits.value.scalars  // [1, 10, V]
            var got: [Float] = Array(prompt.scalars[(r * 300)..<((r + 1) * 300)])  // 6 positions × V 50
            got += Array(chunk.scalars[(r * 100)..<((r + 1) * 100)])
            got += Array(step8.scalars[(r * 50)..<((r + 1) * 50)])
            got += Array(step9.scalars[(r * 50)..<((r + 1) * 50)])
            #expect(got.count == expected.count)
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "row \(r)")
        }
    }

    @Test("sampling: greedy, temperature and top-k are seeded and respect k")
    func sampling() throws {
        let parameters = try ModelParameters(configuration: tinyConfiguration(), seed: 2)
        let a = try IncrementalDecoder.generate(
            parameters: parameters, prompt: [1, 2], count: 8, strategy: .temperature(1, topK: 3), seed: 7)
        let b = try IncrementalDecoder.generate(
            parameters: parameters, prompt: [1, 2], count: 8, strategy: .temperature(1, topK: 3), seed: 7)
        #expect(a == b && a.count == 8)
        let greedy = try IncrementalDecoder.generate(parameters: parameters, prompt: [1, 2], count: 5, strategy: .greedy, seed: 0)
        #expect(greedy == (try IncrementalDecoder.generate(parameters: parameters, prompt: [1, 2], count: 5, strategy: .greedy, seed: 99)))
        var generator = SeededGenerator(seed: 1)
        let logits: [Float] = [0, 5, 1, 4, 3]
        for _ in 0..<200 {
            let pick = IncrementalDecoder.choose(from: logits, strategy: .temperature(2, topK: 2), generator: &generator)
            #expect(pick == 1 || pick == 3)
        }
        #expect(IncrementalDecoder.choose(from: logits, strategy: .greedy, generator: &generator) == 1)
        #expect(throws: ModelError.self) {
            try IncrementalDecoder.generate(parameters: parameters, prompt: [11], count: 1, strategy: .greedy, seed: 0)
        }
    }

    @Test("bad batches are refused with a message")
    func badBatches() throws {
        let configuration = tinyConfiguration()
        let p = try ModelParameters(configuration: configuration, seed: 1).constants
        for (batch, fragment) in [
            (TokenBatch(batchSize: 1, length: 2, tokens: [1, 11]), "outside the vocabulary"),
            (TokenBatch(batchSize: 1, length: 3, tokens: [1, 2]), "expected B·T = 3"),
            (TokenBatch(batchSize: 1, length: 2, tokens: [1, 2], targets: [1]), "targets has 1 entries"),
        ] {
            #expect(throws: ModelError.self) { let _: DecoderOutput<Float> = try p(batch) }
            do { let _: DecoderOutput<Float> = try p(batch) } catch {
                #expect(error.description.contains(fragment))
            }
        }
    }
}

extension ModelTests {
    @Test("attention visibility needs exactly B·T segment ids: more or fewer stop the program, a right count runs")
    func visibilityCountIsChecked() async {
        await #expect(processExitsWith: .failure) { _ = attentionVisibility(segmentIDs: [1, 1, 1, 1, 1, 1, 1], batch: 2, length: 3) }
        await #expect(processExitsWith: .failure) { _ = attentionVisibility(segmentIDs: [1, 1, 1, 1, 1], batch: 2, length: 3) }
        await #expect(processExitsWith: .success) {
            let visible = attentionVisibility(segmentIDs: [1, 1, 1, 1, 1, 1], batch: 2, length: 3)
            if visible.count != 18 { exit(3) }
        }
    }

    @Test("top-k sampling only ever picks one of the k most probable tokens (the lower id first among equals); k = 1 is greedy")
    func topKPicksAmongTheTopK() {
        var generator = SeededGenerator(seed: 17)
        let logits: [Float] = [0.5, 2, -1, 2, 0.25, 3, 1, 0]  // ranked: 5, 1, 3 (tie: 1 first), 6, 0, 4, 7, 2
        let ranked = [5, 1, 3, 6, 0, 4, 7, 2]
        for k in 1...logits.count {
            var seen = Set<Int>()
            for _ in 0..<400 {
                seen.insert(IncrementalDecoder.choose(from: logits, strategy: .temperature(2, topK: k), generator: &generator))
            }
            #expect(seen.isSubset(of: Set(ranked.prefix(k))), "k = \(k): \(seen.sorted())")
            #expect(k > 3 || seen == Set(ranked.prefix(k)), "k = \(k): each of the top k is drawn at temperature 2")
        }
        #expect(IncrementalDecoder.choose(from: logits, strategy: .temperature(1, topK: 1), generator: &generator) == 5)
    }
}

extension ModelTests {
    @Test(
        "decoding's causal softmax has the bits of the general masked softmax with the gathered bias, and is a softmax with the extra zero logit",
        arguments: [(true, 0, 5), (false, 0, 5), (true, 7, 1), (true, 130, 19), (false, 300, 3)])
    func causalSoftmaxEqualsTheGeneralPath(extraLogit: Bool, firstQuery: Int, queries t: Int) throws {
        let configuration = ModelConfiguration(
            vocabSize: 50, modelDim: 16, numLayers: 1, numHeads: 3, headDim: 8, ffDim: 24, numExperts: 0, attentionExtraLogit: extraLogit)
        let (b, n, l) = (2, 3, firstQuery + t)
        var generator = SeededGenerator(seed: UInt64(firstQuery * 31 + t))
        // Logits up to ±40 (some rows' maximum below 0, some far above), a bias table of 32 buckets.
        let scores = Tensor<Float>(
            shape: [b, n, t, l], scalars: (0..<(b * n * t * l)).map { _ in Float.random(in: -40...40, using: &generator) })
        let bias = Tensor<Float>(shape: [n, 32], scalars: (0..<(n * 32)).map { _ in Float.random(in: -3...3, using: &generator) })
        // The distance buckets as a decoding context without an observer computes them.
        let buckets = ForwardContext<Float>(decodingAt: firstQuery, batchSize: b, length: t, configuration: configuration).distanceBuckets
        let fast = Tensor.causalSoftmax(
            scores, relativeBias: bias, firstQuery: firstQuery, bucketOfDistance: buckets, extraZeroLogit: extraLogit)
        // The general path: visibility and buckets as a decoding context with an observer builds them.
        let context = ForwardContext<Float>(
            decodingAt: firstQuery, batchSize: b, length: t, configuration: configuration, observer: ForwardTrace())
        #expect(context.causalStart == nil && context.visible.count == b * t * l)
        let gathered = Variable(constant: bias).gatheringColumns(context.buckets, shape: [t, l])
        let general = Variable(constant: scores).maskedSoftmax(adding: gathered, visible: context.visible, extraZeroLogit: extraLogit).value
        #expect(fast.scalars.map(\.bitPattern) == general.scalars.map(\.bitPattern))
        // And what it is, recomputed in Double: each row sums to 1 minus the extra logit's share,
        // keys after the query get 0.
        for row in 0..<(b * n * t) {
            let (head, query) = ((row / t) % n, firstQuery + row % t)
            let logits = (0...query).map {
                Double(scores.scalars[row * l + $0])
                    + Double(bias.scalars[head * 32 + relativePositionBucket(distance: query - $0, buckets: 32, maxDistance: 128)])
            }
            let peak = max(extraLogit ? 0 : -Double.infinity, logits.max()!)
            let total = (extraLogit ? exp(-peak) : 0) + logits.reduce(0) { $0 + exp($1 - peak) }
            for key in 0..<l {
                let expected = key <= query ? exp(logits[key] - peak) / total : 0
                #expect(abs(Double(fast.scalars[row * l + key]) - expected) <= 2e-6, "row \(row) key \(key)")
            }
        }
    }
}
