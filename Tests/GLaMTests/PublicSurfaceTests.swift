// Public declarations that no other test called (Scripts/coverage/report.py lists them), each
// checked against what its documentation says.

import Foundation
import Testing

@testable import GLaM

struct PublicSurfaceTests {
    @Test("the communication ledger's total is the sum of what every axis and core sent, and reset empties it")
    func ledgerTotalsAndReset() {
        let ledger = CommunicationLedger()
        ledger.record(axis: "data", core: 0, bytes: 100, coreCount: 2)
        ledger.record(axis: "data", core: 1, bytes: 30, coreCount: 2)
        ledger.record(axis: "mdl", core: 1, bytes: 7, coreCount: 2)
        ledger.record(axis: "data", core: 0, bytes: 5, coreCount: 2)
        #expect(ledger.bytesSent(along: "data", coreCount: 2) == [105, 30])
        #expect(ledger.totalBytes == 142)
        ledger.reset()
        #expect(ledger.totalBytes == 0 && ledger.bytesSent(along: "data", coreCount: 2) == [0, 0])
    }

    @Test("a model's feed-forward blocks are MoE exactly on the configuration's MoE layers")
    func feedForwardKinds() throws {
        for experts in [0, 4] {
            let configuration = tinyConfiguration(experts: experts)
            let model = try ModelParameters(configuration: configuration, seed: 1).constants
            #expect(model.layers.indices.map { model.layers[$0].feedForward.isMoE } == model.layers.indices.map(configuration.isMoELayer))
        }
    }

    @Test("a fixture result passes exactly when every comparison passes")
    func fixtureResultPassed() throws {
        let url = fixturesDirectory.appendingPathComponent("moe/top2_gating_spec_cf1.safetensors")
        let good = try GoldenFixture(try SafeTensorsFile(contentsOf: url), name: url.path).run()
        #expect(good.passed && !good.comparisons.isEmpty && good.comparisons.allSatisfy(\.passed))
        var file = try SafeTensorsFile(contentsOf: url)
        let aux = try #require(file.tensors["expected.aux_loss"]).floatTensor()
        file.tensors["expected.aux_loss"] = SafeTensor(aux + 1)
        let bad = try GoldenFixture(file, name: "perturbed").run()
        #expect(!bad.passed && bad.comparisons.filter { !$0.passed }.count == 1)
    }

    @Test("updating one parameter replaces that tensor and no other")
    func parameterUpdate() throws {
        var parameters = try ModelParameters(configuration: tinyConfiguration(experts: 4), seed: 2)
        let before = parameters
        let path = try #require(parameters.paths.first { $0.name == "final_norm.scale" })
        let replacement = Tensor<Float>(shape: parameters[path].shape, scalars: (0..<parameters[path].scalarCount).map(Float.init))
        parameters.update(path, to: replacement)
        #expect(parameters[path] == replacement)
        #expect(parameters.paths.filter { $0 != path }.allSatisfy { parameters[$0] == before[$0] })
    }

    @Test("a key/value cache's length is the positions appended to it")
    func cacheLength() {
        var cache = KeyValueCache<Float>(batch: 2, heads: 3, depth: 4)
        #expect(cache.length == 0)
        cache.append(keys: Tensor(zeros: [2, 5, 3, 4]), values: Tensor(zeros: [2, 5, 3, 4]))
        #expect(cache.length == 5)
    }

    @Test("tensor products with a scalar on either side equal the broadcast product; mean along an axis is sum over count")
    func tensorArithmetic() {
        let x = Tensor<Double>(shape: [2, 3], scalars: [1, -2, 3, 4.5, 0, -6])
        let three = Tensor<Double>(3)
        #expect((x * 3).scalars == x.scalars.map { $0 * 3 } && (3 * x).scalars == (x * three).scalars)
        #expect((x * x).scalars == x.scalars.map { $0 * $0 })
        // The axis is kept with size 1.
        #expect(x.mean(alongAxis: 1).scalars == [(1 - 2 + 3) / 3, (4.5 + 0 - 6) / 3] && x.mean(alongAxis: 1).shape == [2, 1])
        #expect(x.mean(alongAxis: 0).scalars == [2.75, -1, -1.5])
        #expect(x.description.contains("[2, 3]"))
    }

    @Test("token routes compare equal exactly when they describe the same route")
    func routeEquality() throws {
        let configuration = Top2GatingConfiguration(numExperts: 3, capacityFactor: 1)
        let logits = Tensor<Double>(shape: [1, 4, 3], scalars: [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0.5, 0])
        let gating = try top2Gating(logits: Variable(constant: logits), paddings: nil, configuration: configuration)
        let a = MoELayerTrace(layer: 0, gating: gating, paddings: nil, configuration: configuration)
        let b = MoELayerTrace(layer: 0, gating: gating, paddings: nil, configuration: configuration)
        #expect(a.tokens == b.tokens)
        #expect(a.tokens[0] != a.tokens[1] && a.tokens[0] == a.tokens[0])
    }
}
