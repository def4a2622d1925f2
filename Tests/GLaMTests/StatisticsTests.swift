// The expert statistics that `glam train` prints and logs, recomputed from their definitions on
// padded batches: requested loads counted from the router's probabilities, kept loads from the
// dispatch tensor, the entropy from the probabilities, over two shares of a batch as on a mesh.

import Foundation
import Testing

@testable import GLaM
@testable import GLaMCLI

#if canImport(FoundationXML)
    import FoundationXML
#endif

struct StatisticsTests {
    @Test("expert loads, drops, imbalance and router entropy on padded batches equal their definitions", arguments: 0..<12)
    func expertStatisticsOnPaddedBatches(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) + 900)
        let (g, s, e) = (2, 6 + Int(generator.next() % 5), 3 + Int(generator.next() % 3))
        let configuration = Top2GatingConfiguration(numExperts: e, capacityFactor: [0.5, 1.0, 2.0][seed % 3], secondExpertPolicy: .all)
        var gatings: [Top2GatingResult<Float>] = []
        var requested = [Int](repeating: 0, count: e), kept = [Int](repeating: 0, count: e)
        var entropySum = 0.0, realTokens = 0
        for _ in 0..<2 {  // two shares of the batch, as two data cores hold them
            let logits = (0..<(g * s * e)).map { _ in Float(Double(generator.next() >> 11) * 0x1p-53 * 6 - 3) }
            // At least one padded token per share; a whole group padded in some seeds.
            var paddings = (0..<(g * s)).map { _ in generator.next() % 3 == 0 ? Float(1) : 0 }
            paddings[0] = 1
            if seed % 4 == 0 { for t in s..<(2 * s) { paddings[t] = 1 } }
            let gating = try top2Gating(
                logits: Variable(constant: Tensor(shape: [g, s, e], scalars: logits)),
                paddings: Tensor(shape: [g, s], scalars: paddings), configuration: configuration)
            gatings.append(gating)
            let dispatch = gating.dispatchTensor()  // [G, S, E, C]
            let c = dispatch.shape[3]
            for t in 0..<(g * s) where paddings[t] == 0 {
                let row = logits[(t * e)..<((t + 1) * e)].map(Double.init)
                let top = row.enumerated().sorted { $0.element > $1.element }.prefix(2).map(\.offset)
                for expert in top { requested[expert] += 1 }
                let maximum = row.max()!
                let exps = row.map { Foundation.exp($0 - maximum) }
                let p = exps.map { $0 / exps.reduce(0, +) }
                entropySum += -p.reduce(0) { $0 + ($1 > 0 ? $1 * Foundation.log($1) : 0) }
                realTokens += 1
            }
            for t in 0..<(g * s) {
                #expect(paddings[t] == 0 || dispatch.scalars[(t * e * c)..<((t + 1) * e * c)].allSatisfy { $0 == 0 }, "a pad is dispatched")
                for expert in 0..<e {
                    kept[expert] += Int(dispatch.scalars[((t * e + expert) * c)..<((t * e + expert + 1) * c)].reduce(0, +))
                }
            }
        }
        let statistics = ExpertLayerStatistics(layer: 2, gatings: gatings)
        #expect(statistics.layer == 2)
        #expect(statistics.requested == requested)
        #expect(statistics.kept == kept)
        let totalRequested = Double(requested.reduce(0, +)), mean = totalRequested / Double(e)
        #expect(abs(statistics.droppedFraction - (totalRequested - Double(kept.reduce(0, +))) / totalRequested) < 1e-12)
        #expect(abs(statistics.requestedImbalance - Double(requested.max()!) / mean) < 1e-12)
        #expect(abs(statistics.requestedMinimumShare - Double(requested.min()!) / mean) < 1e-12)
        let keptMean = Double(kept.reduce(0, +)) / Double(e)
        #expect(abs(statistics.keptImbalance - Double(kept.max()!) / keptMean) < 1e-12)
        #expect(abs(statistics.routerEntropy - entropySum / Double(realTokens)) < 1e-5)
    }

    @Test("statistics of an all-padding step are zero loads, no drops, balance 1 and entropy 0")
    func allPadding() throws {
        let configuration = Top2GatingConfiguration(numExperts: 4, capacityFactor: 1, secondExpertPolicy: .all)
        let gating = try top2Gating(
            logits: Variable(constant: Tensor<Float>(shape: [1, 4, 4], scalars: (0..<16).map { Float($0 % 5) })),
            paddings: Tensor<Float>(shape: [1, 4], scalars: [1, 1, 1, 1]), configuration: configuration)
        let statistics = ExpertLayerStatistics(layer: 0, gatings: [gating])
        #expect(gating.routerEntropy == 0)
        #expect(statistics.requested == [0, 0, 0, 0] && statistics.kept == [0, 0, 0, 0])
        #expect(statistics.droppedFraction == 0 && statistics.requestedImbalance == 1 && statistics.requestedMinimumShare == 1)
        #expect(statistics.routerEntropy == 0)
    }

    @Test("a line chart is well-formed SVG whose ticks, lines and bands all lie inside the plot area", arguments: [false, true])
    func chartGeometry(logarithmicX: Bool) throws {
        let series = [
            ChartSeries(
                name: "train", points: [(1, 9.5), (10, 6.1), (100, 4.2), (300, 3.9)], color: "#1f77b4",
                band: [(1, 9.0, 10.0), (100, 4.0, 4.5), (300, 3.5, 4.1)]),
            ChartSeries(name: "validation <&>", points: [(50, 5.0), (300, 4.4)], color: "#d62728"),
        ]
        let svg = lineChartSVG(title: "loss & more", xLabel: "step", yLabel: "nats", series: series, logarithmicX: logarithmicX)
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
        #expect(svg.hasSuffix("</svg>\n"))
        // The plot area, from the axes: the x axis runs from (left, bottom) to (right, bottom), the y axis up to top.
        let axis = try #require(
            svg.firstMatch(
                of: /<line x1="([0-9.]+)" y1="([0-9.]+)" x2="([0-9.]+)" y2="[0-9.]+" stroke="black"\/>\s*<line x1="[0-9.]+" y1="([0-9.]+)"/)
        )
        let (left, bottom, right, top) = (Double(axis.output.1)!, Double(axis.output.2)!, Double(axis.output.3)!, Double(axis.output.4)!)
        // Every x tick, and every point of every line and band, lies inside it.
        let ticks = svg.matches(of: /<line x1="([0-9.e+-]+)" y1="[0-9.]+" x2="[0-9.e+-]+" y2="([0-9.]+)" stroke="black"\/>/)
            .filter { Double($0.output.2) == bottom + 5 }.map { Double($0.output.1)! }
        #expect(
            ticks.count >= 2 && ticks.allSatisfy { $0 >= left - 1e-9 && $0 <= right + 1e-9 }, "x ticks \(ticks) outside [\(left), \(right)]"
        )
        let points = svg.matches(of: /points="([^"]*)"/).flatMap { $0.output.1.split(separator: " ") }.map { pair in
            pair.split(separator: ",").map { Double($0)! }
        }
        #expect(points.count == 4 + 2 + 6)
        #expect(
            points.allSatisfy { $0[0] >= left - 0.05 && $0[0] <= right + 0.05 && $0[1] >= top - 0.05 && $0[1] <= bottom + 0.05 },
            "points outside the plot area: \(points)")
        #expect(svg.contains("validation &lt;&amp;&gt;") && svg.contains("loss &amp; more"))
        // Every y grid line has its label, and every x tick its label.
        let grid = svg.matches(of: /stroke="#ddd"/).count, yLabels = svg.matches(of: /text-anchor="end"/).count
        #expect(grid >= 2 && yLabels == grid, "\(grid) y grid lines, \(yLabels) labels")
    }

    @Test("the validation loss is the cross-entropy per real token over the validation batches, recomputed from the logits")
    func validationLossByDefinition() throws {
        let trainer = try tinyTrainer()
        var options = trainer.options
        options.evaluationBatches = 2
        let loss = try Trainer.validationLoss(parameters: trainer.parameters, options: options, dataset: trainer.dataset)
        var total = 0.0, tokens = 0
        let b = min(options.batchSize, trainer.dataset.validation.count)
        for k in 0..<min(2, trainer.dataset.validation.count / b) {
            let batch = trainer.dataset.validation.batch(rows: Array((k * b)..<((k + 1) * b)))
            let output: DecoderOutput<Float> = try trainer.parameters.constants(batch)
            let logits = output.logits.value.scalars.map(Double.init), v = output.logits.shape[2]
            for position in 0..<(b * batch.length) where batch.paddings![position] == 0 {
                let row = logits[(position * v)..<((position + 1) * v)], top = row.max()!
                let logZ = top + Foundation.log(row.map { Foundation.exp($0 - top) }.reduce(0, +))
                total += logZ - row[row.startIndex + batch.targets![position]]
                tokens += 1
            }
        }
        #expect(tokens > 0 && abs(loss - total / Double(tokens)) < 1e-4 * (total / Double(tokens)), "\(loss) vs \(total / Double(tokens))")
    }

    @Test("a byte-level tokenizer needs 257 ids (256 bytes and end of text): 257 trains with no merges, 256 is refused")
    func smallestVocabulary() throws {
        let tokenizer = try BytePairTokenizer.train(on: "abc abc abd", vocabularySize: 257)
        #expect(tokenizer.merges.isEmpty && tokenizer.vocabularySize == 257)
        #expect(throws: ModelError.self) { try BytePairTokenizer.train(on: "abc", vocabularySize: 256) }
        #expect(try BytePairTokenizer.train(on: "abc abc abd", vocabularySize: 258).merges.count == 1)
    }

    @Test("byte-pair encoding applies a merge at its leftmost occurrence first: aaa is [aa, a]")
    func leftmostMergeFirst() throws {
        let tokenizer = try BytePairTokenizer(merges: [BytePairTokenizer.Merge(97, 97)])
        let pair = tokenizer.encode("aa")
        #expect(pair.count == 1)
        #expect(tokenizer.encode("aaa") == pair + [97])
        #expect(tokenizer.encode("aaaa") == pair + pair)
    }

    @Test("the planner's TPU v4 chip is the published one: 32 GiB of HBM, 275 TFLOP/s bfloat16, 1.2 TB/s")
    func tpuFigures() {
        #expect(TPUv4.hbmBytes == Double(32 << 30))
        #expect(TPUv4.peakFLOPs == 275e12 && TPUv4.hbmBandwidth == 1.2e12)
    }

    @Test("the statistics of no gating at all are empty: no expert, nothing dropped, no entropy")
    func statisticsOfNothing() {
        let none = ExpertLayerStatistics(layer: 3, gatings: [])
        #expect(none.layer == 3 && none.requested.isEmpty && none.kept.isEmpty)
        #expect(none.droppedFraction == 0 && none.routerEntropy == 0)
    }
}
