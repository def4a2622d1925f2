#!/usr/bin/env python3
"""SGEMM: `glam bench gemm` against numpy's OpenBLAS, measured side by side in one run.

For every thread count and size, the two are run alternately for --rounds rounds (default 3) and
each side keeps its best GFLOP/s, so a noisy neighbour hurts both alike. numpy runs in a child
process with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (a host that
sets them can pin OpenBLAS to an older kernel than its CPU runs, Haswell's on an AVX-512 machine,
which would flatter glam) and OPENBLAS_NUM_THREADS set to the thread count. Nothing else in the environment changes.

With --model-shapes it times the products a training step of `small` (B = 8, T = 128) and
`medium` (B = 4, T = 256) runs instead, in their forward and backward layouts (`glam bench gemm
--shape M,N,K,BATCH --layout L`; numpy: np.matmul on the same, transposed views for t).

Usage (from the repository root):
    python3 Scripts/bench_gemm.py                 # builds the fast release binary if needed
    python3 Scripts/bench_gemm.py --baseline      # also a build without the CPU flags
    python3 Scripts/bench_gemm.py --sizes 512 1024 --threads 1 2 --rounds 5
    python3 Scripts/bench_gemm.py --model-shapes
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_FLAGS = ["-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]

# The products of one training step, (M, N, K, BATCH, layout): forward x·W, backward dX = G·Wᵀ
# ("nt") and dW = Xᵀ·G ("tn"), for the projections, the FFN, the output logits, the experts (E
# batches of capacity rows) and attention (B·N batches of T × T × D).
MODEL_SHAPES = {
    "small": [(1024, 256, 256, 1, "nn"), (1024, 256, 256, 1, "nt"), (256, 256, 1024, 1, "tn"),
              (1024, 512, 256, 1, "nn"), (1024, 256, 512, 1, "nt"), (256, 512, 1024, 1, "tn"),
              (1024, 2048, 256, 1, "nt"), (1024, 256, 2048, 1, "nn"), (2048, 256, 1024, 1, "tn"),
              (512, 512, 256, 8, "nn"), (512, 256, 512, 8, "nt"), (256, 512, 512, 8, "tn"),
              (128, 128, 64, 32, "nt"), (128, 64, 128, 32, "nn")],
    "medium": [(1024, 512, 512, 1, "nn"), (512, 512, 1024, 1, "tn"), (1024, 1024, 512, 1, "nn"),
               (1024, 512, 1024, 1, "nt"), (1024, 2048, 512, 1, "nt"), (256, 1024, 512, 16, "nn"),
               (256, 512, 1024, 16, "nt"), (512, 1024, 256, 16, "tn"), (256, 256, 64, 32, "nt")],
}

NUMPY_CHILD = r"""
import json, sys, time
import numpy as np
m, n, k, batch = (int(x) for x in sys.argv[1:5])
layout = sys.argv[5]
rng = np.random.default_rng(m * 31 + n * 7 + k)
a = (rng.random((batch, k, m) if layout[0] == "t" else (batch, m, k), dtype=np.float32) - 0.5)
b = (rng.random((batch, n, k) if layout[1] == "t" else (batch, k, n), dtype=np.float32) - 0.5)
if layout[0] == "t": a = a.transpose(0, 2, 1)
if layout[1] == "t": b = b.transpose(0, 2, 1)
if batch == 1: a, b = a[0], b[0]
c = np.empty((m, n) if batch == 1 else (batch, m, n), dtype=np.float32)
np.matmul(a, b, out=c)
times, total = [], 0.0
while True:
    t = time.perf_counter(); np.matmul(a, b, out=c); t = time.perf_counter() - t
    times.append(t); total += t
    if (total >= 0.5 and len(times) >= 3) or len(times) >= 5000:
        break
info = ""
try:
    from threadpoolctl import threadpool_info
    info = ";".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}" for p in threadpool_info())
except Exception:
    pass
print(json.dumps({"gflops": 2 * m * n * k * batch / min(times) / 1e9, "blas": info}))
"""


def build(scratch, flags):
    cmd = ["swift", "build", "-c", "release", "--product", "glam", "--scratch-path", scratch] + flags
    print("building:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    return os.path.join(ROOT, scratch, "release", "glam")


def glam_gflops(binary, shape, threads):
    m, n, k, batch, layout = shape
    out = subprocess.run([binary, "bench", "gemm", "--shape", f"{m},{n},{k},{batch}", "--layout", layout,
                          "--threads", str(threads), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["gflops"]


def numpy_gflops(shape, threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", NUMPY_CHILD, *map(str, shape)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time a build without the CPU flags")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.add_argument("--model-shapes", action="store_true", help="the products of small's and medium's training steps")
    args = parser.parse_args()

    fast = build(".build", FAST_FLAGS)
    baseline = build(".build-baseline", []) if args.baseline else None
    blas = ""
    rows = []
    if args.model_shapes:
        cases = [(f"{config} {m}×{n}×{k}×{batch} {layout}", (m, n, k, batch, layout))
                 for config, shapes in MODEL_SHAPES.items() for (m, n, k, batch, layout) in shapes]
    else:
        cases = [(str(n), (n, n, n, 1, "nn")) for n in args.sizes]
    for threads in args.threads:
        for label, shape in cases:
            best = {"numpy": 0.0, "glam": 0.0, "baseline": 0.0}
            for _ in range(args.rounds):
                result = numpy_gflops(shape, threads)
                blas = result["blas"] or blas
                best["numpy"] = max(best["numpy"], result["gflops"])
                best["glam"] = max(best["glam"], glam_gflops(fast, shape, threads))
                if baseline:
                    best["baseline"] = max(best["baseline"], glam_gflops(baseline, shape, threads))
            rows.append((label, threads, best))
            if args.json:
                print(json.dumps({"case": label, "threads": threads, "numpy_gflops": round(best["numpy"], 1),
                                  "glam_gflops": round(best["glam"], 1), "ratio": round(best["glam"] / best["numpy"], 3),
                                  **({"baseline_gflops": round(best["baseline"], 1)} if baseline else {})}), flush=True)
    if args.json:
        return
    print(f"numpy BLAS: {blas or 'unknown (pip install threadpoolctl to show)'}")
    header = f"| {'product (M×N×K×batch, layout)' if args.model_shapes else 'n'} | threads | numpy GFLOP/s | glam GFLOP/s | glam / numpy |"
    rule = "|---|---|---|---|---|"
    if baseline:
        header += " glam without CPU flags | its ratio |"
        rule += "---|---|"
    print(header)
    print(rule)
    for label, threads, best in rows:
        line = f"| {label} | {threads} | {best['numpy']:.1f} | {best['glam']:.1f} | {best['glam'] / best['numpy']:.2f} |"
        if baseline:
            line += f" {best['baseline']:.1f} | {best['baseline'] / best['numpy']:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
