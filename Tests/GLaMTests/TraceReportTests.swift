// What `glam trace` prints about attention and drops, and how its chart shades the router:
// properties of the report itself, beside TraceTests' checks of the routing it reports.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct TraceReportTests {
    @Test("attention: every layer and head is reported, and the shown keys and the extra zero logit take all the probability")
    func attentionMass() throws {
        // Three tokens: the focus (the last) sees all three keys, and the report shows up to three,
        // so the keys shown and the zero logit are the whole softmax row.
        let object = try TraceTests.json(["--prompt", "abc"])
        let model = try #require(object["model"] as? [String: Any])
        let (layers, heads) = (try #require(model["layers"] as? Int), try #require(model["num_heads"] as? Int))
        let attention = try #require(object["attention"] as? [[String: Any]])
        #expect(attention.map { $0["layer"] as? Int } == Array(0..<layers))
        for entry in attention {
            let perHead = try #require(entry["heads"] as? [[String: Any]])
            #expect(perHead.count == heads)
            for head in perHead {
                let keys = try #require(head["keys"] as? [[String: Any]])
                let probabilities = try keys.map { try #require($0["probability"] as? Double) }
                let extra = try #require(head["extra_logit"] as? Double)
                #expect(keys.compactMap { $0["position"] as? Int }.sorted() == [0, 1, 2])
                #expect(probabilities == probabilities.sorted(by: >), "keys are listed strongest first")
                // exp(0) / (1 + Σ exp(s)) lies strictly between 0 and 1.
                #expect(extra > 0 && extra < 1)
                #expect(abs(probabilities.reduce(0, +) + extra - 1) < 1e-5, "\(probabilities) + \(extra)")
            }
        }
        // The text report has a line for each layer and head, ending with the zero logit's share.
        let text = runGlam(["trace", "--prompt", "abc"])
        try #require(text.status == 0, "\(text.err)")
        for layer in 0..<layers {
            for head in 0..<heads {
                let line = text.out.split(separator: "\n").first { $0.hasPrefix("  layer \(layer) head \(head): ") }
                #expect(line?.contains("(extra zero logit 0.") == true, "layer \(layer) head \(head): \(line ?? "missing")")
            }
        }
    }

    @Test("a list of the slot holders is cut after the limit, and its ellipsis appears exactly when something is left out")
    func holderList() {
        for count in 0...12 {
            let items = (0..<count).map { "\($0) (1st)" }
            let text = TraceRun.listed(items, limit: 8)
            let shown = text.isEmpty ? [] : text.replacingOccurrences(of: ", …", with: "").components(separatedBy: ", ")
            #expect(shown == Array(items.prefix(8)), "\(count): \(text)")
            #expect(text.hasSuffix(", …") == (count > 8), "\(count): \(text)")
        }
    }

    @Test("the chart shades each cell by the router's probability: darker for more, white where the router gave none shown")
    func chartShading() throws {
        let scratch = ScratchDirectory()
        let svgPath = scratch.path("routing.svg").path
        let prompt = "The hacker wrote code"
        let result = runGlam(["trace", "--prompt", prompt, "--svg", svgPath, "--layer", "0"])
        try #require(result.status == 0, "\(result.err)")
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        let object = try TraceTests.json(["--prompt", prompt, "--layer", "0"])
        let layer = try #require((object["moe_layers"] as? [[String: Any]])?.first)
        let experts = try #require(layer["num_experts"] as? Int)
        // The cells in drawing order: row by row (token), expert by expert.
        let cellsDrawn = svg.matches(of: /<rect x="([0-9.]+)" y="([0-9.]+)" [^>]*fill="rgb\(([0-9]+),([0-9]+),255\)"/)
        let fills = cellsDrawn.map { (Int($0.output.3)!, Int($0.output.4)!) }
        // Cells side by side: along a row, each expert's cell one cell width right of the last,
        // under its column's header number.
        let headers = svg.matches(of: /<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle">([0-9]+)<\/text>/).map { Double($0.output.1)! }
        let xs = cellsDrawn.map { Double($0.output.1)! }
        #expect(fills.allSatisfy { $0.0 == $0.1 }, "a cell's red and green are one shade")
        let shades = fills.map(\.0)
        let tokens = try #require(layer["tokens"] as? [[String: Any]])
        try #require(shades.count == tokens.count * experts, "\(shades.count) cells for \(tokens.count) tokens × \(experts) experts")
        for (row, token) in tokens.enumerated() {
            let cells = Array(shades[(row * experts)..<((row + 1) * experts)])
            #expect(cells.allSatisfy { (55...255).contains($0) })
            let rowXs = Array(xs[(row * experts)..<((row + 1) * experts)])
            let width = try #require(rowXs.count > 1 ? rowXs[1] - rowXs[0] : 14)
            #expect(width > 0 && zip(rowXs, rowXs.dropFirst()).allSatisfy { abs($1 - $0 - width) < 1e-9 }, "row \(row): \(rowXs)")
            #expect(zip(rowXs, headers.prefix(experts)).allSatisfy { abs($0 + width / 2 - $1) < 1e-9 }, "row \(row): \(rowXs)")
            let chosen = try #require(token["experts"] as? [Int])
            // The router's favourite (the first choice) is the darkest cell of its row, and a row is
            // not one flat colour: the router is never uniform over the experts it shows.
            #expect(cells[chosen[0]] == cells.min(), "row \(row): \(cells)")
            #expect(Set(cells).count > 1, "row \(row): \(cells)")
        }
    }
}
