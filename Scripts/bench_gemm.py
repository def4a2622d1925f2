#!/usr/bin/env python3
"""SGEMM: `glam bench gemm` against numpy's OpenBLAS, measured side by side in one run.

For every thread count and size, the two are run alternately for --rounds rounds (default 3) and
each side keeps its best GFLOP/s, so a noisy neighbour hurts both alike. numpy runs in a child
process with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment (they force
OpenBLAS' slower Haswell kernel on this machine; see shared machine notes) and
OPENBLAS_NUM_THREADS set to the thread count. Nothing else in the environment changes.

Usage (from the repository root):
    python3 Scripts/bench_gemm.py                 # builds the fast release binary if needed
    python3 Scripts/bench_gemm.py --baseline      # also a build without the CPU flags
    python3 Scripts/bench_gemm.py --sizes 512 1024 --threads 1 2 --rounds 5
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_FLAGS = ["-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]

NUMPY_CHILD = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(n)
a = (rng.random((n, n), dtype=np.float32) - 0.5)
b = (rng.random((n, n), dtype=np.float32) - 0.5)
c = np.empty((n, n), dtype=np.float32)
np.matmul(a, b, out=c)
times, total = [], 0.0
while True:
    t = time.perf_counter(); np.matmul(a, b, out=c); t = time.perf_counter() - t
    times.append(t); total += t
    if (total >= 0.5 and len(times) >= 3) or len(times) >= 50:
        break
info = ""
try:
    from threadpoolctl import threadpool_info
    info = ";".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}" for p in threadpool_info())
except Exception:
    pass
print(json.dumps({"gflops": 2 * n ** 3 / min(times) / 1e9, "blas": info}))
"""


def build(scratch, flags):
    cmd = ["swift", "build", "-c", "release", "--product", "glam", "--scratch-path", scratch] + flags
    print("building:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    return os.path.join(ROOT, scratch, "release", "glam")


def glam_gflops(binary, n, threads):
    out = subprocess.run([binary, "bench", "gemm", "--size", str(n), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["gflops"]


def numpy_gflops(n, threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", NUMPY_CHILD, str(n)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time a build without the CPU flags")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    args = parser.parse_args()

    fast = build(".build", FAST_FLAGS)
    baseline = build(".build-baseline", []) if args.baseline else None
    blas = ""
    rows = []
    for threads in args.threads:
        for n in args.sizes:
            best = {"numpy": 0.0, "glam": 0.0, "baseline": 0.0}
            for _ in range(args.rounds):
                result = numpy_gflops(n, threads)
                blas = result["blas"] or blas
                best["numpy"] = max(best["numpy"], result["gflops"])
                best["glam"] = max(best["glam"], glam_gflops(fast, n, threads))
                if baseline:
                    best["baseline"] = max(best["baseline"], glam_gflops(baseline, n, threads))
            rows.append((n, threads, best))
            if args.json:
                print(json.dumps({"n": n, "threads": threads, "numpy_gflops": round(best["numpy"], 1),
                                  "glam_gflops": round(best["glam"], 1), "ratio": round(best["glam"] / best["numpy"], 3),
                                  **({"baseline_gflops": round(best["baseline"], 1)} if baseline else {})}), flush=True)
    if args.json:
        return
    print(f"numpy BLAS: {blas or 'unknown (pip install threadpoolctl to show)'}")
    header = "| n | threads | numpy GFLOP/s | glam GFLOP/s | glam / numpy |"
    rule = "|---|---|---|---|---|"
    if baseline:
        header += " glam without CPU flags | its ratio |"
        rule += "---|---|"
    print(header)
    print(rule)
    for n, threads, best in rows:
        line = f"| {n} | {threads} | {best['numpy']:.1f} | {best['glam']:.1f} | {best['glam'] / best['numpy']:.2f} |"
        if baseline:
            line += f" {best['baseline']:.1f} | {best['baseline'] / best['numpy']:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
