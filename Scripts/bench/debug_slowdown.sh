#!/usr/bin/env bash
# How much slower a debug build is: the same `glam bench model` run on a debug build and on the
# README's fast release build, one thread each, and the ratio of their best tokens per second per
# mode. Prints the CPU it ran on. Builds both (the debug build in .build-debug), one after the other.
#   bash Scripts/bench/debug_slowdown.sh [--config tiny] [--batch 2] [--length 32]
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then set -- --config tiny --batch 2 --length 32; fi
swift build -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA --product glam >/dev/null
swift build --scratch-path .build-debug --product glam >/dev/null
release=$(swift build -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA --product glam --show-bin-path)/glam
debug=$(swift build --scratch-path .build-debug --product glam --show-bin-path)/glam
common=(bench model "$@" --threads 1 --repeats 3 --json)
"$release" "${common[@]}" > /tmp/glam-slowdown-release.jsonl
"$debug" "${common[@]}" 2>/dev/null > /tmp/glam-slowdown-debug.jsonl
python3 - "$release" <<'PY'
import json, platform, sys
def read(path):
    return {row["mode"]: row for row in map(json.loads, open(path))}
fast, slow = read("/tmp/glam-slowdown-release.jsonl"), read("/tmp/glam-slowdown-debug.jsonl")
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
print(f"CPU: {cpu}")
print(f"GEMM at n = 1024: release {fast['forward']['gemm_peak_gflops']} GFLOP/s, debug {slow['forward']['gemm_peak_gflops']} GFLOP/s")
for mode in fast:
    ratio = fast[mode]["tokens_per_second"] / slow[mode]["tokens_per_second"]
    print(f"{mode}: release {fast[mode]['tokens_per_second']:.0f} tokens/s, debug {slow[mode]['tokens_per_second']:.1f} tokens/s: {ratio:.0f} times slower")
PY
