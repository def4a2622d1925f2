// What `glam trace` prints: the text a learner reads, the JSON object (its schema is in the
// "Follow one token" article), and the safetensors dump of every traced intermediate.

import Foundation
import GLaM

/// One traced forward pass and what to show of it.
struct TraceRun {
    let prompt: String
    let source: String
    let tokenizer: BytePairTokenizer
    let configuration: ModelConfiguration
    /// The prompt's token ids, and each one's text.
    let tokens: [Int]
    let texts: [String]
    /// The intermediates of the prompt's row (core 0 on a mesh).
    let trace: ForwardTrace
    /// Show only this layer (nil: all).
    let layer: Int?
    /// The token to follow in detail (nil: every token in the routing tables; the last elsewhere).
    let position: Int?
    /// Each MoE layer's routing of the prompt's group.
    var moe: [MoELayerTrace] = []
    /// `[1, T, V]` logits of the prompt's row.
    var logits = Tensor<Float>(0)
    /// Where it ran, on a mesh.
    var mesh: MeshSummary?

    /// The token followed for attention and predictions.
    var focus: Int { position ?? tokens.count - 1 }

    /// The text of token `t` of the prompt, quoted and escaped for one line.
    func quoted(_ t: Int) -> String { quotedText(texts[t]) }

    func isShown(_ layer: Int) -> Bool { self.layer == nil || self.layer == layer }

    /// The strongest keys of each head of `layer` for the token at `query` (default: the focus
    /// token): (key, probability, bucket), and the probability the extra zero logit took.
    func attention(layer i: Int, at query: Int? = nil, keys count: Int = 3) -> [(
        keys: [(key: Int, probability: Float, bucket: Int)], extra: Float
    )] {
        guard let p = trace["layers.\(i).attention.probabilities"] else { return [] }
        let focus = query ?? self.focus
        let (n, t, l) = (p.shape[1], p.shape[2], p.shape[3])
        return (0..<n).map { head in
            let base = (head * t + focus) * l
            let row = Array(p.scalars[base..<(base + l)])
            let top = row.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }
                .prefix(count).filter { $0.element > 0 }
            let keys = top.map {
                (
                    key: $0.offset, probability: $0.element,
                    bucket: relativePositionBucket(
                        distance: focus - $0.offset, buckets: configuration.relativeBuckets, maxDistance: configuration.relativeMaxDistance)
                )
            }
            return (keys, max(0, 1 - row.reduce(0, +)))
        }
    }

    /// The most probable next tokens after the token at `position` (default: the focus token):
    /// (id, probability).
    func predictions(at position: Int? = nil, count: Int = 5) -> [(id: Int, probability: Float)] {
        let focus = position ?? self.focus
        let v = logits.shape[2]
        let row = Tensor(shape: [v], scalars: Array(logits.scalars[(focus * v)..<((focus + 1) * v)])).softmax().scalars
        return row.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }.prefix(count)
            .map { (id: $0.offset, probability: $0.element) }
    }
}

extension TraceRun {
    /// The text report, line by line.
    func text() -> [String] {
        let c = configuration
        let moeLayers = c.moeLayers
        var lines = [
            "glam trace \(quotedText(prompt)): \(tokens.count) tokens",
            "model: \(c.numLayers) layers, M = \(c.modelDim), N×D = \(c.numHeads)×\(c.headDim), V = \(c.vocabSize), "
                + (c.isMoE
                    ? "E = \(c.numExperts) experts (H = \(c.moeHiddenDim)) in layers \(moeLayers.map(String.init).joined(separator: ", "))"
                    : "dense"),
            "from \(source)",
            "tokens: " + tokens.indices.map { "\($0):\(quoted($0))" }.joined(separator: " "),
        ]
        if let mesh {
            lines.append(
                "mesh: \(mesh.dataCores) data × \(mesh.modelCores) mdl cores; the pass sent \(mesh.bytesData) bytes along data (all-to-alls) and \(mesh.bytesModel) along mdl (expert partial sums), all cores together"
            )
        }
        for layerTrace in moe where isShown(layerTrace.layer) {
            lines += routingTable(layerTrace)
        }
        lines.append("")
        lines.append(
            "attention of position \(focus) \(quoted(focus)): each head's strongest keys, as position \"token\" probability [relative bucket]"
        )
        for i in 0..<c.numLayers where isShown(i) {
            for (head, entry) in attention(layer: i).enumerated() {
                let keys = entry.keys.map { "\($0.key) \(quoted($0.key)) \(format($0.probability, 3)) [\($0.bucket)]" }.joined(
                    separator: "   ")
                lines.append("  layer \(i) head \(head): \(keys)   (extra zero logit \(format(entry.extra, 3)))")
            }
        }
        lines.append("")
        lines.append("next token after position \(focus) \(quoted(focus)):")
        lines.append(
            "  "
                + predictions().map { "\($0.id) \(quotedText(tokenizer.displayText(of: $0.id))) \(format($0.probability, 3))" }.joined(
                    separator: "   "))
        return lines
    }

    /// The routing table of one MoE layer.
    private func routingTable(_ m: MoELayerTrace) -> [String] {
        var lines = [
            "",
            "layer \(m.layer), mixture of experts: G = \(m.groups), S = \(m.groupSize), E = \(m.numExperts), capacity C = \(m.capacity); aux loss \(format(m.auxLoss, 4)) (× \(configuration.auxLossWeight) in the loss)",
            // The header from the same column widths as the rows.
            "  " + Self.padded("pos", 4) + Self.padded("token", 11) + Self.padded("router's top experts (p)", 40)
                + Self.padded("1st: expert p→renormalised  queue/C", 36) + Self.padded("2nd: expert p→renormalised  queue/C", 36)
                + Self.padded("combine", 13) + "aux share",
        ]
        for route in m.tokens where route.token < tokens.count && (position == nil || route.token == position) {
            let top = route.routerTop.map { "e\($0.expert) \(format($0.probability, 3))" }.joined(separator: " ")
            let choices = (0..<2).map { k -> String in
                guard route.outcomes[k] != .notChosen && route.outcomes[k] != .padding else { return Self.padded("none", 36) }
                let verdict = route.outcomes[k] == .kept ? "kept" : "DROPPED"
                return Self.padded(
                    "e\(route.experts[k]) \(format(route.rawGates[k], 3))→\(format(route.renormalizedGates[k], 3))  \(route.queuePositions[k])/\(m.capacity) \(verdict)",
                    36)
            }
            lines.append(
                "  " + Self.padded("\(route.token)", 4) + Self.padded(quoted(route.token), 11) + Self.padded(top, 40) + choices[0]
                    + choices[1]
                    + Self.padded("\(format(route.combineWeights[0], 3)) \(format(route.combineWeights[1], 3))", 13)
                    + format(route.auxLossShare, 4)
            )
            for k in 0..<2 where route.outcomes[k] == .overCapacity {
                let all = route.filledBy[k].map { "\($0.token) (\($0.choice == 0 ? "1st" : "2nd"))" }
                let holders = Self.listed(all, limit: 8)
                lines.append(
                    "        ↳ its \(k == 0 ? "1st" : "2nd") choice, expert \(route.experts[k]), was full: its \(m.capacity) slot\(m.capacity == 1 ? "" : "s") hold\(m.capacity == 1 ? "s" : "") positions \(holders)"
                )
            }
            if let mesh {
                let where_ = (0..<2).filter { route.outcomes[$0] == .kept }.map { k in
                    "expert \(route.experts[k]) on cores \(mesh.coresOfExpert[route.experts[k]].map(String.init).joined(separator: ","))"
                }
                if !where_.isEmpty { lines.append("        ↳ " + where_.joined(separator: "; ")) }
            }
        }
        return lines
    }

    /// `text` followed by spaces to `width` characters, or by one space when it fills the width or
    /// more: a column's value never runs into the next.
    static func padded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text.padding(toLength: width, withPad: " ", startingAt: 0)
    }
}

/// `text` in quotes, with line breaks, quotes, control characters and undecodable bytes escaped.
func quotedText(_ text: String) -> String {
    let escaped = text.unicodeScalars.map { scalar -> String in
        switch scalar {
        case "\n": return "\\n"
        case "\t": return "\\t"
        case "\"": return "\\\""
        default: return scalar.value < 32 || scalar.value == 0xFFFD ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
        }
    }.joined()
    return "\"\(escaped)\""
}

extension TraceRun {
    /// `items` joined by ", ", cut after the first `limit` with ", …" when there are more: the
    /// ellipsis appears exactly when something is left out.
    static func listed(_ items: [String], limit: Int) -> String {
        items.count <= limit ? items.joined(separator: ", ") : items.prefix(limit).joined(separator: ", ") + ", …"
    }
}

/// `value` with `digits` decimals.
func format<T: BinaryFloatingPoint>(_ value: T, _ digits: Int) -> String { String(format: "%.\(digits)f", Double(value)) }

extension TraceRun {
    /// The JSON object of `--json`.
    func json() throws -> String {
        func number(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        var object: [String: Any] = [
            "prompt": prompt,
            "source": source,
            "model": [
                "layers": configuration.numLayers, "model_dim": configuration.modelDim, "num_heads": configuration.numHeads,
                "head_dim": configuration.headDim, "num_experts": configuration.numExperts, "vocab_size": configuration.vocabSize,
                "moe_layers": configuration.moeLayers,
            ] as [String: Any],
            "tokens": tokens.indices.map { ["position": $0, "id": tokens[$0], "text": texts[$0]] as [String: Any] },
            "moe_layers": moe.filter { isShown($0.layer) }.map { m -> [String: Any] in
                [
                    "layer": m.layer, "capacity": m.capacity, "groups": m.groups, "group_size": m.groupSize,
                    "num_experts": m.numExperts, "aux_loss": number(m.auxLoss),
                    "tokens": m.tokens.filter { $0.token < tokens.count }.map { route -> [String: Any] in
                        var entry: [String: Any] = [
                            "position": route.token, "group": route.group,
                            "router_top": route.routerTop.map { ["expert": $0.expert, "probability": number($0.probability)] },
                            "experts": route.experts, "gates": route.combineWeights.map(number),
                            "raw_gates": route.rawGates.map(number), "renormalized_gates": route.renormalizedGates.map(number),
                            "queue_positions": route.queuePositions, "slots": route.slots, "dropped": route.dropped,
                            "outcomes": route.outcomes.map(\.rawValue),
                            "filled_by": route.filledBy.map { $0.map { ["position": $0.token, "choice": $0.choice] } },
                            "aux_loss_share": number(route.auxLossShare),
                        ]
                        if let mesh { entry["cores"] = route.experts.map { mesh.coresOfExpert[$0] } }
                        return entry
                    },
                ]
            },
            "attention": (0..<configuration.numLayers).filter(isShown).map { i -> [String: Any] in
                [
                    "layer": i, "position": focus,
                    "heads": attention(layer: i).map { entry -> [String: Any] in
                        [
                            "keys": entry.keys.map {
                                ["position": $0.key, "probability": number(Double($0.probability)), "bucket": $0.bucket] as [String: Any]
                            },
                            "extra_logit": number(Double(entry.extra)),
                        ]
                    },
                ]
            },
            "predictions": [
                "position": focus,
                "top": predictions().map {
                    ["id": $0.id, "text": tokenizer.displayText(of: $0.id), "probability": number(Double($0.probability))] as [String: Any]
                },
            ] as [String: Any],
        ]
        if let mesh {
            object["mesh"] = [
                "data": mesh.dataCores, "mdl": mesh.modelCores, "bytes_data": mesh.bytesData, "bytes_mdl": mesh.bytesModel,
            ]
        }
        return JSONText.line(object)
    }

    /// Writes every traced intermediate, by its trace name, as one safetensors file (F32), with the
    /// prompt, its token ids and the configuration in the metadata.
    func dump(to url: URL, protecting inputs: [URL] = []) throws {
        var tensors: [String: SafeTensor] = [:]
        for name in trace.names { tensors[name] = SafeTensor(trace[name]!) }
        tensors["input.tokens"] = SafeTensor(int32: tokens.map { Int32($0) }, shape: [1, tokens.count])
        let file = SafeTensorsFile(
            tensors: tensors,
            metadata: [
                "format": "glam-trace", "prompt": prompt, "config": configuration.jsonString(), "source": source,
                "names": trace.names.joined(separator: ","),
            ])
        do {
            try file.write(to: url, protecting: inputs)
        } catch {
            throw UsageError("trace: \(error)")
        }
    }
}
