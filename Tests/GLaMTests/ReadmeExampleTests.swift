// The README's library example, compiled and run, so the documentation cannot drift from the API.

import Foundation
import GLaM
import Testing

struct ReadmeExampleTests {
    @Test func readmeExample() throws {
        let x = Tensor<Float>(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let w = Tensor<Float>(shape: [3, 4], scalars: (0..<12).map(Float.init))
        let y = matmul(x, w).softmax()  // [2, 4]
        #expect(y.shape == [2, 4])

        let tape = Tape<Float>()
        let wv = tape.variable(w)
        let loss = matmul(Variable(constant: x), wv).logSoftmax().mean()
        let grads = tape.gradients(of: loss)
        #expect(grads[wv]?.shape == [3, 4])

        let file = SafeTensorsFile(tensors: ["w": SafeTensor(w)], metadata: ["note": "example"])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try file.write(to: url)
        #expect(try SafeTensorsFile(contentsOf: url) == file)
    }

    @Test("the README's library program is Examples/UseTheLibrary/main.swift, verbatim (CI runs that file)")
    func readmeProgramIsTheExample() throws {
        let root = fixturesDirectory.deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try String(contentsOf: root.appendingPathComponent("Examples/UseTheLibrary/main.swift"), encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Using the library\n").dropFirst().first)
        let block = try #require(section.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```\n").first)
        let program = try #require(example.range(of: "import Foundation").map { String(example[$0.lowerBound...]) })
        #expect(block == program)
        // Under 40 lines, and it reads no file of this repository (so it runs from any directory).
        #expect(example.split(separator: "\n", omittingEmptySubsequences: false).count < 40)
        #expect(!example.contains("Fixtures/") && !example.contains("contentsOfFile"))
    }

    @Test func readmeTraceExample() throws {
        let parameters = try ModelParameters(configuration: try namedConfiguration("tiny"), seed: 0)
        let batch = TokenBatch(batchSize: 1, length: 4, tokens: [1, 2, 3, 4])
        let trace = ForwardTrace()
        let output: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
        #expect(trace["layers.0.moe.router_probabilities"]?.shape == [1, 4, 4])  // [G, S, E]
        #expect(trace["logits"] == output.logits.value)
    }
}
