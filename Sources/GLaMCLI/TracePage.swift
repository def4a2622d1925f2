// `glam trace --html FILE`: the traced pass as one self-contained page to step through. The page is
// the template of TracePageTemplate.swift with one JSON object in it: the `--json` object unchanged
// (routing, gates, queues, drops, attention and predictions of the followed token), and what the
// stepper draws besides, read off the same `ForwardTrace`: for every shown layer and token the
// vectors of each stage (norm and first values), each head's attention probabilities, the router's
// probabilities, and each token's slot rows before and after its experts.

import Foundation
import GLaM

/// One stage of a layer as the page shows it: its equation and the code that computes it, as
/// "path: Type.function" entries separated by "; " (each function declared in its file).
struct TraceStage {
    let id, title, equation, code: String

    /// The stages of an MoE layer, in the order the layer computes them.
    static let moe = [
        attentionNorm, attention, residual,
        TraceStage(
            id: "router", title: "Router",
            equation: "y = RMS(h; ffn_norm)\nlogits = y·W_g   [G, S, E]\np = softmax over the E experts",
            code: "Sources/GLaM/MoE/MoELayer.swift: MixtureOfExperts.route"),
        TraceStage(
            id: "top2", title: "Top-2 choice",
            equation:
                "i₁ = argmax p,  i₂ = argmax p with i₁ excluded   (ties: lowest index)\ng_k = p[i_k] / (p[i₁] + p[i₂] + 1e-9)   (renormalised before capacity)\naux = E·Σ_e f_e·P_e,  token s's share = (E/S)·Σ_e f_e·p[s, e]   (f_e: top-1 share, P_e: mean p)",
            code: "Sources/GLaM/MoE/Top2Routing.swift: Top2Routing.init; Sources/GLaM/MoE/Top2Gating.swift: top2Gating"),
        TraceStage(
            id: "capacity", title: "Capacity queue",
            equation:
                "auto = ⌊S·capacity_factor / E⌋,  C = 4·⌈auto/4⌉ when auto > 1, else 1\npos₁ = earlier tokens with the same i₁;  pos₂ = kept top-1 of i₂ + earlier top-2 of i₂\na choice is kept when pos < C, dropped otherwise",
            code:
                "Sources/GLaM/MoE/GatingConfiguration.swift: Top2GatingConfiguration.capacity; Sources/GLaM/MoE/Top2Routing.swift: Top2Routing.init"
        ),
        TraceStage(
            id: "dispatch", title: "Dispatch",
            equation: "expert_in[e, g, c] = y[g, s]  for the token s in slot c of expert e   [E, G, C, M]\n(empty slots: zero rows)",
            code: "Sources/GLaM/MoE/MoELayer.swift: MixtureOfExperts.route"),
        TraceStage(
            id: "experts", title: "Experts",
            equation: "out[e, g, c] = act(expert_in[e, g, c]·Wi[e])·Wo[e]   [E, G, C, M]",
            code: "Sources/GLaM/MoE/MoELayer.swift: MixtureOfExperts.experts"),
        TraceStage(
            id: "combine", title: "Combine",
            equation: "moe[s] = Σ_k gate_k · out[i_k, slot_k]   (a dropped choice adds nothing)",
            code: "Sources/GLaM/MoE/MoELayer.swift: MixtureOfExperts.combine"),
        output,
    ]

    /// The stages of a dense layer.
    static let dense = [
        attentionNorm, attention, residual,
        TraceStage(
            id: "ffn_norm", title: "FFN norm", equation: "y = RMS(h; ffn_norm)",
            code: "Sources/GLaM/Model/DecoderLayer.swift: DecoderLayer.opening"),
        TraceStage(
            id: "ffn", title: "Gated-GELU FFN",
            equation: "FFN(y) = (GELU(y·W_gate) ⊙ (y·W_linear))·W_o\nGELU(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))",
            code: "Sources/GLaM/Model/FeedForward.swift: GatedFeedForward.callAsFunction"),
        output,
    ]

    /// After the last layer.
    static let prediction = TraceStage(
        id: "prediction", title: "Prediction",
        equation: "logits = (RMS(x; final_norm)·M^-½)·Embᵀ   [T, V]\nnext-token probabilities = softmax(logits)",
        code: "Sources/GLaM/Model/Decoder.swift: GLaMModel.logits")

    static let attentionNorm = TraceStage(
        id: "attention_norm", title: "RMSNorm",
        equation: "RMS(x; s)_j = x_j / √((1/M)·Σ_k x_k² + ε) · s_j   (ε = 1e-6)",
        code: "Sources/GLaM/Tensor/Activations.swift: rmsNormalized; Sources/GLaM/Model/DecoderLayer.swift: DecoderLayer.opening")
    static let attention = TraceStage(
        id: "attention", title: "Attention",
        equation:
            "q, k, v = y·Wq, y·Wk, y·Wv   [T, N, D]\nl[n, t, s] = q[t, n]·k[s, n] + bias[n, bucket(t − s)]   (no 1/√D)\np = softmax over the visible s ≤ t with an extra zero logit\nout = concat_n(Σ_s p[n, t, s]·v[s, n])·Wo",
        code: "Sources/GLaM/Model/Attention.swift: SelfAttention.callAsFunction")
    static let residual = TraceStage(
        id: "residual", title: "Residual", equation: "h = x + Attn(RMS(x; attention_norm))",
        code: "Sources/GLaM/Model/DecoderLayer.swift: DecoderLayer.opening")
    static let output = TraceStage(
        id: "output", title: "Residual", equation: "x' = h + FFN(y)   (the next layer's input)",
        code: "Sources/GLaM/Model/DecoderLayer.swift: DecoderLayer.closing")

    /// Every stage, each once (for the source check).
    static let all = moe + dense + [prediction]
}

/// The longest prompt `--html` takes: the page holds every head's T × T probabilities.
let traceHTMLMaximumTokens = 256

extension TraceRun {
    /// The page of `--html`: the template with the data in it.
    func html() throws -> String {
        let data = try pageData()
        // Inside <script>, "</script>" or "<!--" in a prompt would end or change the element: every
        // "<" is written as its JSON escape, which JSON.parse reads back unchanged.
        let escaped = data.replacingOccurrences(of: "<", with: "\\u003c")
        return TracePageTemplate.page(title: "glam trace: " + escapedForXML(prompt), data: escaped)
    }

    /// The page's data as one JSON object.
    func pageData() throws -> String {
        let t = tokens.count
        let c = configuration
        let shown = (0..<c.numLayers).filter(isShown)
        var layers: [String] = []
        for i in shown {
            let isMoE = c.moeLayers.contains(i)
            let feedForward = isMoE ? "moe.output" : "ffn.output"
            let names = ["input", "attention_norm", "attention.output", "residual", "ffn_norm", feedForward, "output"]
            let vectors = names.map { "\(JSONText.line($0)):\(rows("layers.\(i).\($0)"))" }.joined(separator: ",")
            var fields = [
                "\"layer\":\(i)", "\"moe\":\(isMoE)", "\"vectors\":{\(vectors)}",
                "\"attention\":\(attentionData(layer: i))",
            ]
            if isMoE, let routes = moe.first(where: { $0.layer == i }) {
                fields.append("\"router\":\(matrix("layers.\(i).moe.router_probabilities", rows: t, columns: c.numExperts))")
                fields.append("\"slots\":\(slotRows(routes, layer: i))")
            }
            layers.append("{" + fields.joined(separator: ",") + "}")
        }
        let nextTokens = (0..<t).map { position -> String in
            let top: [[String: Any]] = predictions(at: position).map {
                ["id": $0.id, "text": tokenizer.displayText(of: $0.id), "probability": Double($0.probability)]
            }
            return JSONText.line(top)
        }
        var fields = [
            "\"trace\":\(try json())",
            "\"layers\":[\(layers.joined(separator: ","))]",
            "\"final_norm\":\(rows("final_norm"))",
            "\"predictions\":[\(nextTokens.joined(separator: ","))]",
            "\"stages\":{\"moe\":\(stages(TraceStage.moe)),\"dense\":\(stages(TraceStage.dense)),\"prediction\":\(stages([TraceStage.prediction]))}",
            "\"model_dim\":\(c.modelDim)",
        ]
        if let mesh {
            let allToAlls = 2 * c.moeLayers.count
            fields.append(
                "\"mesh\":"
                    + JSONText.line(
                        [
                            "cores_of_expert": mesh.coresOfExpert, "all_to_alls": allToAlls,
                            "bytes_per_all_to_all": allToAlls > 0 ? mesh.bytesData / allToAlls : 0,
                        ] as [String: Any]))
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func stages(_ list: [TraceStage]) -> String {
        JSONText.line(list.map { ["id": $0.id, "title": $0.title, "equation": $0.equation, "code": $0.code] })
    }

    /// Row 0's T vectors of a `[B, T, M]` intermediate, each as its L2 norm and its first values.
    private func rows(_ name: String) -> String {
        guard let x = trace[name] else { return "null" }
        let m = x.shape[x.rank - 1]
        return "[" + (0..<tokens.count).map { vector(x.scalars[($0 * m)..<(($0 + 1) * m)]) }.joined(separator: ",") + "]"
    }

    /// A vector as `{"n": ‖v‖₂, "v": [its first 64 values]}`: the norm over all of it, in double
    /// precision and exact; the values to 4 digits (drawn, and shown to 3 decimals).
    private func vector(_ values: ArraySlice<Float>) -> String {
        let norm = values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return
            "{\"n\":\(norm.isFinite ? "\(norm)" : "null"),\"v\":[\(values.prefix(64).map { number(Double($0), digits: 4) }.joined(separator: ","))]}"
    }

    /// The first `rows` × `columns` values of `name`, as rows (each value exact).
    private func matrix(_ name: String, rows: Int, columns: Int) -> String {
        guard let x = trace[name], x.scalars.count >= rows * columns else { return "null" }
        return "["
            + (0..<rows).map { r in
                "[" + (0..<columns).map { exact(x.scalars[r * columns + $0]) }.joined(separator: ",") + "]"
            }.joined(separator: ",") + "]"
    }

    /// Layer `i`'s attention of row 0: per head, every query's probabilities over the T keys, and
    /// every query's strongest keys and extra-logit mass (as `--json` gives them for one position).
    private func attentionData(layer i: Int) -> String {
        guard let p = trace["layers.\(i).attention.probabilities"] else { return "null" }
        let (n, t, l) = (p.shape[1], p.shape[2], p.shape[3])
        let maps = (0..<n).map { head in
            "["
                + (0..<t).map { query in
                    let base = (head * t + query) * l
                    return "[" + (0..<l).map { number(Double(p.scalars[base + $0]), digits: 4) }.joined(separator: ",") + "]"
                }.joined(separator: ",") + "]"
        }
        let strongest = (0..<t).map { query in
            JSONText.line(
                attention(layer: i, at: query).map { entry -> [String: Any] in
                    [
                        "keys": entry.keys.map {
                            ["position": $0.key, "probability": Double($0.probability), "bucket": $0.bucket] as [String: Any]
                        },
                        "extra_logit": Double(entry.extra),
                    ]
                })
        }
        return "{\"p\":[\(maps.joined(separator: ","))],\"strongest\":[\(strongest.joined(separator: ","))]}"
    }

    /// For every token of the prompt, its two choices' slot rows in layer `i`: the row dispatched
    /// to the expert and the row the expert returned (null for a choice not dispatched).
    private func slotRows(_ m: MoELayerTrace, layer i: Int) -> String {
        // On a mesh, core 0's trace has the slots it dispatches from, but not the experts' outputs,
        // which other cores compute after the all-to-all: those are null.
        let inputs = trace["layers.\(i).moe.expert_inputs"], outputs = trace["layers.\(i).moe.expert_outputs"]
        func slotRow(_ x: Tensor<Float>?, _ route: TokenRoute, _ k: Int) -> String {
            guard let x, x.rank == 4, x.shape[0] == m.numExperts, route.outcomes[k] == .kept else { return "null" }
            let (g, c, width) = (x.shape[1], x.shape[2], x.shape[3])
            let row = ((route.experts[k] * g + route.group) * c + route.queuePositions[k]) * width
            return row + width <= x.scalars.count ? vector(x.scalars[row..<(row + width)]) : "null"
        }
        func slot(_ route: TokenRoute, _ k: Int) -> String {
            route.outcomes[k] == .kept ? "{\"in\":\(slotRow(inputs, route, k)),\"out\":\(slotRow(outputs, route, k))}" : "null"
        }
        let entries = m.tokens.filter { $0.token < tokens.count }.map { "[" + slot($0, 0) + "," + slot($0, 1) + "]" }
        return "[" + entries.joined(separator: ",") + "]"
    }
}

/// `x` as the shortest JSON number that reads back as the same Float (null when not finite).
private func exact(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }

/// `x` as a JSON number of `digits` significant digits (null when not finite), for what the page
/// draws rather than states.
private func number(_ x: Double, digits: Int) -> String {
    guard x.isFinite else { return "null" }
    if x == 0 { return "0" }
    return String(format: "%.\(digits)g", x)
}
