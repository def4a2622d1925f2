// The virtual mesh: coordinates and groups, and each collective against its definition, with the
// bytes it counts.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct MeshTests {
    @Test("coordinates are row-major; groups differ along one axis only")
    func coordinatesAndGroups() throws {
        let mesh = try DeviceMesh(shape: [2, 3], axisNames: ["data", "mdl"])
        #expect(mesh.coreCount == 6 && mesh.coordinates(of: 4) == [1, 1] && mesh.core(at: [1, 2]) == 5)
        #expect(mesh.group(of: 4, along: try mesh.axis("data")) == [1, 4])
        #expect(mesh.group(of: 4, along: try mesh.axis("mdl")) == [3, 4, 5])
        #expect(mesh.groups(along: 1) == [[0, 1, 2], [3, 4, 5]])
        #expect(throws: MeshError.self) { try mesh.axis("replica") }
        #expect(throws: MeshError.self) { try DeviceMesh(shape: [2, 0], axisNames: ["data", "mdl"]) }
        #expect(throws: MeshError.self) { try DeviceMesh(shape: [2], axisNames: ["data", "mdl"]) }
        #expect(throws: MeshError.self) { try DeviceMesh(shape: [2, 2], axisNames: ["data", "data"]) }
        #expect(mesh.run { $0 * 10 } == [0, 10, 20, 30, 40, 50])
    }

    static func shards(_ mesh: DeviceMesh, shape: [Int]) -> [Tensor<Float>] {
        (0..<mesh.coreCount).map { core in
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(core * 100 + $0) })
        }
    }

    @Test("all-reduce: every member gets the group's sum; bytes as a ring")
    func allReduce() throws {
        let mesh = try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"])
        let ledger = CommunicationLedger()
        let x = Self.shards(mesh, shape: [3])
        let out = try mesh.allReduce(x, along: "data", ledger: ledger)
        #expect(out[0] == x[0] + x[2] && out[2] == out[0] && out[1] == x[1] + x[3] && out[3] == out[1])
        #expect(ledger.bytesSent(along: "data", coreCount: 4) == [12, 12, 12, 12])  // 2·(2−1)/2·12 bytes
        #expect(ledger.bytesSent(along: "mdl", coreCount: 4) == [0, 0, 0, 0])
        #expect(throws: MeshError.self) { try mesh.allReduce(Array(x.prefix(3)), along: "data") }
    }

    @Test("all-reduce over 3 and 4 cores sums in increasing coordinate order, shown bitwise where float order matters")
    func allReduceOrder() throws {
        // 1 + 1e8 − 1e8 is 0 in Float when summed left to right and 1 when summed right to left.
        for (shape, axis) in [([3], "x"), ([2, 3], "y"), ([4], "x")] {
            let names = shape.count == 1 ? ["x"] : ["x", "y"]
            let mesh = try DeviceMesh(shape: shape, axisNames: names)
            let axisIndex = try #require(names.firstIndex(of: axis))
            let size = shape[axisIndex]
            let values: [Float] = size == 3 ? [1, 1e8, -1e8] : [1, 1e8, -1e8, 0.5]
            let shards = (0..<mesh.coreCount).map { core in Tensor<Float>([values[mesh.coordinates(of: core)[axisIndex]]]) }
            let reduced = try mesh.allReduce(shards, along: axis)
            var leftToRight: Float = values[0]
            for value in values.dropFirst() { leftToRight += value }
            var rightToLeft: Float = values[values.count - 1]
            for value in values.dropLast().reversed() { rightToLeft += value }
            #expect(leftToRight != rightToLeft, "the values must make the order visible")
            for shard in reduced { #expect(shard.scalars[0].bitPattern == leftToRight.bitPattern, "\(shape) along \(axis)") }
        }
    }

    @Test("all-gather and reduce-scatter: gather joins in coordinate order; scatter sums then splits")
    func gatherAndScatter() throws {
        let mesh = try DeviceMesh(shape: [4], axisNames: ["data"])
        let ledger = CommunicationLedger()
        let x = Self.shards(mesh, shape: [2, 2])
        let gathered = try mesh.allGather(x, along: "data", concatenatingAlong: 0, ledger: ledger)
        #expect(gathered.allSatisfy { $0 == Tensor.concatenated(x, alongAxis: 0) } && gathered[0].shape == [8, 2])
        #expect(ledger.bytesSent(along: "data", coreCount: 4) == [48, 48, 48, 48])  // (4−1)·16 bytes
        let scattered = try mesh.reduceScatter(gathered, along: "data", splittingAlong: 0)
        for k in 0..<4 { #expect(scattered[k] == x[k] * 4) }  // the sum of four equal copies, part k
    }

    @Test("every collective along an axis of one core returns each shard as it is and sends nothing")
    func oneCoreAxis() throws {
        let mesh = try DeviceMesh(shape: [1, 3], axisNames: ["data", "mdl"])
        let ledger = CommunicationLedger()
        let x = Self.shards(mesh, shape: [2, 4])
        #expect(try mesh.allReduce(x, along: "data", ledger: ledger) == x)
        #expect(try mesh.allGather(x, along: "data", concatenatingAlong: 0, ledger: ledger) == x)
        #expect(try mesh.reduceScatter(x, along: "data", splittingAlong: 1, ledger: ledger) == x)
        #expect(try mesh.allToAll(x, along: "data", splitDimension: 1, concatDimension: 0, ledger: ledger) == x)
        #expect(ledger.totalBytes == 0 && ledger.bytesSent(along: "data", coreCount: 3) == [0, 0, 0])
        // Along the other axis the same calls do move data.
        _ = try mesh.allReduce(x, along: "mdl", ledger: ledger)
        #expect(ledger.bytesSent(along: "mdl", coreCount: 3).allSatisfy { $0 > 0 })
    }

    @Test("all-to-all moves chunk j of every core to core j; the reverse all-to-all undoes it")
    func allToAll() throws {
        let mesh = try DeviceMesh(shape: [2, 2], axisNames: ["data", "mdl"])
        let ledger = CommunicationLedger()
        // G-sharded [G_local = 1, E = 2, C = 1, M = 3]: after the all-to-all, E-sharded [G = 2, E_local = 1, …].
        let x = Self.shards(mesh, shape: [1, 2, 1, 3])
        let y = try mesh.allToAll(x, along: "data", splitDimension: 1, concatDimension: 0, ledger: ledger)
        #expect(y[0].shape == [2, 1, 1, 3])
        // Core 0 (data 0) holds expert 0 of groups from cores 0 and 2.
        #expect(y[0] == Tensor.concatenated([x[0].split(alongAxis: 1, into: 2)[0], x[2].split(alongAxis: 1, into: 2)[0]], alongAxis: 0))
        #expect(try mesh.allToAll(y, along: "data", splitDimension: 0, concatDimension: 1) == x)
        #expect(ledger.bytesSent(along: "data", coreCount: 4) == [12, 12, 12, 12])  // half of 24 bytes
        #expect(throws: MeshError.self) { try mesh.allToAll(x, along: "data", splitDimension: 3, concatDimension: 0) }
    }

    @Test("split and concatenate are inverse along any axis")
    func splitConcatenate() {
        let t = Tensor<Float>(shape: [2, 6, 3], scalars: (0..<36).map(Float.init))
        for axis in 0..<3 where t.shape[axis] % 2 == 0 {
            #expect(Tensor.concatenated(t.split(alongAxis: axis, into: 2), alongAxis: axis) == t)
        }
        #expect(t.split(alongAxis: 1, into: 3)[1] == Tensor(shape: [2, 2, 3], scalars: [6, 7, 8, 9, 10, 11, 24, 25, 26, 27, 28, 29]))
    }
}

struct ExpertParallelTests {
    @Test(
        "expert-parallel MoE forward equals one device bitwise (meshes 1, 2, 4 and 2×2), and counts its all-to-all bytes",
        arguments: [([1], ["data"]), ([2], ["data"]), ([4], ["data"]), ([2, 2], ["data", "mdl"])])
    func equalsSingleDevice(shape: [Int], names: [String]) throws {
        let (b, t, m, h, e, g) = (4, 8, 16, 24, 4, 4)
        var generator = SeededGenerator(seed: 77)
        let x = Tensor<Float>.randomNormal(shape: [b, t, m], generator: &generator)
        let gate = Tensor<Float>.randomUniform(shape: [m, e], bound: 1.5, generator: &generator)
        let wi = Tensor<Float>.randomUniform(shape: [e, m, h], bound: 0.4, generator: &generator)
        let wo = Tensor<Float>.randomUniform(shape: [e, h, m], bound: 0.3, generator: &generator)
        var paddings = Tensor<Float>(zeros: [b, t])
        paddings[1, 7] = 1
        paddings[3, 0] = 1
        let configuration = MoELayerConfiguration(
            gating: Top2GatingConfiguration(numExperts: e, capacityFactor: 1.0), numGroups: g, activation: .geluTanh)
        let single = try MoEWeights(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))(
            Variable(constant: x), paddings: paddings, configuration: configuration)
        #expect(single.gating.routing.overCapacity[0] > 0 || single.gating.routing.overCapacity[1] > 0)  // drops happen

        let mesh = try DeviceMesh(shape: shape, axisNames: names)
        let n = shape[0]
        let groupsOfX = x.reshaped(to: [g, b * t / g, m]).split(alongAxis: 0, into: n)
        let groupsOfPaddings = paddings.reshaped(to: [g, b * t / g]).split(alongAxis: 0, into: n)
        let coordinate = { (core: Int) in mesh.coordinates(of: core)[0] }
        let ledger = CommunicationLedger()
        let result = try mesh.expertParallelMoEForward(
            inputs: (0..<mesh.coreCount).map { groupsOfX[coordinate($0)] },
            paddings: (0..<mesh.coreCount).map { groupsOfPaddings[coordinate($0)] }, gate: gate, wi: wi, wo: wo,
            configuration: configuration, ledger: ledger)
        let expected = single.output.value.reshaped(to: [g, b * t / g, m]).split(alongAxis: 0, into: n)
        for core in 0..<mesh.coreCount {
            #expect(result.outputs[core].scalars.map(\.bitPattern) == expected[coordinate(core)].scalars.map(\.bitPattern), "core \(core)")
        }
        #expect(abs(result.auxLoss - single.gating.auxLoss.value.scalar) <= 1e-6)
        // Two all-to-alls of [E, G/n, C, M] floats, (n−1)/n of each leaving the core.
        let c = single.gating.routing.capacity
        let perCore = n == 1 ? 0 : 2 * (n - 1) * (e * (g / n) * c * m * 4) / n
        #expect(ledger.bytesSent(along: "data", coreCount: mesh.coreCount) == [Int](repeating: perCore, count: mesh.coreCount))
    }

    @Test("a mesh that does not divide the experts or the groups is refused")
    func indivisible() throws {
        let mesh = try DeviceMesh(shape: [3], axisNames: ["data"])
        let configuration = MoELayerConfiguration(gating: Top2GatingConfiguration(numExperts: 4), numGroups: 3, activation: .relu)
        let x = [Tensor<Float>](repeating: Tensor(zeros: [1, 2, 2]), count: 3)
        #expect(throws: MeshError.self) {
            try mesh.expertParallelMoEForward(
                inputs: x, paddings: nil, gate: Tensor(zeros: [2, 4]), wi: Tensor(zeros: [4, 2, 2]), wo: Tensor(zeros: [4, 2, 2]),
                configuration: configuration)
        }
    }
}

struct PlannerTests {
    @Test("glam-64b-64e on 1,024 chips: about 180 GFLOPs per token for inference (paper Table 1), fits in HBM")
    func paperScale() throws {
        let plan = try planTrainingStep(try namedConfiguration("glam-64b-64e"), dataCores: 64, modelCores: 16)
        // 2 × 94.5B activated weights = 189 GFLOP, + output projection and attention: 197.5; the paper rounds to ~180.
        #expect(plan.inferenceFLOPsPerToken / 1e9 > 170 && plan.inferenceFLOPsPerToken / 1e9 < 200)
        #expect(plan.trainingFLOPsPerToken == 3 * plan.inferenceFLOPsPerToken)
        #expect(plan.parameterBytesPerCore + plan.optimizerBytesPerCore < TPUv4.hbmBytes)
        // Experts are split over all 1,024 chips: 1.1T × 4 B / 1024 ≈ 4.3 GB of the 19.9 GB per chip.
        #expect(abs(plan.parameterBytesPerCore / 1e9 - 19.86) < 0.01)
        // One chip has no peers: no communication.
        // A step of no tokens, or sequences of no length, is refused, not planned as zeros or NaN.
        for (d, m) in [(0, 1), (1, 0), (-2, 1), (1, -2)] {
            #expect(throws: MeshError.self, "\(d)x\(m)") {
                try planTrainingStep(try namedConfiguration("glam-0.1b-64e"), dataCores: d, modelCores: m)
            }
        }
        // The refusal names what is missing (not a later symptom such as a batch of no sequences).
        for (tokens, length) in [(0, 1024), (-1024, 1024), (1024, 0), (0, 0), (-1, -1)] {
            do {
                let plan = try planTrainingStep(
                    try namedConfiguration("glam-0.1b-64e"), dataCores: 1, modelCores: 1, tokensPerStep: tokens, length: length)
                Issue.record("\(tokens) tokens of length \(length) were planned: \(plan.allToAllBytesPerCore)")
            } catch {
                #expect(
                    "\(error)" == "a step needs at least one token and a length of at least 1",
                    "\(tokens) tokens of length \(length): \(error)")
            }
        }
        _ = try planTrainingStep(try namedConfiguration("glam-0.1b-64e"), dataCores: 1, modelCores: 1, tokensPerStep: 1, length: 1)
        let alone = try planTrainingStep(try namedConfiguration("glam-0.1b-64e"), dataCores: 1, modelCores: 1)
        #expect(alone.allToAllBytesPerCore == 0 && alone.allReduceBytesPerCore == 0)
    }

    @Test("a run's energy: FLOPs = per token × tokens, chip-hours at the assumed share of peak, energy = chip-hours × watts × PUE")
    func trainingEnergy() throws {
        let assumptions = EnergyAssumptions(utilisation: 0.25, chipWatts: 400, powerUsageEffectiveness: 1.2)
        let run = try TrainingEnergyEstimate(trainingFLOPsPerToken: 6e9, tokens: 1e12, chips: 512, assumptions: assumptions)
        #expect(run.flops == 6e21)
        // 6e21 / (275e12 · 0.25) = 8.727e7 chip-seconds; on 512 chips 47.3 h; × 400 W × 1.2 = 41.9 MWh.
        #expect(abs(run.chipSeconds - 6e21 / (275e12 * 0.25)) <= 1e-6 * run.chipSeconds)
        #expect(abs(run.hours - run.chipSeconds / 512 / 3600) <= 1e-9 * run.hours)
        #expect(abs(run.megawattHours - run.chipSeconds * 400 * 1.2 / 3.6e9) <= 1e-9 * run.megawattHours)
        // Each assumption scales the estimate as the formula says, and nothing else does.
        let twice = try TrainingEnergyEstimate(trainingFLOPsPerToken: 6e9, tokens: 2e12, chips: 512, assumptions: assumptions)
        #expect(abs(twice.megawattHours / run.megawattHours - 2) < 1e-12 && abs(twice.hours / run.hours - 2) < 1e-12)
        let moreChips = try TrainingEnergyEstimate(trainingFLOPsPerToken: 6e9, tokens: 1e12, chips: 1024, assumptions: assumptions)
        #expect(moreChips.megawattHours == run.megawattHours && abs(run.hours / moreChips.hours - 2) < 1e-12)
        var better = assumptions
        better.utilisation = 0.5
        let faster = try TrainingEnergyEstimate(trainingFLOPsPerToken: 6e9, tokens: 1e12, chips: 512, assumptions: better)
        #expect(abs(run.megawattHours / faster.megawattHours - 2) < 1e-12)
        for bad in [
            EnergyAssumptions(utilisation: 0, chipWatts: 326, powerUsageEffectiveness: 1.1),
            EnergyAssumptions(utilisation: 1.5, chipWatts: 326, powerUsageEffectiveness: 1.1),
            EnergyAssumptions(utilisation: 0.3, chipWatts: -1, powerUsageEffectiveness: 1.1),
            EnergyAssumptions(utilisation: 0.3, chipWatts: 326, powerUsageEffectiveness: 0.9),
        ] {
            #expect(throws: MeshError.self) { try TrainingEnergyEstimate(trainingFLOPsPerToken: 1, tokens: 1, chips: 1, assumptions: bad) }
        }
        // Each count must be positive (and finite): zero, negative or infinite work is refused.
        for (flops, tokens, chips) in [(0.0, 1.0, 1), (-1, 1, 1), (.infinity, 1, 1), (1, 0, 1), (1, -1, 1), (1, .infinity, 1), (1, 1, 0)] {
            #expect(throws: MeshError.self, "\(flops) \(tokens) \(chips)") {
                try TrainingEnergyEstimate(trainingFLOPsPerToken: flops, tokens: tokens, chips: chips)
            }
        }
        #expect(try TrainingEnergyEstimate(trainingFLOPsPerToken: .leastNonzeroMagnitude, tokens: 1, chips: 1).megawattHours >= 0)
        // glam plan prints it under the plan, with the assumptions it used, and refuses them without --train-tokens.
        let printed = runGlam(["plan", "--config", "glam-64b-64e", "--mesh", "64x16", "--train-tokens", "6e11", "--utilisation", "0.25"])
        let plan = try planTrainingStep(try namedConfiguration("glam-64b-64e"), dataCores: 64, modelCores: 16)
        let expected = try TrainingEnergyEstimate(
            trainingFLOPsPerToken: plan.trainingFLOPsPerToken, tokens: 6e11, chips: 1024,
            assumptions: EnergyAssumptions(utilisation: 0.25, chipWatts: 326, powerUsageEffectiveness: 1.1))
        #expect(printed.status == 0 && expected.explanation.allSatisfy { printed.out.contains($0) }, "\(printed.out)")
        #expect(runGlam(["plan", "--config", "tiny", "--mesh", "1x1", "--pue", "1.2"]).err.contains("--pue needs --train-tokens"))
        #expect(runGlam(["plan", "--config", "tiny", "--mesh", "1x1", "--train-tokens", "1e6", "--utilisation", "2"]).status == 2)
        #expect(runGlam(["plan", "--config", "tiny", "--mesh", "1x1", "--train-tokens", "lots"]).status == 2)
        // --train-tokens takes 1 through 1e16 tokens, both ends included.
        for (tokens, accepted) in [("1", true), ("0.999", false), ("0", false), ("1e16", true), ("1.0000001e16", false), ("-5", false)] {
            let result = runGlam(["plan", "--config", "tiny", "--mesh", "1x1", "--train-tokens", tokens])
            #expect(result.status == (accepted ? 0 : 2), "--train-tokens \(tokens): \(result.err)")
            #expect(accepted || result.err.contains("--train-tokens must be in 1...1e16, got '\(tokens)'"), "\(result.err)")
        }
    }

    @Test("a step's tokens must be whole sequences shared evenly over data: any other split is refused")
    func stepTokensAreWholeSequences() throws {
        let c = try namedConfiguration("glam-0.1b-64e")
        _ = try planTrainingStep(c, dataCores: 4, modelCores: 1, tokensPerStep: 4 * 1024, length: 1024)
        for (tokens, length, d) in [(1000, 3, 1), (4 * 1024 + 1, 1024, 1), (3 * 1024, 1024, 2), (1024, 1024, 4)] {
            #expect(throws: MeshError.self, "\(tokens) tokens, T = \(length), d = \(d)") {
                try planTrainingStep(c, dataCores: d, modelCores: 1, tokensPerStep: tokens, length: length)
            }
        }
    }

    @Test("plan --against: the inference FLOPs per token over another configuration's, both counted at the same length")
    func inferenceFLOPsAgainstDense() throws {
        let moe = try planTrainingStep(try namedConfiguration("glam-64b-64e"), dataCores: 64, modelCores: 16)
        let dense = try planTrainingStep(try namedConfiguration("glam-137b"), dataCores: 1, modelCores: 1, tokensPerStep: 1024)
        let ratio = moe.inferenceFLOPsPerToken / dense.inferenceFLOPsPerToken
        #expect(ratio > 0.6 && ratio < 0.8, "GLaM 64B/64E reads about 0.7 of the 137B dense model's weights per token")
        let printed = runGlam(["plan", "--config", "glam-64b-64e", "--mesh", "64x16", "--against", "glam-137b"])
        #expect(printed.status == 0 && printed.out.contains("against glam-137b: ") && printed.out.contains(String(format: "= %.3f", ratio)))
        #expect(runGlam(["plan", "--config", "tiny", "--mesh", "1x1", "--against", "gpt-3"]).err.contains("unknown configuration 'gpt-3'"))
        #expect(runGlam(["plan", "--virtual", "--config", "tiny", "--mesh", "1x1", "--against", "tiny"]).status == 2)
        let tokens = runGlam(["plan", "--virtual", "--config", "tiny", "--mesh", "1x1", "--tokens", "64"])
        #expect(tokens.status == 2 && tokens.err.contains("--virtual takes --batch and --length, not --tokens"), "\(tokens.err)")
    }

    @Test("the README's planner table follows from the stated cost model, recomputed here by hand")
    func readmeTable() throws {
        // (model, d, m, GFLOP/token, GB per chip, all-to-all GB, all-reduce GB, step seconds), as printed in the README.
        let rows: [(String, Int, Int, Double, Double, Double, Double, Double)] = [
            ("glam-0.1b-64e", 64, 1, 0.69, 1.19, 1.19, 2.11, 0.135), ("glam-1.7b-64e", 64, 4, 4.88, 1.94, 1.59, 7.85, 0.251),
            ("glam-8b-64e", 64, 8, 22.0, 4.29, 2.11, 21.4, 0.573), ("glam-64b-64e", 64, 16, 197.5, 19.9, 4.23, 95.1, 2.55),
        ]
        let (tokens, t) = (Double(1 << 20), 1024.0)
        for (name, d, m, flops, memory, allToAll, allReduce, seconds) in rows {
            let c = try namedConfiguration(name)
            let count = ParameterCount(c)
            let (dd, mm, e, mDim, l) = (Double(d), Double(m), Double(c.numExperts), Double(c.modelDim), Double(c.numLayers))
            // 2 FLOPs per activated weight outside the lookup, the V·M output projection, 4·T·N·D per layer.
            let forward =
                2 * (Double(count.activated - count.embedding) + Double(c.vocabSize * c.modelDim))
                + 4 * t * Double(c.numHeads * c.headDim) * l
            let expertWeights = l / 2 * e * 2 * mDim * Double(c.moeHiddenDim)
            let others = Double(count.total) - expertWeights
            // Adafactor: factored [M, H] per expert → M + H; others counted from their shapes.
            var statistics = l / 2 * e * 2 * (mDim + Double(c.moeHiddenDim)) / (dd * mm)
            for path in ParameterPath.all(in: c) where !path.isExpertWeight {
                let shape = path.shape(in: c)
                let factored = shape.count == 2 && shape.allSatisfy { $0 >= 128 }
                statistics += Double(factored ? shape[0] + shape[1] : shape.reduce(1, *)) / mm
            }
            let bytes = 4 * (expertWeights / (dd * mm) + others / mm + statistics)
            let capacity = tokens / dd * 2 / e  // one group per data core, capacity factor 2
            let dispatch = l / 2 * 4 * (e * capacity * mDim / mm * 2) * (dd - 1) / dd
            let reduce = 2 * (dd - 1) / dd * 4 * others / mm + l / 2 * 2 * 2 * (mm - 1) / mm * (e / dd * dd * capacity * mDim * 2)
            let step = 3 * forward * tokens / (dd * mm * 275e12) + bytes / 1.2e12 + (dispatch + reduce) / 300e9
            func near(_ value: Double, _ printed: Double) -> Bool { abs(value - printed) <= 0.006 * printed }
            #expect(near(forward / 1e9, flops) && near(bytes / 1e9, memory), "\(name)")
            #expect(near(dispatch / 1e9, allToAll) && near(reduce / 1e9, allReduce) && near(step, seconds), "\(name)")
            // And the planner agrees with both.
            let plan = try planTrainingStep(c, dataCores: d, modelCores: m)
            #expect(near(plan.inferenceFLOPsPerToken / 1e9, flops), "\(name)")
            #expect(near((plan.parameterBytesPerCore + plan.optimizerBytesPerCore) / 1e9, memory), "\(name)")
            // Each part on its own, against the recomputation above (the statistics are a small
            // share of the total, so the sum alone would hide an error in them).
            func same(_ x: Double, _ y: Double) -> Bool { abs(x - y) <= 1e-9 * y }
            #expect(same(plan.parameterBytesPerCore, 4 * (expertWeights / (dd * mm) + others / mm)), "\(name)")
            #expect(same(plan.optimizerBytesPerCore, 4 * statistics), "\(name): \(plan.optimizerBytesPerCore) vs \(4 * statistics)")
            #expect(near(plan.allToAllBytesPerCore / 1e9, allToAll) && near(plan.allReduceBytesPerCore / 1e9, allReduce), "\(name)")
            #expect(near(plan.stepSeconds, seconds), "\(name)")
        }
    }

    @Test("a mesh that does not divide the experts or the expert hidden size is refused; the command shows its arithmetic")
    func refusals() {
        #expect(throws: MeshError.self) { try planTrainingStep(try namedConfiguration("glam-64b-64e"), dataCores: 48, modelCores: 16) }
        #expect(throws: MeshError.self) { try planTrainingStep(try namedConfiguration("glam-64b-64e"), dataCores: 64, modelCores: 7) }
        let ok = runGlam(["plan", "--config", "glam-64b-64e", "--mesh", "64x16"])
        #expect(ok.status == 0 && ok.out.contains("inference FLOPs/token") && ok.out.contains("1024 chips"))
        #expect(runGlam(["plan", "--config", "glam-64b-64e", "--mesh", "48x16"]).status == 2)
        #expect(runGlam(["plan", "--config", "glam-64b-64e", "--mesh", "64by16"]).err.contains("--mesh must be DATAxMDL"))
    }

    @Test("the expert partial sums over mdl are 2 × [E/d, G·C, M] floats per MoE layer, also when d does not divide M")
    func expertAllReduceBytes() throws {
        var c = try namedConfiguration("small")
        c.numExperts = 6  // d = 3 divides E = 6 but not M = 256
        let (b, t, g, d, m) = (6, 64, 6, 3, 2)
        let step = try stepCommunication(c, batchSize: b, length: t, groups: g, dataCores: d, modelCores: m)
        let capacity = try c.gating.capacity(groupSize: b * t / g)
        let floats = (c.numExperts / d) * g * capacity * c.modelDim
        // A ring all-reduce over m cores sends 2(m − 1)/m of the buffer from each core.
        let expected = c.moeLayers.count * 2 * (2 * (m - 1) * floats * 4 / m)
        #expect(c.modelDim % d != 0 && step.expertAllReduce == expected, "\(step.expertAllReduce) vs \(expected)")
    }

    @Test("the all-to-all and the expert partial sums are counted once per MoE layer: 1, 2 or 3 MoE layers, the bytes of one times that")
    func communicationPerMoELayer() throws {
        var perLayer: (allToAll: Int, expert: Int)?
        for layers in [2, 4, 6] {  // MoE every other layer: 1, 2 and 3 MoE layers
            var c = try namedConfiguration("small")
            c.numLayers = layers
            let moeLayers = c.moeLayers.count
            #expect(moeLayers == layers / 2)
            let step = try stepCommunication(c, batchSize: 8, length: 64, groups: 4, dataCores: 2, modelCores: 2)
            #expect(step.allToAll > 0 && step.expertAllReduce > 0, "\(moeLayers) MoE layers: \(step)")
            let one = perLayer ?? (step.allToAll, step.expertAllReduce)
            perLayer = one
            #expect(step.allToAll == moeLayers * one.allToAll && step.expertAllReduce == moeLayers * one.expert, "\(moeLayers) MoE layers")
        }
    }

    @Test("a dense model's step sends no all-to-all and no expert partial sums, only the gradient all-reduce over data")
    func denseStepCommunication() throws {
        let dense = try namedConfiguration("small-dense")
        for (d, m) in [(1, 1), (2, 1), (2, 2), (4, 1)] {
            let step = try stepCommunication(dense, batchSize: 8, length: 64, groups: 4, dataCores: d, modelCores: m)
            #expect(step.allToAll == 0 && step.expertAllReduce == 0 && step.optimizerData == 0 && step.optimizerModel == 0, "\(d)x\(m)")
            #expect((step.gradientAllReduce > 0) == (d > 1), "\(d)x\(m): \(step.gradientAllReduce)")
            #expect(step.data == step.gradientAllReduce && step.model == 0, "\(d)x\(m)")
        }
    }

    @Test("the communication model takes 1…4096 cores on each axis, as documented, and refuses one more or none")
    func communicationAxisBounds() throws {
        let dense = try namedConfiguration("small-dense")
        for (d, m) in [(4096, 1), (1, 4096)] {
            _ = try stepCommunication(dense, batchSize: 4096, length: 1, groups: 4096, dataCores: d, modelCores: m)
        }
        for (d, m) in [(4097, 1), (1, 4097), (0, 1), (1, 0)] {
            #expect(throws: MeshError("mesh axes must have 1…4096 cores, got \(d) × \(m)"), "\(d)x\(m)") {
                try stepCommunication(dense, batchSize: 8192, length: 1, groups: 8192, dataCores: d, modelCores: m)
            }
        }
    }

    @Test("the communication model's groups: at least one, splitting the tokens and the data cores; anything else refused by name")
    func communicationGroups() throws {
        let small = try namedConfiguration("small")
        _ = try stepCommunication(small, batchSize: 4, length: 8, groups: 2, dataCores: 2, modelCores: 1)
        _ = try stepCommunication(small, batchSize: 4, length: 8, groups: 32, dataCores: 2, modelCores: 1)
        for g in [0, -2, 3, 64, 1] {
            #expect(throws: MeshError("\(g) groups must split the 4·8 tokens and divide over the 2 data cores"), "\(g)") {
                try stepCommunication(small, batchSize: 4, length: 8, groups: g, dataCores: 2, modelCores: 1)
            }
        }
    }

    @Test("the communication model takes steps of up to 2^32 tokens and refuses larger ones, whatever their B × T split")
    func communicationTokenBound() throws {
        let small = try namedConfiguration("small")
        for (b, t) in [(1 << 16, 1 << 16), (1 << 22, 1 << 10), (1, 1 << 32), (1 << 32, 1)] {
            let step = try stepCommunication(small, batchSize: b, length: t, groups: 2, dataCores: 2, modelCores: 2)
            #expect(step.allToAll > 0 && step.data > 0 && step.model > 0, "\(b) × \(t)")
        }
        for (b, t) in [(1 << 16 + 1, 1 << 16), (1 << 23, 1 << 10), (1 << 20, 1 << 13), (1, 1 << 33), (1 << 33, 1)] {
            #expect(throws: MeshError.self, "\(b) × \(t)") {
                try stepCommunication(small, batchSize: b, length: t, groups: 2, dataCores: 2, modelCores: 2)
            }
        }
    }

    @Test("glam plan --virtual reports the virtual mesh's communication model, as JSON too, and refuses what does not fit")
    func virtualPlan() throws {
        let small = try namedConfiguration("small")
        let step = try stepCommunication(small, batchSize: 8, length: 64, groups: 8, dataCores: 4, modelCores: 2)
        let json = runGlam([
            "plan", "--virtual", "--config", "small", "--mesh", "4x2", "--batch", "8", "--length", "64", "--groups", "8", "--json",
        ])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        let expected: [String: Int] = [
            "all_to_all": step.allToAll, "expert_all_reduce": step.expertAllReduce, "gradient_all_reduce": step.gradientAllReduce,
            "optimizer_data": step.optimizerData, "optimizer_mdl": step.optimizerModel, "data": step.data, "mdl": step.model,
        ]
        for (key, value) in expected { #expect((object[key] as? Int) == value, "\(key)") }
        #expect(step.allToAll > 0 && step.expertAllReduce > 0 && (object["mesh"] as? [Int]) == [4, 2])
        let text = runGlam(["plan", "--virtual", "--config", "small", "--mesh", "4x2", "--batch", "8", "--length", "64", "--groups", "8"])
        #expect(text.status == 0 && text.out.contains("MoE all-to-alls \(step.allToAll)"))
        #expect(runGlam(["plan", "--virtual", "--config", "small", "--mesh", "3x2", "--groups", "8"]).status == 2)
        #expect(runGlam(["plan", "--virtual", "--config", "small", "--mesh", "2x2", "--tokens", "1024"]).status == 2)
        #expect(runGlam(["plan", "--config", "small", "--mesh", "2x2", "--batch", "8"]).err.contains("applies to --virtual only"))
    }
}
