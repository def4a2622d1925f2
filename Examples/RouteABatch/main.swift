// Example: route a batch of tokens through one GLaM mixture-of-experts layer and print, for each
// token, the two experts top-2 gating chose, the slot each choice took, and which were dropped
// because an expert's capacity was full.
//
//     swift run -c release --package-path PATH/TO/glam route-a-batch

import GLaM

// A layer with E = 4 experts of hidden size H = 16 on M = 8, routing G = 2 groups of S = 12 tokens.
let (m, h, e) = (8, 16, 4)
var generator = SeededGenerator(seed: 1)
let gate = Tensor<Float>.randomNormal(shape: [m, e], generator: &generator)  // [M, E]
let wi = Tensor<Float>.randomNormal(shape: [e, m, h], standardDeviation: 0.3, generator: &generator)  // [E, M, H]
let wo = Tensor<Float>.randomNormal(shape: [e, h, m], standardDeviation: 0.3, generator: &generator)  // [E, H, M]
let x = Tensor<Float>.randomNormal(shape: [2, 12, m], generator: &generator)  // [B, T, M]: one group per row

// Capacity factor 1: C = ⌊S · 1 / E⌋ = 3, rounded up to a multiple of 4: 4 slots per expert per
// group for 2·S = 24 assignments, so where the router favours one expert, choices drop.
let gating = Top2GatingConfiguration(numExperts: e, capacityFactor: 1)
let layer = MoELayerConfiguration(gating: gating, numGroups: 2, activation: .geluTanh)
let weights = MoEWeights(gate: Variable(constant: gate), wi: Variable(constant: wi), wo: Variable(constant: wo))
let out = try weights(Variable(constant: x), paddings: nil, configuration: layer)

let trace = MoELayerTrace(layer: 0, gating: out.gating, paddings: nil, configuration: gating)
print("capacity C = \(trace.capacity) per expert per group; aux loss \(trace.auxLoss)")
for route in trace.tokens {
    let choices = (0..<2).map { k in
        let what = route.outcomes[k] == .kept ? "slot \(route.slots[k])" : "\(route.outcomes[k].rawValue)"
        return "expert \(route.experts[k]) (\(what), weight \(String(format: "%.3f", route.combineWeights[k])))"
    }
    print("group \(route.group) token \(route.token % trace.groupSize): \(choices.joined(separator: ", "))")
}
let dropped = trace.tokens.reduce(0) { $0 + $1.dropped.filter { $0 }.count }
print("\(dropped) of \(2 * trace.tokens.count) choices dropped; output \(out.output.shape)")  // [B, T, M]
