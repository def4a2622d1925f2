#!/usr/bin/env bash
# Builds and runs a package that depends on this one exactly as the README's "Use it as a package"
# section says (`.package(path: "../glam")`, product GLaM), from a scratch directory, with the
# README's library program as its code.
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
# The README's library program (Examples/UseTheLibrary, shown verbatim in "Using the library"),
# as a dependent package's own code: it reads no file of this repository, so it runs from anywhere.
cp "$repository/Examples/UseTheLibrary/main.swift" "$scratch/MyTool/Sources/MyTool/main.swift"
cd "$scratch/MyTool"
swift run -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA MyTool
