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

    @Test("a padded column is its text then spaces, at least one: a value never runs into the next column")
    func paddedColumns() {
        for width in 0...6 {
            for length in 0...8 {
                let text = String(repeating: "x", count: length)
                let padded = TraceRun.padded(text, width)
                #expect(padded.hasPrefix(text) && padded.dropFirst(length).allSatisfy { $0 == " " }, "\(length) in \(width)")
                #expect(padded.count == max(width, length + 1), "\(length) in \(width): \(padded.count)")
            }
        }
    }

    @Test(
        "the routing table says, for every token and choice, what --json says: expert, gates, queue place, kept or dropped, and who filled a full expert"
    )
    func routingTableMatchesJSON() throws {
        let prompt = String(repeating: "a", count: 24) + " The hacker wrote code."
        let object = try TraceTests.json(["--prompt", prompt])
        let text = runGlam(["trace", "--prompt", prompt])
        try #require(text.status == 0, "\(text.err)")
        let lines = text.out.components(separatedBy: "\n")
        let layers = try #require(object["moe_layers"] as? [[String: Any]])
        var outcomesSeen = Set<String>()
        for layer in layers {
            let (index, capacity) = (try #require(layer["layer"] as? Int), try #require(layer["capacity"] as? Int))
            let start = try #require(lines.firstIndex { $0.hasPrefix("layer \(index), mixture of experts:") })
            let header = lines[start + 1]
            let columns = try ["1st:", "2nd:", "combine"].map { try #require(header.range(of: $0)).lowerBound.utf16Offset(in: header) }
            var row = start + 2
            for token in try #require(layer["tokens"] as? [[String: Any]]) {
                let position = try #require(token["position"] as? Int)
                let line = lines[row]
                row += 1
                #expect(line.hasPrefix("  \(position) "), "layer \(index): \(line)")
                let experts = try #require(token["experts"] as? [Int]), outcomes = try #require(token["outcomes"] as? [String])
                let raw = try #require(token["raw_gates"] as? [Double]),
                    renormalized = try #require(token["renormalized_gates"] as? [Double])
                let queue = try #require(token["queue_positions"] as? [Int]), combine = try #require(token["gates"] as? [Double])
                let aligned = quotedText(try #require((object["tokens"] as? [[String: Any]])?[position]["text"] as? String)).count < 11
                for k in 0..<2 {
                    outcomesSeen.insert(outcomes[k])
                    let expected: String
                    switch outcomes[k] {
                    case "kept", "over_capacity":
                        expected =
                            "e\(experts[k]) \(format(raw[k], 3))→\(format(renormalized[k], 3))  \(queue[k])/\(capacity) "
                            + (outcomes[k] == "kept" ? "kept" : "DROPPED")
                    default: expected = "none"
                    }
                    #expect(line.contains(expected), "layer \(index) position \(position) choice \(k): \(expected) in \(line)")
                    if aligned {
                        let field = String(line.utf16.dropFirst(columns[k]).prefix(expected.utf16.count))!
                        #expect(field == expected, "layer \(index) position \(position): column \(columns[k]) holds \(field)")
                    }
                }
                if aligned {
                    let field = String(line.utf16.dropFirst(columns[2]))!
                    #expect(field.hasPrefix("\(format(combine[0], 3)) \(format(combine[1], 3))"), "\(field)")
                }
                // A dropped choice is followed by a line naming who holds the full expert's slots.
                let filledBy = try #require(token["filled_by"] as? [[[String: Any]]])
                for k in 0..<2 where outcomes[k] == "over_capacity" {
                    let holders = filledBy[k].map { "\($0["position"] as! Int) (\(($0["choice"] as! Int) == 0 ? "1st" : "2nd"))" }
                    #expect(holders.count == capacity)
                    let note = lines[row]
                    row += 1
                    #expect(
                        note.contains("its \(k == 0 ? "1st" : "2nd") choice, expert \(experts[k]), was full")
                            && note.hasSuffix("positions " + TraceRun.listed(holders, limit: 8)), "\(note)")
                }
            }
            // No more rows than tokens: the table ends here.
            #expect(row == lines.count || lines[row].dropFirst(2).first?.isNumber != true, "\(lines[row])")
        }
        #expect(outcomesSeen.isSuperset(of: ["kept", "over_capacity"]), "the prompt fills some expert: \(outcomesSeen)")
        // Sections are told apart by a blank line before each one's heading.
        for heading in ["layer 0, mixture of experts:", "attention of position", "next token after position"] {
            let index = try #require(lines.firstIndex { $0.hasPrefix(heading) }, "\(heading)")
            #expect(index > 0 && lines[index - 1].isEmpty, "no blank line before \(heading)")
        }
    }

    @Test(
        "the chart: every mark inside the canvas with one margin on every side, one cell per token and expert, one mark per kept or dropped choice"
    )
    func chartLayout() throws {
        let scratch = ScratchDirectory()
        for (prompt, layerOptions) in [("a", ["--layer", "0"]), (String(repeating: "a", count: 24) + " The hacker", []), ("ok", [])] {
            let svgPath = scratch.path("routing.svg").path
            let result = runGlam(["trace", "--prompt", prompt, "--svg", svgPath] + layerOptions)
            try #require(result.status == 0, "\(result.err)")
            let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
            #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"), "one document, ending its last line")
            let object = try TraceTests.json(["--prompt", prompt] + layerOptions)
            let layers = try #require(object["moe_layers"] as? [[String: Any]])
            let canvas = try #require(svg.firstMatch(of: /<svg [^>]*width="([0-9]+)" height="([0-9]+)"/))
            let (width, height) = (Double(canvas.output.1)!, Double(canvas.output.2)!)
            let title = try #require(svg.firstMatch(of: /<text x="([0-9.]+)" y="18"[^>]*>([^<]*)</))
            // The title names the prompt (XML-escaped) and its token count.
            #expect(
                title.output.2
                    == escapedForXML("glam trace: routing of \"\(prompt)\" (\(object["tokens"].map { ($0 as! [Any]).count } ?? -1) tokens)")
            )
            let margin = Double(title.output.1)!
            #expect(margin > 0)
            // Every text, cell and mark starts inside the canvas, no nearer its left edge than the title.
            let xs = svg.matches(of: /<(?:text|rect|circle|path) (?:x|cx|d)="M?([0-9.]+)/).map { Double($0.output.1)! }
            #expect(xs.min() == margin, "the leftmost element is at the title's margin: \(xs.min() ?? -1) vs \(margin)")
            #expect(xs.allSatisfy { $0 < width - margin })
            let cells = svg.matches(of: /<rect x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="([0-9.]+)"/).map {
                (x: Double($0.output.1)!, y: Double($0.output.2)!, w: Double($0.output.3)!, h: Double($0.output.4)!)
            }
            let experts = try #require(object["model"] as? [String: Any])["num_experts"] as! Int
            let tokens = (object["tokens"] as? [Any])?.count ?? 0
            #expect(cells.count == layers.count * tokens * experts)
            // The last row and the rightmost panel end one margin before the canvas does (the
            // canvas may be wider, for the title and legend: never narrower than the legend at
            // half an em a character).
            let bottom = cells.map { $0.y + $0.h }.max() ?? 0, right = cells.map { $0.x + $0.w }.max() ?? 0
            #expect(abs(bottom + margin - height) < 1, "bottom \(bottom) + \(margin) vs \(height)")
            #expect(right + margin <= width + 1e-9)
            let longest = svg.matches(of: /<text [^>]*>([^<]*)<\/text>/).map { $0.output.1.count }.max() ?? 0
            #expect(width >= 2 * margin + Double(longest) * 0.5 * 11, "width \(width) for a text of \(longest) characters")
            // Marks: a filled dot per kept 1st choice, a ring per kept 2nd, a cross per drop.
            var kept = [0, 0], dropped = 0
            for layer in layers {
                for token in layer["tokens"] as! [[String: Any]] {
                    let outcomes = token["outcomes"] as! [String]
                    for k in 0..<2 {
                        if outcomes[k] == "kept" { kept[k] += 1 }
                        if outcomes[k] == "over_capacity" { dropped += 1 }
                    }
                }
            }
            #expect(svg.matches(of: /<circle [^>]*fill="#123"/).count == kept[0])
            #expect(svg.matches(of: /<circle [^>]*fill="none"/).count == kept[1])
            #expect(svg.matches(of: /<path d="M/).count == dropped)
        }
    }
}

struct TraceOptionTests {
    @Test(
        "each head's reported keys are the strongest entries of that head's own row of the dumped probabilities, at the followed position")
    func attentionKeysAreTheDumpedRows() throws {
        let scratch = ScratchDirectory()
        let dump = scratch.path("trace.safetensors")
        let prompt = "The hacker wrote"
        for position in [1, 5] {
            let object = try TraceTests.json(["--prompt", prompt, "--position", "\(position)", "--dump", dump.path])
            let file = try SafeTensorsFile(contentsOf: dump)
            let attention = try #require(object["attention"] as? [[String: Any]])
            let configuration = try #require(ModelConfiguration.named("tiny"))
            for entry in attention {
                let layer = try #require(entry["layer"] as? Int)
                #expect(entry["position"] as? Int == position)
                let p = try #require(file.tensors["layers.\(layer).attention.probabilities"]).floatTensor()  // [B, N, T, L]
                let heads = try #require(entry["heads"] as? [[String: Any]])
                #expect(heads.count == p.shape[1] && heads.count > 1)
                for (head, reported) in heads.enumerated() {
                    let row = (0..<p.shape[3]).map { p[0, head, position, $0] }
                    // The three strongest keys with any probability, strongest first (the lower position of equals first).
                    let strongest = row.indices.filter { row[$0] > 0 }.sorted { (row[$0], -$0) > (row[$1], -$1) }.prefix(3)
                    let keys = try #require(reported["keys"] as? [[String: Any]])
                    #expect(keys.compactMap { $0["position"] as? Int } == Array(strongest), "layer \(layer) head \(head)")
                    for key in keys {
                        let k = try #require(key["position"] as? Int)
                        // The report prints 16 significant digits of the Float.
                        #expect(
                            abs(try #require(key["probability"] as? Double) - Double(row[k])) < 1e-12,
                            "layer \(layer) head \(head) key \(k)")
                        let bucket = relativePositionBucket(
                            distance: position - k, buckets: configuration.relativeBuckets, maxDistance: configuration.relativeMaxDistance)
                        #expect(key["bucket"] as? Int == bucket)
                    }
                    // The extra zero logit takes what the keys do not.
                    let extra = try #require(reported["extra_logit"] as? Double)
                    #expect(abs(extra - Double(1 - row.reduce(0, +))) < 1e-6, "layer \(layer) head \(head)")
                }
            }
        }
    }

    @Test("--layer and --position take the model's last layer and the prompt's last position, and refuse one past either")
    func layerAndPositionBounds() throws {
        let layers = try #require(ModelConfiguration.named("tiny")).numLayers
        let prompt = "abcd"  // four byte tokens
        for (option, last) in [("layer", layers - 1), ("position", 3)] {
            let accepted = runGlam(["trace", "--prompt", prompt, "--\(option)", "\(last)"])
            #expect(accepted.status == 0, "--\(option) \(last): \(accepted.err)")
            let refused = runGlam(["trace", "--prompt", prompt, "--\(option)", "\(last + 1)"])
            #expect(
                refused.status == 2 && refused.err.contains("--\(option) must be an integer in 0...\(last), got '\(last + 1)'"),
                "--\(option) \(last + 1): \(refused.err)")
        }
        // --layer shows that layer alone.
        let object = try TraceTests.json(["--prompt", prompt, "--layer", "\(layers - 1)"])
        #expect((object["attention"] as? [[String: Any]])?.map { $0["layer"] as? Int } == [layers - 1])
    }

    @Test("the routing chart of a model with no MoE layer says so instead of drawing an empty picture")
    func chartOfADenseModel() throws {
        let scratch = ScratchDirectory()
        var configuration = try #require(ModelConfiguration.named("tiny-dense"))
        let tokenizer = try BytePairTokenizer(merges: [])
        configuration.vocabSize = tokenizer.vocabularySize
        #expect(configuration.moeLayers.isEmpty)
        let model = scratch.path("dense.safetensors")
        try ModelParameters(configuration: configuration, seed: 1).write(to: model, tokenizer: tokenizer)
        for (checkpoint, hasMoE) in [(model.path, false), (nil, true)] {
            let svg = scratch.path("chart-\(hasMoE).svg")
            let result = runGlam(["trace", "--prompt", "abc", "--svg", svg.path] + (checkpoint.map { ["--checkpoint", $0] } ?? []))
            #expect(result.status == 0, "\(result.err)")
            let text = try String(contentsOf: svg, encoding: .utf8)
            #expect(text.contains("this model has no MoE layer") == !hasMoE, "\(checkpoint ?? "tiny")")
            #expect(text.contains("layer 0: E = ") == hasMoE)
        }
    }

    @Test("a non-ASCII prompt's tokens show their bytes where a token splits a character, never U+FFFD")
    func nonASCIIPromptTokens() throws {
        let object = try TraceTests.json(["--prompt", "é!"])  // byte-level: C3, A9, "!"
        let tokens = try #require(object["tokens"] as? [[String: Any]])
        #expect(tokens.compactMap { $0["text"] as? String } == ["<0xC3>", "<0xA9>", "!"])
        // The predictions too: on a byte-level tokenizer, ASCII ids as their character, other bytes as <0xHH>.
        let predictions = try #require((object["predictions"] as? [String: Any])?["top"] as? [[String: Any]])
        #expect(!predictions.isEmpty)
        for prediction in predictions {
            let id = try #require(prediction["id"] as? Int)
            let expected =
                id < 128 ? String(UnicodeScalar(UInt8(id))) : id < 256 ? "<0x" + String(id, radix: 16, uppercase: true) + ">" : ""
            #expect(prediction["text"] as? String == expected, "\(prediction)")
        }
        let text = runGlam(["trace", "--prompt", "é!"])
        #expect(text.status == 0 && text.out.contains("\"<0xC3>\"") && !text.out.contains("\u{fffd}"), "\(text.out)")
        #expect(!text.out.contains("\\u{fffd}"), "\(text.out)")  // nor escaped
    }
}
