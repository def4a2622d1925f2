// `glam trace --html`: the page holds the `--json` object unchanged and, besides it, numbers that
// equal a recomputation from the same run's `--dump`; it refers to nothing outside itself, survives
// a prompt that tries to end its script, names code that exists, and refuses what it cannot hold.
// Scripts/trace/check_page.py opens it in a real browser (CI); these tests read the file.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

struct TracePageTests {
    /// One trace run's page data (the JSON object inside the page), its `--json` object and its dump.
    static func run(prompt: String, _ extra: [String] = []) throws -> (
        page: String, data: [String: Any], json: [String: Any], dump: [String: [Float]]
    ) {
        let scratch = ScratchDirectory()
        let html = scratch.path("trace.html"), dump = scratch.path("trace.safetensors")
        let result = runGlam(["trace", "--prompt", prompt, "--json", "--html", html.path, "--dump", dump.path] + extra)
        #expect(result.status == 0, "\(result.err)")
        let page = try String(contentsOf: html, encoding: .utf8)
        let opening = #"<script type="application/json" id="trace-data">"#
        let start = try #require(page.range(of: opening)).upperBound
        let end = try #require(page.range(of: "</script>", range: start..<page.endIndex)).lowerBound
        let data = try #require(try JSONSerialization.jsonObject(with: Data(page[start..<end].utf8)) as? [String: Any])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any])
        let file = try SafeTensorsFile(contentsOf: dump)
        var tensors: [String: [Float]] = [:]
        for (name, tensor) in file.tensors where tensor.dtype == .float32 { tensors[name] = tensor.floatTensor().scalars }
        return (page, data, json, tensors)
    }

    @Test("the page holds the --json object unchanged, whatever the prompt holds, and refers to nothing outside itself")
    func holdsTheJSONTrace() throws {
        let prompt = "a </script><!-- <script>alert(1)</script> café"
        let (page, data, json, _) = try Self.run(prompt: prompt)
        #expect((data["trace"] as? NSDictionary) == (json as NSDictionary), "the page's trace differs from --json")
        #expect((json["prompt"] as? String) == prompt)
        // The data element ends at the first "</script>": nothing of the prompt may end it earlier,
        // and the page's only scripts are its own two.
        #expect(page.components(separatedBy: "<script").count == 3, "a prompt added a script element")
        for outside in ["src=", "href=", "http://", "https://", "@import", "url("] {
            #expect(!page.contains(outside), "the page refers outside itself: \(outside)")
        }
    }

    @Test("every number the page adds to --json is recomputed from the dump: norms, router, strongest keys, slot rows")
    func numbersEqualTheDump() throws {
        let (_, data, json, dump) = try Self.run(prompt: "the cat and the dog and the cat and the dog and the cat")
        let tokens = try #require(json["tokens"] as? [[String: Any]]).count
        let model = try #require(json["model"] as? [String: Any])
        let (m, e) = (try #require(model["model_dim"] as? Int), try #require(model["num_experts"] as? Int))
        func row(_ name: String, _ index: Int) throws -> ArraySlice<Float> {
            let x = try #require(dump[name], "\(name) not dumped")
            return x[(index * m)..<((index + 1) * m)]
        }
        func norm(_ x: ArraySlice<Float>) -> Double { x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        func shownNorm(_ vector: Any?) throws -> Double { try #require((vector as? [String: Any])?["n"] as? Double) }
        let layers = try #require(data["layers"] as? [[String: Any]])
        #expect(layers.count == (model["layers"] as? Int))
        var slotRowsChecked = 0
        for layer in layers {
            let i = try #require(layer["layer"] as? Int)
            let vectors = try #require(layer["vectors"] as? [String: [Any]])
            for (name, rows) in vectors {
                #expect(rows.count == tokens)
                for t in 0..<tokens {
                    let expected = norm(try row("layers.\(i).\(name)", t))
                    #expect(abs(try shownNorm(rows[t]) - expected) <= 1e-9 * expected, "layer \(i) \(name) token \(t)")
                }
            }
            // Each head's strongest keys, by sorting the dumped probabilities.
            let attention = try #require(layer["attention"] as? [String: Any])
            let strongest = try #require(attention["strongest"] as? [[[String: Any]]])
            let p = try #require(dump["layers.\(i).attention.probabilities"])
            for t in 0..<tokens {
                for (head, entry) in strongest[t].enumerated() {
                    let r = p[((head * tokens + t) * tokens)..<((head * tokens + t + 1) * tokens)]
                    let order = r.indices.sorted { r[$0] > r[$1] || (r[$0] == r[$1] && $0 < $1) }.prefix(3).filter { r[$0] > 0 }
                    let keys = try #require(entry["keys"] as? [[String: Any]])
                    #expect(keys.map { $0["position"] as? Int } == order.map { $0 - r.startIndex }, "layer \(i) head \(head) token \(t)")
                    #expect(keys.map { ($0["probability"] as? Double).map(Float.init) } == order.map { r[$0] })
                }
            }
            guard layer["moe"] as? Bool == true else { continue }
            let router = try #require(layer["router"] as? [[Double]])
            let probabilities = try #require(dump["layers.\(i).moe.router_probabilities"])
            #expect(router.flatMap { $0 }.map(Float.init) == Array(probabilities.prefix(tokens * e)), "layer \(i) router")
            // A kept choice's slot row is the token's y going in (dispatch copies it).
            let slots = try #require(layer["slots"] as? [[Any]])
            for t in 0..<tokens {
                for k in 0..<2 {
                    guard let slot = slots[t][k] as? [String: Any] else { continue }
                    // (Foundation's JSON reader may round a 17-digit number by an ulp: hence a tolerance.)
                    let y = norm(try row("layers.\(i).ffn_norm", t))
                    #expect(abs(try shownNorm(slot["in"]) - y) <= 1e-12 * y, "layer \(i) token \(t) choice \(k)")
                    #expect(try shownNorm(slot["out"]) > 0)
                    slotRowsChecked += 1
                }
            }
        }
        #expect(slotRowsChecked > tokens, "too few kept choices to check")
        let final = try #require(data["final_norm"] as? [Any])
        for t in 0..<tokens {
            #expect(abs(try shownNorm(final[t]) - norm(try row("final_norm", t))) <= 1e-9 * norm(try row("final_norm", t)))
        }
    }

    @Test("each stage names files that exist and declare the functions it names, of types that exist")
    func stagesNameRealCode() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = try FileManager.default.subpathsOfDirectory(atPath: root.appendingPathComponent("Sources/GLaM").path)
            .filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOf: root.appendingPathComponent("Sources/GLaM/" + $0), encoding: .utf8) }.joined()
        for stage in TraceStage.all {
            for entry in stage.code.components(separatedBy: "; ") {
                let pieces = entry.components(separatedBy: ": ")
                #expect(pieces.count == 2, "\(stage.id): '\(entry)' is not 'path: Type.function'")
                let text = try String(contentsOf: root.appendingPathComponent(pieces[0]), encoding: .utf8)
                let name = pieces[1].split(separator: ".").map(String.init)
                let function = name.last!
                let declared = function == "init" ? ["init(", "init<"] : ["func \(function)(", "func \(function)<"]
                #expect(declared.contains { text.contains($0) }, "\(stage.id): \(pieces[0]) declares no \(function)")
                if name.count == 2 {
                    #expect(
                        ["struct", "class", "enum", "typealias"].contains { sources.contains("\($0) \(name[0])") },
                        "\(stage.id): no type \(name[0])")
                }
            }
        }
    }

    @Test("--html refuses a prompt longer than it holds, and the same file as another output")
    func refusals() {
        let scratch = ScratchDirectory()
        let page = scratch.path("page.html").path
        let long = runGlam(["trace", "--prompt", String(repeating: "x", count: traceHTMLMaximumTokens + 1), "--html", page])
        #expect(long.status == 2 && long.err.contains("--html takes at most \(traceHTMLMaximumTokens)"), "\(long.err)")
        #expect(!FileManager.default.fileExists(atPath: page))
        let fits = runGlam(["trace", "--prompt", String(repeating: "x", count: traceHTMLMaximumTokens), "--html", page])
        #expect(fits.status == 0 && FileManager.default.fileExists(atPath: page), "\(fits.err)")
        let same = runGlam(["trace", "--prompt", "ab", "--html", page, "--dump", page])
        #expect(same.status == 2 && same.err.contains("--dump and --html name the same file"), "\(same.err)")
    }
}
