#!/usr/bin/env bash
# Builds and runs a package that depends on this one exactly as the README's "Use it as a package"
# section says (`.package(path: "../glam")`, product GLaM), from a scratch directory.
set -euo pipefail
repository=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ln -s "$repository" "$scratch/glam"
mkdir -p "$scratch/MyTool/Sources/MyTool"
cat > "$scratch/MyTool/Package.swift" <<'SWIFT'
// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "MyTool",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../glam"),
    ],
    targets: [
        .executableTarget(name: "MyTool", dependencies: [.product(name: "GLaM", package: "glam")]),
    ]
)
SWIFT
cat > "$scratch/MyTool/Sources/MyTool/main.swift" <<'SWIFT'
import GLaM

// A fresh tiny model, one forward pass with an observer: the package works from outside.
let parameters = ModelParameters(configuration: ModelConfiguration.named("tiny")!, seed: 0)
let trace = ForwardTrace()
let batch = TokenBatch(batchSize: 1, length: 3, tokens: [1, 2, 3])
let output: DecoderOutput<Float> = try parameters.constants(batch, observer: trace)
print("dependent package: logits \(output.logits.shape), \(trace.names.count) traced intermediates")
SWIFT
cd "$scratch/MyTool"
swift run -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA MyTool
