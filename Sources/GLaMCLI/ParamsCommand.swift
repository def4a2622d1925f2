// `glam params` (the "The glam command line" article): total and activated parameter counts of the named
// configurations, beside the paper's Table 4 figures.

import Foundation
import GLaM

enum ParamsCommand: Subcommand {
    static let name = "params"
    static let summary = "Parameter counts (total, activated) of the paper's models and the CPU models."
    static let help = """
        USAGE: glam params [--config NAME] [--json]

        Counts parameters as the "The model" article of the documentation does: per layer attention 4·M·N·D, relative
        bias N·32 and two norms 2·M; a dense layer's gated FFN 3·M·H; an MoE layer's E experts of
        2·M·H plus the router M·E; the tied embedding V·M and the final norm M. "Activated" counts,
        per MoE layer, the router and the two experts a token uses. Both counts include the
        embedding; "without embedding" columns are printed too, because the paper is not consistent
        about it (its 137B excludes the embedding, its 96.6B for 64B/64E includes it).

        OPTIONS:
          --config NAME   one configuration (default: all). Names: \(ModelConfiguration.named.map(\.name).joined(separator: ", "))
          --json          one JSON array of objects: name, total, activated, layers, model_dim, ff_dim,
                          num_heads, head_dim, num_experts, vocab_size, embedding, paper_total,
                          paper_activated
        """

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(arguments, command: "params", options: ["config"], flags: ["json"])
        guard parsed.positionals.isEmpty else { throw UsageError("params: unexpected argument '\(parsed.positionals[0])'") }
        var selected = ModelConfiguration.named
        if let name = parsed.value("config") {
            guard let match = selected.first(where: { $0.name == name }) else {
                throw UsageError("params: unknown configuration '\(name)' (known: \(selected.map(\.name).joined(separator: ", ")))")
            }
            selected = [match]
        }
        if parsed.has("json") {
            let objects: [[String: Any]] = selected.map { named in
                let c = named.configuration, count = ParameterCount(c)
                return [
                    "name": named.name, "total": count.total, "activated": count.activated, "layers": c.numLayers,
                    "model_dim": c.modelDim, "ff_dim": c.ffDim, "num_heads": c.numHeads, "head_dim": c.headDim,
                    "num_experts": c.numExperts, "vocab_size": c.vocabSize, "embedding": count.embedding,
                    "moe_hidden_dim": c.moeHiddenDim,
                    "paper_total": named.paperTotal ?? NSNull(), "paper_activated": named.paperActivated ?? NSNull(),
                ]
            }
            output.line(JSONText.line(objects))
            return 0
        }
        output.line("| name | L | M | H | N×D | E | total | activated | total w/o emb | activated w/o emb | paper total / activated |")
        output.line("|---|---|---|---|---|---|---|---|---|---|---|")
        for named in selected {
            let c = named.configuration, count = ParameterCount(c)
            let paper = named.paperTotal.map { "\($0) / \(named.paperActivated ?? "")" } ?? "–"
            output.line(
                "| \(named.name) | \(c.numLayers) | \(c.modelDim) | \(c.ffDim) | \(c.numHeads)×\(c.headDim) | \(c.numExperts) | "
                    + "\(Formats.count(count.total)) | \(Formats.count(count.activated)) | \(Formats.count(count.total - count.embedding)) | "
                    + "\(Formats.count(count.activated - count.embedding)) | \(paper) |")
        }
        return 0
    }
}
