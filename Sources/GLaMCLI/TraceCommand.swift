// `glam trace`: one forward pass of a prompt, told step by step for a learner. It runs the model
// with a `ForwardTrace` observer and prints, for every MoE layer and token, the router's choice,
// gates, capacity slots and drops (`MoELayerTrace`), the strongest keys a token attends to, and the
// next-token predictions; `--json`, `--dump` and `--svg` give the same as data, tensors and a picture.

import Foundation
import GLaM

enum TraceCommand: Subcommand {
    static let name = "trace"
    static let summary = "Follow a prompt through the model: routing, gates, drops, attention, predictions."
    static let help = """
        USAGE: glam trace [--checkpoint FILE] --prompt TEXT [--layer L] [--position P] [--json]
                          [--dump FILE] [--svg FILE] [--html FILE] [--mesh DxM] [--seed S]

        Runs one forward pass of the prompt and shows what GLaM computes on the way. Without
        --checkpoint it uses a freshly initialised `tiny` model (seed S, default \(defaultSeed)) with a byte-level
        tokenizer (one token per byte), so it runs at once; with one, the trained model and its
        tokenizer. The prompt is routed as one group (G = 1, S = the prompt's tokens), so every
        token's route depends on this prompt alone; the capacity C follows from S as in training.

        For every MoE layer and token: the router's most probable experts, the two experts top-2
        gating chose, their gates before and after renormalisation, each choice's place in its
        expert's queue against C, whether it was dropped and which earlier assignments filled the
        expert, the combine weights, and the token's share of the load-balancing loss. For the token
        at --position (default: the last), the strongest keys of each attention head with their
        relative-position bucket, and the top next-token predictions. --layer L shows layer L only.

          --json        print one JSON object instead (schema: the "Follow one token" article)
          --dump FILE   write every traced intermediate as one safetensors file (names such as
                        layers.0.moe.router_logits [G, S, E]; list in Sources/GLaM/Model/Tracer.swift)
          --svg FILE    draw tokens × experts for each MoE layer, drops marked
          --html FILE   write one self-contained page that steps through each layer's stages
                        (equations, code, the numbers of any token you click; prompts of at most
                        \(traceHTMLMaximumTokens) tokens); it opens from disk and needs no network
          --mesh DxM    run on a virtual mesh of D `data` × M `mdl` cores: the prompt is repeated as
                        D rows (a row cannot be split across data cores), experts are split E over
                        data and H over mdl; shows which cores hold each chosen expert and the bytes
                        the pass moved. The routing equals one device's.
        """

    /// The seed of the fresh `tiny` model traced without --checkpoint.
    static let defaultSeed = 0

    static func run(_ arguments: [String], output: inout Output) throws -> Int32 {
        let parsed = try Arguments(
            arguments, command: "trace", options: ["checkpoint", "prompt", "layer", "position", "dump", "svg", "html", "mesh", "seed"],
            flags: ["json"])
        guard parsed.positionals.isEmpty else { throw UsageError("trace: unexpected argument '\(parsed.positionals[0])'") }
        guard let prompt = parsed.value("prompt"), !prompt.isEmpty else { throw UsageError("trace: --prompt TEXT is required") }
        let inputs = parsed.value("checkpoint").map { [URL(fileURLWithPath: $0)] } ?? []
        let dumpURL = try parsed.outputFile("dump", protecting: inputs)
        let svgURL = try parsed.outputFile("svg", protecting: inputs)
        let htmlURL = try parsed.outputFile("html", protecting: inputs)
        let outputs = [("dump", dumpURL), ("svg", svgURL), ("html", htmlURL)].compactMap { name, url in url.map { (name, $0) } }
        for (i, a) in outputs.enumerated() {
            for b in outputs[(i + 1)...] where a.1.standardizedFileURL == b.1.standardizedFileURL {
                throw UsageError("trace: --\(a.0) and --\(b.0) name the same file \(a.1.path)")
            }
        }
        let (trained, tokenizer, source) = try model(checkpoint: parsed.value("checkpoint"), seed: parsed.integer("seed", in: 0...Int.max))
        let ids = tokenizer.encode(prompt)
        guard (1...1024).contains(ids.count) else {
            throw UsageError("trace: the prompt is \(ids.count) tokens; trace takes 1 to 1024 (attention maps grow as T²)")
        }
        if htmlURL != nil, ids.count > traceHTMLMaximumTokens {
            throw UsageError(
                "trace: the prompt is \(ids.count) tokens; --html takes at most \(traceHTMLMaximumTokens) (the page holds every head's T × T probabilities)"
            )
        }
        let mesh = try parsed.mesh("mesh")
        let layout = try mesh.map { try MeshLayout(mesh: $0) }
        let rows = layout?.dataCores ?? 1
        // One routing group per row (the prompt, repeated once per data core on a mesh).
        var configuration = trained.configuration
        configuration.numGroups = rows
        let parameters = GLaMModel(configuration: configuration) { trained[$0] }
        let t = ids.count
        let batch = TokenBatch(batchSize: rows, length: t, tokens: Array((0..<rows).map { _ in ids }.joined()))
        let moeLayers = configuration.moeLayers
        let layer = try parsed.integer("layer", in: 0...(configuration.numLayers - 1))
        let position = try parsed.integer("position", in: 0...(t - 1))

        let trace = ForwardTrace()
        var run = TraceRun(
            prompt: prompt, source: source, tokenizer: tokenizer, configuration: configuration, tokens: ids,
            texts: ids.map { tokenizer.displayText(of: $0) },
            trace: trace, layer: layer, position: position)
        if let layout {
            let ledger = CommunicationLedger()
            let cores: [MeshCoreForward]
            do {
                cores = try layout.forward(
                    parameters, batch: batch, ledger: ledger, observers: (0..<layout.mesh.coreCount).map { $0 == 0 ? trace : nil })
            } catch let error as MeshError {
                throw UsageError("trace: --mesh \(parsed.value("mesh")!) does not fit: \(error.description)")
            }
            // Core 0 holds row 0 (the prompt) and its group.
            run.moe = zip(moeLayers, cores[0].gatings).map {
                MoELayerTrace(layer: $0, gating: $1, paddings: nil, configuration: configuration.gating)
            }
            run.logits = cores[0].logits
            run.mesh = MeshSummary(layout: layout, ledger: ledger, numExperts: configuration.numExperts)
        } else {
            let output: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
            run.moe = zip(moeLayers, output.gatings).map {
                MoELayerTrace(layer: $0, gating: $1, paddings: nil, configuration: configuration.gating)
            }
            run.logits = output.logits.value
        }

        if let dumpURL { try run.dump(to: dumpURL, protecting: inputs) }
        if let svgURL { try FileAccess.writeAtomically(Data(TraceChart.svg(run).utf8), to: svgURL, protecting: inputs) }
        if let htmlURL { try FileAccess.writeAtomically(Data(try run.html().utf8), to: htmlURL, protecting: inputs) }
        if parsed.has("json") {
            output.line(try run.json())
        } else {
            for line in run.text() { output.line(line) }
        }
        return 0
    }

    /// The model to trace: a checkpoint's, or a fresh seeded `tiny` with a byte-level tokenizer.
    static func model(checkpoint path: String?, seed: Int?) throws -> (ModelParameters, BytePairTokenizer, String) {
        guard let path else {
            var configuration = ModelConfiguration.named("tiny")!
            let tokenizer = try BytePairTokenizer(merges: [])
            configuration.vocabSize = tokenizer.vocabularySize
            let seed = UInt64(seed ?? defaultSeed)
            return (
                try ModelParameters(configuration: configuration, seed: seed), tokenizer,
                "a freshly initialised tiny model (seed \(seed), byte-level tokenizer; pass --checkpoint for a trained one)"
            )
        }
        do {
            let model = try ModelFile(contentsOf: URL(fileURLWithPath: path))
            return (model.parameters, try model.requireTokenizer(for: "trace"), path + (model.step.map { " (step \($0))" } ?? ""))
        } catch {
            throw UsageError("trace: \(error.description)")
        }
    }
}

/// Where a mesh trace ran: the mesh, the bytes each axis moved, and the cores of each expert.
struct MeshSummary {
    let dataCores, modelCores: Int
    /// Per axis, the bytes every core sent, summed over cores.
    let bytesData, bytesModel: Int
    /// For each expert, the cores holding a part of it (all `mdl` cores of its `data` coordinate).
    let coresOfExpert: [[Int]]

    init(layout: MeshLayout, ledger: CommunicationLedger, numExperts e: Int) {
        let count = layout.mesh.coreCount
        (dataCores, modelCores) = (layout.dataCores, layout.modelCores)
        bytesData = ledger.bytesSent(along: DeviceMesh.dataAxisName, coreCount: count).reduce(0, +)
        bytesModel = ledger.bytesSent(along: DeviceMesh.modelAxisName, coreCount: count).reduce(0, +)
        let perCore = max(e / layout.dataCores, 1)
        coresOfExpert = (0..<e).map { expert in (0..<count).filter { layout.dataCoordinate(of: $0) == expert / perCore } }
    }
}
