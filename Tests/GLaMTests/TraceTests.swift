// The tracer and `glam trace`: what the trace reports is what the model computed (routing, slots,
// drops, the MoE output rebuilt from the dumped expert outputs), listening changes no bit, and a
// mesh trace equals the one-device trace.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

#if canImport(FoundationXML)
    import FoundationXML
#endif

struct TraceTests {
    /// A tiny MoE model whose capacity is small enough that tokens are dropped.
    static func droppingModel() throws -> ModelParameters {
        var configuration = tinyConfiguration(experts: 4, capacityFactor: 0.5)
        configuration.numGroups = 2
        return try ModelParameters(configuration: configuration, seed: 3)
    }

    static let batch = TokenBatch(
        batchSize: 2, length: 8, tokens: [1, 4, 4, 4, 4, 9, 3, 3, 7, 0, 5, 5, 5, 5, 6, 1], targets: Array(repeating: 2, count: 16),
        paddings: [Float](repeating: 0, count: 15) + [1])

    @Test("the trace's experts, queue positions, slots and drops are the gating's, and its dispatch tensor agrees")
    func routingMatchesGating() throws {
        let parameters = try Self.droppingModel()
        let trace = ForwardTrace()
        let output: DecoderOutput<Float> = try parameters.constants(Self.batch, observer: trace)
        let c = parameters.configuration
        var drops = 0
        for (layer, gating) in zip((0..<c.numLayers).filter(c.isMoELayer), output.gatings) {
            let paddings = Tensor<Float>(shape: [2, 8], scalars: try #require(Self.batch.paddings))
            let m = MoELayerTrace(layer: layer, gating: gating, paddings: paddings, configuration: c.gating)
            let r = gating.routing
            let dispatch = try #require(trace["layers.\(layer).moe.dispatch"])  // [G, S, E, C]
            #expect(dispatch.shape == [r.groups, r.groupSize, r.numExperts, r.capacity])
            for route in m.tokens {
                let t = route.token
                #expect(route.experts == [r.firstExpert[t], r.secondExpert[t]])
                for k in 0..<2 {
                    let slot = k == 0 ? r.firstSlot[t] : r.secondSlot[t]
                    switch route.outcomes[k] {
                    case .kept:
                        #expect(route.slots[k] == slot && route.queuePositions[k] == slot && slot < m.capacity)
                        #expect(route.combineWeights[k] > 0)
                        let index = ((t * r.numExperts) + route.experts[k]) * r.capacity + slot
                        #expect(dispatch.scalars[index] == 1)
                    case .overCapacity:
                        drops += 1
                        #expect(slot == -1 && route.slots[k] == -1 && route.queuePositions[k] >= m.capacity)
                        #expect(route.combineWeights[k] == 0)
                        // The holders are C earlier-queued assignments of the same expert and group.
                        #expect(route.filledBy[k].count == m.capacity)
                        for holder in route.filledBy[k] {
                            let expert = holder.choice == 0 ? r.firstExpert[holder.token] : r.secondExpert[holder.token]
                            #expect(expert == route.experts[k] && holder.token / r.groupSize == route.group)
                            #expect(gating.isDispatched(token: holder.token, choice: holder.choice))
                        }
                    case .padding:
                        #expect(!r.isReal[t] && route.slots[k] == -1)
                    case .notChosen:
                        #expect(k == 1 && route.slots[k] == -1)
                    }
                }
                // A token's dispatch row holds exactly its kept choices.
                let row = dispatch.scalars[(t * r.numExperts * r.capacity)..<((t + 1) * r.numExperts * r.capacity)]
                #expect(Int(row.reduce(0, +)) == route.outcomes.filter { $0 == .kept }.count)
            }
            #expect(abs(m.tokens.map(\.auxLossShare).reduce(0, +) - m.auxLoss) <= 1e-6 * m.auxLoss)
        }
        #expect(drops > 0, "the model was meant to drop tokens")
    }

    @Test(
        "each token's aux-loss shares add up to the layer's aux loss, for every variant, with padding",
        arguments: AuxiliaryLossVariant.allCases, [true, false])
    func auxLossSharesAddUp(variant: AuxiliaryLossVariant, legacy: Bool) throws {
        var generator = SeededGenerator(seed: 9)
        let logits = Variable(constant: Tensor<Double>(Tensor<Float>.randomNormal(shape: [3, 6, 4], generator: &generator)))
        let paddings = Tensor<Double>(shape: [3, 6], scalars: (0..<18).map { $0 % 7 == 5 ? 1 : 0 })
        let configuration = Top2GatingConfiguration(
            numExperts: 4, capacityFactor: 1, legacyMTFBehavior: legacy, auxiliaryLoss: variant)
        let gating = try top2Gating(logits: logits, paddings: paddings, configuration: configuration)
        let shares = auxiliaryLossShares(
            probabilities: gating.probabilities.value, routing: gating.routing, paddings: paddings, configuration: configuration)
        let aux = gating.auxLoss.value.scalar
        #expect(abs(shares.reduce(0, +) - aux) <= 1e-12 * max(1, aux), "\(variant) legacy \(legacy)")
        #expect(shares.enumerated().allSatisfy { $0.element == 0 || paddings.scalars[$0.offset] == 0 })
    }

    @Test("an observer changes no bit of the logits, losses or gradients")
    func observerChangesNothing() throws {
        let parameters = try Self.droppingModel()
        func run(_ observer: (any ForwardObserver)?) throws -> (logits: [UInt32], loss: UInt32, gradients: [[UInt32]]) {
            let tape = Tape<Float>()
            let variables = parameters.variables(on: tape)
            let output: DecoderOutput<Float> = try variables(Self.batch, observer: observer)
            let loss = try #require(output.loss)
            let gradients = variables.gradients(from: tape.gradients(of: loss))
            return (
                output.logits.value.scalars.map(\.bitPattern), loss.value.scalar.bitPattern,
                gradients.weights.map { $0.weight.scalars.map(\.bitPattern) }
            )
        }
        let trace = ForwardTrace()
        let (plain, traced) = (try run(nil), try run(trace))
        #expect(plain.logits == traced.logits && plain.loss == traced.loss && plain.gradients == traced.gradients)
        // It did listen: every documented name of an MoE and a dense layer was reported.
        for name in [
            "embedded", "layers.0.input", "layers.0.attention_norm", "layers.0.attention.logits", "layers.0.attention.probabilities",
            "layers.0.attention.output", "layers.0.residual", "layers.0.ffn_norm", "layers.0.moe.router_logits",
            "layers.0.moe.router_probabilities", "layers.0.moe.dispatch", "layers.0.moe.combine", "layers.0.moe.aux_loss",
            "layers.0.moe.expert_inputs", "layers.0.moe.expert_outputs", "layers.0.moe.output", "layers.0.output",
            "layers.1.ffn.output", "final_norm", "logits",
        ] {
            #expect(trace[name] != nil, "\(name) was not traced")
        }
        #expect(trace["layers.0.moe.router_logits"]?.shape == [2, 8, 4])
        #expect(trace["logits"]?.scalars.map(\.bitPattern) == plain.logits)
    }

    @Test("the dumped expert outputs, weighted by the dumped combine tensor, rebuild each MoE layer's output")
    func dumpRecombines() throws {
        let scratch = ScratchDirectory()
        let dump = scratch.url.appendingPathComponent("trace.safetensors")
        let prompt = String(repeating: "The hacker hacks. ", count: 3)
        let result = runGlam(["trace", "--prompt", prompt, "--dump", dump.path])
        #expect(result.status == 0, "\(result.err)")
        let file = try SafeTensorsFile(contentsOf: dump)
        #expect(file.metadata["format"] == "glam-trace" && file.metadata["prompt"] == prompt)
        for layer in [0, 2] {
            let combine = try #require(file.tensors["layers.\(layer).moe.combine"]).floatTensor()  // [G, S, E, C]
            let out = try #require(file.tensors["layers.\(layer).moe.expert_outputs"]).floatTensor()  // [E, G, C, M]
            let y = try #require(file.tensors["layers.\(layer).moe.output"]).floatTensor()  // [B, T, M]
            let logits = try #require(file.tensors["layers.\(layer).moe.router_logits"]).floatTensor()
            let (g, s, e, c) = (combine.shape[0], combine.shape[1], combine.shape[2], combine.shape[3])
            let m = out.shape[3]
            #expect(logits.shape == [g, s, e] && out.shape == [e, g, c, m] && y.shape == [1, g * s, m])
            var worst: Float = 0
            for group in 0..<g {
                for token in 0..<s {
                    for j in 0..<m {
                        var total: Float = 0
                        for expert in 0..<e {
                            for slot in 0..<c {
                                total += combine[group, token, expert, slot] * out[expert, group, slot, j]
                            }
                        }
                        worst = max(worst, abs(total - y.scalars[(group * s + token) * m + j]))
                    }
                }
            }
            #expect(worst <= 1e-5, "layer \(layer): \(worst)")
        }
    }

    @Test(
        "as the article says: dumped attention logits are unmasked, probabilities masked and rebuilt from them with the causal mask, and empty slots are zero rows"
    )
    func dumpMasking() throws {
        let scratch = ScratchDirectory()
        let dump = scratch.url.appendingPathComponent("trace.safetensors")
        let result = runGlam(["trace", "--prompt", "the cat and the dog and the cat", "--dump", dump.path])
        #expect(result.status == 0, "\(result.err)")
        let file = try SafeTensorsFile(contentsOf: dump)
        let logits = try #require(file.tensors["layers.0.attention.logits"]).floatTensor()  // [B, N, T, T]
        let probabilities = try #require(file.tensors["layers.0.attention.probabilities"]).floatTensor()
        let (n, t) = (logits.shape[1], logits.shape[2])
        #expect(logits.shape == [1, n, t, t] && probabilities.shape == logits.shape)
        var worst = 0.0
        for head in 0..<n {
            for query in 0..<t {
                let row = (0..<t).map { Double(logits[0, head, query, $0]) }
                // Unmasked: later keys hold finite scores, not the mask's value, and get probability 0.
                for key in (query + 1)..<max(query + 1, t) {
                    #expect(row[key].isFinite && abs(row[key]) < 1e6 && probabilities[0, head, query, key] == 0)
                }
                let peak = max(0, row[0...query].max()!)
                let total = exp(-peak) + row[0...query].map { exp($0 - peak) }.reduce(0, +)
                for key in 0...query { worst = max(worst, abs(exp(row[key] - peak) / total - Double(probabilities[0, head, query, key]))) }
            }
        }
        #expect(worst < 1e-6, "\(worst)")
        // Empty slots: zero rows in the experts' inputs and outputs.
        for layer in [0, 2] {
            let combine = try #require(file.tensors["layers.\(layer).moe.combine"]).floatTensor()  // [G, S, E, C]
            let inputs = try #require(file.tensors["layers.\(layer).moe.expert_inputs"]).floatTensor()  // [E, G, C, M]
            let outputs = try #require(file.tensors["layers.\(layer).moe.expert_outputs"]).floatTensor()
            let (g, s, e, c, m) = (combine.shape[0], combine.shape[1], combine.shape[2], combine.shape[3], inputs.shape[3])
            var emptySlots = 0
            for expert in 0..<e {
                for group in 0..<g {
                    for slot in 0..<c where (0..<s).allSatisfy({ combine[group, $0, expert, slot] == 0 }) {
                        emptySlots += 1
                        #expect((0..<m).allSatisfy { inputs[expert, group, slot, $0] == 0 && outputs[expert, group, slot, $0] == 0 })
                    }
                }
            }
            #expect(emptySlots > 0, "layer \(layer): every slot filled, nothing checked")
        }
    }

    /// The parsed `--json` of a trace.
    static func json(_ arguments: [String]) throws -> [String: Any] {
        let result = runGlam(["trace", "--json"] + arguments)
        #expect(result.status == 0, "\(result.err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
    }

    @Test("--json holds, per MoE layer, layer and capacity, and per token position, experts, gates, slots and dropped")
    func jsonSchema() throws {
        let object = try Self.json(["--prompt", String(repeating: "a", count: 40)])
        let layers = try #require(object["moe_layers"] as? [[String: Any]])
        #expect(layers.map { $0["layer"] as? Int } == [0, 2])
        var dropped = 0
        for layer in layers {
            let capacity = try #require(layer["capacity"] as? Int)
            let tokens = try #require(layer["tokens"] as? [[String: Any]])
            #expect(tokens.map { $0["position"] as? Int } == Array(0..<40))
            for token in tokens {
                #expect((token["experts"] as? [Int])?.count == 2 && (token["gates"] as? [Double])?.count == 2)
                let slots = try #require(token["slots"] as? [Int]), drops = try #require(token["dropped"] as? [Bool])
                #expect(slots.count == 2 && drops.count == 2)
                for k in 0..<2 { #expect(drops[k] ? slots[k] == -1 : slots[k] < capacity) }
                dropped += drops.filter { $0 }.count
            }
        }
        #expect(dropped > 0, "40 equal bytes overflow the capacity of their favourite expert")
        #expect((object["predictions"] as? [String: Any])?["position"] as? Int == 39)
    }

    @Test("every choice's queue position, slot and outcome follow GShard's counting rule, recomputed by counting", arguments: 0..<40)
    func queuePositionsByCounting(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) + 500)
        let g = 1 + Int(generator.next() % 2), s = 3 + Int(generator.next() % 7), e = 2 + Int(generator.next() % 4)
        let factor = [0.25, 0.5, 1.0, 2.0][Int(generator.next() % 4)]
        let logits = (0..<(g * s * e)).map { _ in Double(generator.next() >> 11) * 0x1p-53 * 4 - 2 }
        let paddings = (0..<(g * s)).map { _ in generator.next() % 5 == 0 ? 1.0 : 0.0 }
        let configuration = Top2GatingConfiguration(
            numExperts: e, capacityFactor: factor, secondExpertPolicy: .all, legacyMTFBehavior: seed % 2 == 0, seed: 7)
        let padding = Tensor(shape: [g, s], scalars: paddings)
        let gating = try top2Gating(
            logits: Variable(constant: Tensor(shape: [g, s, e], scalars: logits)), paddings: padding, configuration: configuration)
        let trace = MoELayerTrace(layer: 0, gating: gating, paddings: padding, configuration: configuration)
        let c = gating.routing.capacity
        // Top-1 and top-2 by the logits (softmax keeps the order; random logits have no ties).
        func ranked(_ t: Int) -> [Int] { (0..<e).sorted { logits[t * e + $0] > logits[t * e + $1] } }
        for t in 0..<(g * s) {
            let route = trace.tokens[t]
            let group = (t / s * s)..<(t / s * s + s)
            guard paddings[t] == 0 else {
                // Padding has no place in any queue, in the trace and in the routing itself.
                #expect(route.outcomes == [.padding, .padding] && route.slots == [-1, -1] && route.queuePositions == [-1, -1])
                let unrouted = [gating.routing.firstQueuePosition[t], gating.routing.secondQueuePosition[t]]
                #expect(unrouted == [-1, -1], "token \(t)")
                continue
            }
            let (first, second) = (ranked(t)[0], ranked(t)[1])
            let real = group.filter { paddings[$0] == 0 }
            // Top-1: the real tokens before t in its group that chose the same expert first.
            let firstPosition = real.filter { $0 < t && ranked($0)[0] == first }.count
            // Top-2: after every kept top-1 assignment of that expert, then in token order.
            let keptFirst = min(c, real.filter { ranked($0)[0] == second }.count)
            let secondPosition = keptFirst + real.filter { $0 < t && ranked($0)[1] == second }.count
            #expect(route.experts == [first, second], "token \(t)")
            // Gates: the router's probabilities of the two choices (softmax of the logits), renormalised.
            let row = logits[(t * e)..<((t + 1) * e)], top = row.max()!
            let p = row.map { Foundation.exp($0 - top) }, total = p.reduce(0, +)
            let raw = [p[first] / total, p[second] / total]
            #expect(zip(route.rawGates, raw).allSatisfy { abs($0 - $1) < 1e-12 }, "token \(t): \(route.rawGates) vs \(raw)")
            #expect(zip(route.renormalizedGates, raw.map { $0 / (raw[0] + raw[1]) }).allSatisfy { abs($0 - $1) < 1e-12 })
            #expect(route.queuePositions == [firstPosition, secondPosition], "token \(t)")
            let routed = [gating.routing.firstQueuePosition[t], gating.routing.secondQueuePosition[t]]
            #expect(routed == [firstPosition, secondPosition], "token \(t)")
            for (k, position) in [firstPosition, secondPosition].enumerated() {
                #expect(route.outcomes[k] == (position < c ? .kept : .overCapacity), "token \(t) choice \(k)")
                #expect(route.slots[k] == (position < c ? position : -1), "token \(t) choice \(k)")
                let slot = k == 0 ? gating.routing.firstSlot[t] : gating.routing.secondSlot[t]
                #expect(slot == (position < c ? position : -1), "token \(t) choice \(k)")
            }
        }
    }

    @Test("the routing chart is well-formed SVG and everything it draws lies inside its width and height")
    func routingChartGeometry() throws {
        let scratch = ScratchDirectory()
        let svgPath = scratch.path("routing.svg").path
        let result = runGlam(["trace", "--prompt", "The hacker wrote <code> & ran it", "--svg", svgPath])
        try #require(result.status == 0, "\(result.err)")
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        #expect(XMLParser(data: Data(svg.utf8)).parse(), "not well-formed XML")
        let size = try #require(svg.firstMatch(of: /<svg [^>]*width="([0-9]+)" height="([0-9]+)"/))
        let (width, height) = (Double(size.output.1)!, Double(size.output.2)!)
        for match in svg.matches(of: /\b(x|y|x1|y1|x2|y2|cx|cy)="(-?[0-9.]+)"/) {
            let value = Double(match.output.2)!
            let limit = match.output.1.hasPrefix("x") || match.output.1 == "cx" ? width : height
            #expect(value >= 0 && value <= limit, "\(match.output.1) = \(value) outside 0...\(limit)")
        }
        // One panel per MoE layer side by side, none over another: each panel's expert columns
        // (the header numbers) lie to the right of the previous panel's last column.
        let titles = svg.matches(of: /<text x="([0-9.]+)" y="[0-9.]+" font-size="12">layer ([0-9]+):/).map { Double($0.output.1)! }
        #expect(titles.count >= 2, "the default model shows more than one MoE layer")
        let headers = svg.matches(of: /<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle">([0-9]+)<\/text>/).map {
            (x: Double($0.output.1)!, expert: Int($0.output.2)!)
        }
        let experts = try #require(svg.firstMatch(of: /layer [0-9]+: E = ([0-9]+),/).map { Int($0.output.1)! })
        try #require(headers.count == titles.count * experts, "\(headers.count) expert headers for \(titles.count) panels of \(experts)")
        #expect(headers.map(\.expert) == Array(repeating: Array(0..<experts), count: titles.count).flatMap { $0 })
        for panel in 1..<titles.count {
            let previousLast = headers[panel * experts - 1].x, first = headers[panel * experts].x
            #expect(
                titles[panel] > previousLast && first > previousLast,
                "panel \(panel) starts at \(titles[panel]), the previous ends at \(previousLast)")
        }
    }

    @Test("the routing chart is wide enough for a long prompt's title: 13 px type at 0.6 em a character, inside the margins")
    func routingChartFitsItsTitle() throws {
        let scratch = ScratchDirectory()
        let svgPath = scratch.path("routing.svg").path
        let prompt = String(repeating: "In the beginning God created the heaven and the earth. ", count: 3)
        let result = runGlam(["trace", "--prompt", prompt, "--svg", svgPath])
        try #require(result.status == 0, "\(result.err)")
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        let size = try #require(svg.firstMatch(of: /<svg [^>]*width="([0-9]+)"/))
        let tokens = try #require(svg.firstMatch(of: /\(([0-9]+) tokens\)/).map { Int($0.output.1)! })
        let title = "glam trace: routing of \"\(prompt)\" (\(tokens) tokens)"
        // The title is wider than every panel here, so it sets the width: margin, text, margin.
        #expect(Double(size.output.1)! == (10 + Double(title.count) * 0.6 * 13 + 10).rounded(.up), "width \(size.output.1)")
    }

    @Test("a mesh trace equals the one-device trace: bitwise on a data mesh, to rounding with H split over mdl")
    func meshTraceEqualsOneDevice() throws {
        let arguments = ["--prompt", String(repeating: "The hacker ", count: 4)]
        let single = try Self.json(arguments)
        let data = try Self.json(arguments + ["--mesh", "2x1"])
        let both = try Self.json(arguments + ["--mesh", "2x2"])
        func layers(_ object: [String: Any], dropping keys: Set<String> = []) -> [[String: Any]] {
            ((object["moe_layers"] as? [[String: Any]]) ?? []).map { layer in
                var layer = layer
                layer["tokens"] = (layer["tokens"] as? [[String: Any]] ?? []).map {
                    $0.filter { !keys.contains($0.key) && $0.key != "cores" }
                }
                return layer
            }
        }
        // Routing groups: one per row; a data mesh repeats the prompt once per data core. A 1x1 mesh
        // is one device.
        let one = try Self.json(arguments + ["--mesh", "1x1"])
        let oneCore = try #require(one["mesh"] as? [String: Any])
        #expect(oneCore["bytes_data"] as? Int == 0 && oneCore["bytes_mdl"] as? Int == 0, "one core sends nothing: \(oneCore)")
        for mesh in [data, one] {
            #expect(NSArray(array: layers(single)) == NSArray(array: layers(mesh)))
            #expect(
                NSDictionary(dictionary: single["predictions"] as? [String: Any] ?? [:])
                    == NSDictionary(dictionary: mesh["predictions"] as? [String: Any] ?? [:]))
        }
        let floats: Set<String> = ["gates", "raw_gates", "renormalized_gates", "router_top", "aux_loss_share"]
        let (a, b) = (layers(single, dropping: floats), layers(both, dropping: floats))
        #expect(a.count == b.count && a.count == 2)
        for (x, y) in zip(a, b) {
            #expect(NSArray(array: x["tokens"] as? [[String: Any]] ?? []) == NSArray(array: y["tokens"] as? [[String: Any]] ?? []))
            #expect(abs((x["aux_loss"] as? Double ?? 0) - (y["aux_loss"] as? Double ?? 1)) <= 1e-5)
        }
        // Where the experts live, and what moved.
        let mesh = try #require(both["mesh"] as? [String: Any])
        #expect((mesh["bytes_data"] as? Int ?? 0) > 0 && (mesh["bytes_mdl"] as? Int ?? 0) > 0)
        let firstToken = try #require(((both["moe_layers"] as? [[String: Any]])?.first?["tokens"] as? [[String: Any]])?.first)
        let experts = try #require(firstToken["experts"] as? [Int]), cores = try #require(firstToken["cores"] as? [[Int]])
        for (expert, holders) in zip(experts, cores) { #expect(holders == (expert < 2 ? [0, 1] : [2, 3])) }
    }

    @Test("glam trace runs without a checkpoint, on a trained checkpoint, and refuses bad options with exit status 2")
    func commandLine() throws {
        let result = runGlam(["trace", "--prompt", "The hacker"])
        #expect(result.status == 0 && result.err.isEmpty)
        for fragment in ["layer 0, mixture of experts", "1st: expert", "attention of position 9", "next token after position 9"] {
            #expect(result.out.contains(fragment), "\(fragment)")
        }
        let scratch = ScratchDirectory()
        let svg = scratch.url.appendingPathComponent("routing.svg")
        #expect(runGlam(["trace", "--prompt", "The hacker", "--layer", "2", "--position", "3", "--svg", svg.path]).status == 0)
        let drawing = try String(contentsOf: svg, encoding: .utf8)
        #expect(drawing.hasPrefix("<svg") && drawing.contains("layer 2") && !drawing.contains("layer 0:"))
        // A trained checkpoint: its tokenizer's BPE tokens, its model.
        let trainer = try tinyTrainer(steps: 2)
        _ = try trainer.trainStep()
        let checkpoint = scratch.url.appendingPathComponent("checkpoint.safetensors")
        try trainer.checkpoint.write(to: checkpoint)
        let trained = runGlam(["trace", "--checkpoint", checkpoint.path, "--prompt", "The hacker"])
        let ids = trainer.tokenizer.encode("The hacker")
        #expect(trained.status == 0 && trained.out.contains("\(ids.count) tokens") && trained.out.contains("(step 1)"), "\(trained.err)")
        for (arguments, fragment) in [
            (["trace"], "--prompt TEXT is required"),
            (["trace", "--prompt", String(repeating: "x", count: 1025)], "trace takes 1 to 1024"),
            (["trace", "--prompt", "a", "--mesh", "3x1"], "does not fit"),
            (["trace", "--prompt", "a", "--mesh", "0x1"], "--mesh must be"),
            (["trace", "--prompt", "ab", "--position", "2"], "--position must be an integer in 0...1"),
            (["trace", "--prompt", "a", "--checkpoint", "/nonexistent.safetensors"], "nonexistent"),
        ] {
            let refused = runGlam(arguments)
            #expect(refused.status == 2 && refused.err.contains(fragment), "\(arguments): \(refused.err)")
        }
    }
}

extension TraceTests {
    @Test("the traced experts' slots are praxis' dispatch einsum (an empty slot is zero) and each slot's output is gelu(x·Wi[e])·Wo[e]")
    func expertSlotsFollowTheEinsums() throws {
        var roomy = tinyConfiguration(experts: 4, capacityFactor: 8)
        roomy.numGroups = 2
        var emptySlots = 0, filledSlots = 0
        for parameters in [try Self.droppingModel(), try ModelParameters(configuration: roomy, seed: 5)] {
            let trace = ForwardTrace()
            let _: DecoderOutput<Float> = try parameters.constants(Self.batch, observer: trace)
            let dispatch = try #require(trace["layers.0.moe.dispatch"])  // [G, S, E, C]
            let y = try #require(trace["layers.0.ffn_norm"])  // [B, T, M], the MoE layer's input
            let inputs = try #require(trace["layers.0.moe.expert_inputs"])  // [E, G, C, M]
            let outputs = try #require(trace["layers.0.moe.expert_outputs"])  // [E, G, C, M]
            let (g, s, e, c) = (dispatch.shape[0], dispatch.shape[1], dispatch.shape[2], dispatch.shape[3])
            let m = y.shape[2]
            #expect(inputs.shape == [e, g, c, m] && outputs.shape == [e, g, c, m])
            let wi = parameters[.layer(0, .expertInput)], wo = parameters[.layer(0, .expertOutput)]  // [E, M, H], [E, H, M]
            let h = wi.shape[2]
            for expert in 0..<e {
                for group in 0..<g {
                    for slot in 0..<c {
                        // expert_inputs[e, g, c, :] = Σ_s dispatch[g, s, e, c] · y[g, s, :]
                        var slotInput = [Double](repeating: 0, count: m)
                        var occupants = 0.0
                        for token in 0..<s {
                            let weight = Double(dispatch.scalars[((group * s + token) * e + expert) * c + slot])
                            occupants += weight
                            for i in 0..<m { slotInput[i] += weight * Double(y.scalars[(group * s + token) * m + i]) }
                        }
                        if occupants == 0 { emptySlots += 1 } else { filledSlots += 1 }
                        let offset = ((expert * g + group) * c + slot) * m
                        for i in 0..<m { #expect(Double(inputs.scalars[offset + i]) == slotInput[i], "slot \(expert), \(group), \(slot)") }
                        // expert_outputs = gelu_tanh(x · Wi[e]) · Wo[e], recomputed in Double.
                        var hidden = [Double](repeating: 0, count: h)
                        for j in 0..<h {
                            var sum = 0.0
                            for i in 0..<m { sum += slotInput[i] * Double(wi.scalars[(expert * m + i) * h + j]) }
                            hidden[j] = 0.5 * sum * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (sum + 0.044715 * sum * sum * sum)))
                        }
                        for i in 0..<m {
                            var sum = 0.0
                            for j in 0..<h { sum += hidden[j] * Double(wo.scalars[(expert * h + j) * m + i]) }
                            #expect(
                                abs(Double(outputs.scalars[offset + i]) - sum) <= 1e-5 * (1 + abs(sum)),
                                "output of slot \(expert), \(group), \(slot)")
                        }
                    }
                }
            }
        }
        #expect(emptySlots > 0 && filledSlots > 0)
    }
}
