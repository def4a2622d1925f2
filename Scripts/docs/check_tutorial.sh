#!/usr/bin/env bash
# Compiles and runs every step of the DocC tutorial "Follow a token in code" as the program of a
# package that depends on this one (as the README's "Use it as a package" says), and checks that
# each step with a console file (step-through-NN-NN-output.txt) prints exactly that file.
# `--write` rewrites the console files from the runs instead (after changing a step).
set -euo pipefail
repository=$(cd "$(dirname "$0")/../.." && pwd)
steps="$repository/Sources/GLaM/GLaM.docc/Resources/tutorial"
write=${1:-}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ln -s "$repository" "$scratch/glam"
mkdir -p "$scratch/Tutorial"
targets=""
for file in "$steps"/step-through-??-??.swift; do
    name=$(basename "$file" .swift | tr -d '-')
    mkdir -p "$scratch/Tutorial/Sources/$name"
    cp "$file" "$scratch/Tutorial/Sources/$name/main.swift"
    targets+="        .executableTarget(name: \"$name\", dependencies: [.product(name: \"GLaM\", package: \"glam\")]),"$'\n'
done
cat > "$scratch/Tutorial/Package.swift" <<SWIFT
// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Tutorial",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../glam")],
    targets: [
$targets    ]
)
SWIFT
cd "$scratch/Tutorial"
flags=(-c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA)
swift build "${flags[@]}" 2>&1 | grep -E "warning:|error:" && { echo "check_tutorial: the steps do not build cleanly"; exit 1; }
bin=$(swift build "${flags[@]}" --show-bin-path)
failed=0
for file in "$steps"/step-through-??-??.swift; do
    base=$(basename "$file" .swift)
    name=$(echo "$base" | tr -d '-')
    expected="$steps/$base-output.txt"
    if ! "$bin/$name" > "$scratch/$base.out" 2> "$scratch/$base.err"; then
        echo "FAILED $base: exit status $?"; cat "$scratch/$base.err"; failed=1; continue
    fi
    if [[ "$write" == "--write" ]]; then
        if [[ -f "$expected" ]]; then cp "$scratch/$base.out" "$expected"; echo "wrote $expected"; fi
    elif [[ -f "$expected" ]]; then
        if diff -u "$expected" "$scratch/$base.out"; then echo "ok $base (output as shown)"; else echo "FAILED $base: output differs"; failed=1; fi
    else
        echo "ok $base (runs)"
    fi
done
exit $failed
