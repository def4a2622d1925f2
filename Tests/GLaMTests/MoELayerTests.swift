// The MoE layer: its index-based dispatch and combine equal praxis' dense einsums (the reference in
// DenseDispatchReference.swift) in value and gradient,
// gradients pass finite differences in Double (through gates, aux loss and experts), and groups
// and padding behave as the "Top-2 gating" article says.

import Testing

@testable import GLaM

struct MoELayerTests {
    static func setup(
        b: Int = 2, t: Int = 6, m: Int = 5, h: Int = 4, e: Int = 4, seed: UInt64 = 1
    ) -> (x: Tensor<Double>, gate: Tensor<Double>, wi: Tensor<Double>, wo: Tensor<Double>, paddings: Tensor<Double>) {
        let x = randomDoubleTensor([b, t, m], seed: seed)
        let gate = randomDoubleTensor([m, e], seed: seed + 1, in: -2..<2)
        let wi = randomDoubleTensor([e, m, h], seed: seed + 2)
        let wo = randomDoubleTensor([e, h, m], seed: seed + 3)
        var paddings = Tensor<Double>(zeros: [b, t])
        paddings[0, t - 1] = 1
        paddings[1, t - 2] = 1
        return (x, gate, wi, wo, paddings)
    }

    static func configuration(e: Int = 4, groups: Int = 2, capacityFactor: Double = 1, activation: ExpertActivation = .geluTanh)
        -> MoELayerConfiguration
    {
        MoELayerConfiguration(
            gating: Top2GatingConfiguration(numExperts: e, capacityFactor: capacityFactor), numGroups: groups, activation: activation)
    }

    @Test(
        "the layer equals praxis' dense dispatch and combine einsums in value and in every gradient",
        arguments: ExpertActivation.allCases, [0.5, 1.0, 4.0])
    func equalsDenseEinsums(activation: ExpertActivation, capacityFactor: Double) throws {
        let (x, gate, wi, wo, paddings) = Self.setup()
        let dy = randomDoubleTensor([2, 6, 5], seed: 50)
        let configuration = Self.configuration(capacityFactor: capacityFactor, activation: activation)
        var results: [[Tensor<Double>]] = []
        for dense in [true, false] {
            let tape = Tape<Double>()
            let vars = [x, gate, wi, wo].map { tape.variable($0) }
            let weights = MoEWeights(gate: vars[1], wi: vars[2], wo: vars[3])
            let out =
                dense
                ? try denseMoELayer(vars[0], paddings: paddings, weights: weights, configuration: configuration)
                : try weights(vars[0], paddings: paddings, configuration: configuration)
            let loss = (out.output * Variable(constant: dy)).sum() + out.gating.auxLoss
            let grads = tape.gradients(of: loss)
            results.append([out.output.value] + vars.map { grads[$0] ?? Tensor(zeros: $0.shape) })
        }
        for (dense, indexed) in zip(results[0], results[1]) {
            #expect(dense.shape == indexed.shape)
            #expect(zip(dense.scalars, indexed.scalars).allSatisfy { abs($0 - $1) < 1e-12 })
        }
        #expect(results[0][0].scalars.contains { $0 != 0 })  // a real output, not two empty ones
    }

    @Test("finite differences in Double: output, aux loss and all weights, with drops and padding")
    func gradientCheck() throws {
        let (x, gate, wi, wo, paddings) = Self.setup(seed: 11)
        try checkGradients([x, gate, wi, wo], tolerance: 1e-6) { v in
            let out = try MoEWeights(gate: v[1], wi: v[2], wo: v[3])(  // an error fails the test with it
                v[0], paddings: paddings, configuration: Self.configuration(capacityFactor: 0.5))
            return out.output + out.gating.auxLoss  // aux broadcast over the output
        }
    }

    @Test("padded tokens output zero, are routed nowhere, and do not count in the aux loss's f")
    func padding() throws {
        let (x, gate, wi, wo, paddings) = Self.setup()
        let out = try MoEWeights(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))(
            Variable(constant: x), paddings: paddings, configuration: Self.configuration(capacityFactor: 4))
        #expect((0..<5).allSatisfy { out.output.value[0, 5, $0] == 0 && out.output.value[1, 4, $0] == 0 })
        let r = out.gating.routing
        #expect(r.firstSlot[5] == -1 && r.secondSlot[5] == -1 && !r.isReal[5])
        #expect(out.gating.tokensRoutedTo.reduce(0, +) == 10)  // 12 tokens, 2 padded
    }

    @Test("groups are consecutive tokens: G groups gate exactly like G separate calls")
    func groupsAreIndependent() throws {
        let (x, gate, wi, wo, _) = Self.setup(b: 2, t: 4)
        let weights = MoEWeights(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))
        let together = try weights(Variable(constant: x), paddings: nil, configuration: Self.configuration(groups: 2))
        for row in 0..<2 {
            let xi = Tensor(shape: [1, 4, 5], scalars: Array(x.scalars[(row * 20)..<((row + 1) * 20)]))
            let alone = try weights(Variable(constant: xi), paddings: nil, configuration: Self.configuration(groups: 1))
            #expect(Array(together.output.value.scalars[(row * 20)..<((row + 1) * 20)]) == alone.output.value.scalars)
        }
    }

    @Test(
        "without a tape only the rows holding a token run: the layer's output and those rows have the bits of the taped layer, every other row is zero",
        arguments: ExpertActivation.allCases, [(1, 1, 8), (2, 3, 8), (4, 6, 4)])
    func busyExpertsAlone(activation: ExpertActivation, shape: (b: Int, t: Int, e: Int)) throws {
        // Few tokens over many experts (decoding: 1 or 6 tokens over 8) leave experts idle.
        let (m, h) = (24, 40)
        let x = randomDoubleTensor([shape.b, shape.t, m], seed: 21), gate = randomDoubleTensor([m, shape.e], seed: 22, in: -2..<2)
        let wi = randomDoubleTensor([shape.e, m, h], seed: 23), wo = randomDoubleTensor([shape.e, h, m], seed: 24)
        let configuration = Self.configuration(e: shape.e, groups: 1, capacityFactor: 2, activation: activation)
        let tape = Tape<Float>()
        let taped = MoEWeights(
            gate: tape.variable(Tensor<Float>(gate)), wi: tape.variable(Tensor<Float>(wi)), wo: tape.variable(Tensor<Float>(wo)))
        let constants = MoEWeights(
            gate: Variable(constant: Tensor<Float>(gate)), wi: Variable(constant: Tensor<Float>(wi)),
            wo: Variable(constant: Tensor<Float>(wo)))
        let input = Tensor<Float>(x)
        let full = try taped(tape.variable(input), paddings: nil, configuration: configuration)
        let inference = try constants(Variable(constant: input), paddings: nil, configuration: configuration)
        #expect(inference.output.value.scalars.map(\.bitPattern) == full.output.value.scalars.map(\.bitPattern))
        // The experts step itself: the rows holding a token bitwise those of all experts run, the others zero.
        let routed = try constants.route(Variable(constant: input), paddings: nil, configuration: configuration)
        let occupied = routed.occupiedRows
        let slotsPerExpert = routed.expertInput.shape[1]  // G·C
        let holders = Set(routed.slots.joined().filter { $0 >= 0 })
        #expect(holders == Set((0..<shape.e).flatMap { expert in occupied[expert].map { expert * slotsPerExpert + $0 } }))
        #expect(occupied.allSatisfy { $0 == $0.sorted() })
        if 2 * shape.b * shape.t < shape.e { #expect(occupied.contains { $0.isEmpty }) }
        // With a tape every expert runs on every row.
        let all = taped.experts(tape.variable(routed.expertInput.value), activation: activation, occupied: occupied).value
        let alone = constants.experts(routed.expertInput, activation: activation, occupied: occupied).value
        for row in 0..<(all.scalarCount / m) {
            let range = (row * m)..<((row + 1) * m)
            if holders.contains(row) {
                #expect(alone.scalars[range].map(\.bitPattern) == all.scalars[range].map(\.bitPattern), "row \(row)")
            } else {
                #expect(alone.scalars[range].allSatisfy { $0 == 0 }, "row \(row)")
                #expect(all.scalars[range].allSatisfy { $0 == 0 }, "row \(row): an empty slot's output is act(0) · Wo = 0")
            }
        }
    }

    @Test("a group count that does not divide the tokens is refused with a message")
    func badGroups() {
        let (x, gate, wi, wo, _) = Self.setup()
        #expect(throws: Top2GatingConfiguration.Invalid.self) {
            try MoEWeights(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))(
                Variable(constant: x), paddings: nil, configuration: Self.configuration(groups: 5))
        }
    }
}

extension MoELayerTests {
    @Test("expert weights that do not fit the input's M or the configuration's E are refused, naming the shapes")
    func weightShapesAreChecked() throws {
        let (m, e, h) = (6, 4, 10)
        let configuration = MoELayerConfiguration(
            gating: Top2GatingConfiguration(numExperts: e, capacityFactor: 2), numGroups: 1, activation: .geluTanh)
        let x = Variable(constant: Tensor<Float>(repeating: 0.1, shape: [1, 4, m]))
        func layer(wi: [Int], wo: [Int]) -> MixtureOfExperts<Variable<Float>> {
            MixtureOfExperts(
                gate: Variable(constant: Tensor(repeating: 0.1, shape: [m, e])), wi: Variable(constant: Tensor(repeating: 0.1, shape: wi)),
                wo: Variable(constant: Tensor(repeating: 0.1, shape: wo)))
        }
        #expect(try layer(wi: [e, m, h], wo: [e, h, m])(x, paddings: nil, configuration: configuration).output.shape == [1, 4, m])
        // Every axis of wi alone, of wo alone, and E of both, one more or one fewer; and wi of another rank.
        func changed(_ shape: [Int], axis: Int, by delta: Int) -> [Int] {
            var shape = shape
            shape[axis] += delta
            return shape
        }
        var cases = [
            ([e + 1, m, h], [e + 1, h, m]), ([e - 1, m, h], [e - 1, h, m]), ([e, m], [e, h, m]), ([e, m, h, 1], [e, h, m]),
        ]
        for axis in 0..<3 {
            for delta in [1, -1] {
                cases.append((changed([e, m, h], axis: axis, by: delta), [e, h, m]))
                cases.append(([e, m, h], changed([e, h, m], axis: axis, by: delta)))
            }
        }
        for (wi, wo) in cases {
            do {
                _ = try layer(wi: wi, wo: wo)(x, paddings: nil, configuration: configuration)
                Issue.record("wi \(wi), wo \(wo) were accepted")
            } catch {
                #expect(error.description.contains("\(wi)") && error.description.contains("do not fit"), "\(error)")
            }
        }
    }

    @Test("paddings of any shape but the input's [B, T] are refused by the MoE layer, naming both shapes")
    func paddingShapesAreChecked() throws {
        let (m, e, h) = (6, 4, 10)
        let configuration = MoELayerConfiguration(
            gating: Top2GatingConfiguration(numExperts: e, capacityFactor: 2), numGroups: 1, activation: .geluTanh)
        let x = Variable(constant: Tensor<Float>(repeating: 0.1, shape: [2, 3, m]))  // B = 2, T = 3
        let layer = MixtureOfExperts(
            gate: Variable(constant: Tensor<Float>(repeating: 0.1, shape: [m, e])),
            wi: Variable(constant: Tensor<Float>(repeating: 0.1, shape: [e, m, h])),
            wo: Variable(constant: Tensor<Float>(repeating: 0.1, shape: [e, h, m])))
        #expect(try layer(x, paddings: Tensor(zeros: [2, 3]), configuration: configuration).output.shape == [2, 3, m])
        for shape in [[3, 2], [6], [2, 3, 1], [2, 4], [1, 3], [2, 2]] {
            do {
                _ = try layer(x, paddings: Tensor(zeros: shape), configuration: configuration)
                Issue.record("paddings \(shape) were accepted")
            } catch {
                #expect(error.description == "paddings must be [B, T] = [2, 3], got \(shape)", "\(error)")
            }
        }
    }
}
