#!/usr/bin/env python3
"""MoE routing throughput: `glam bench moe` against the same computation in JAX (jit, CPU),
measured in one run.

The computation, forward only, for x [G, S, M] and router W_g [M, E]: logits = x·W_g, GShard
top-2 gating (praxis' own `top2_gating_on_logits`), dispatch to [E, G, C, M], combine back to
[G, S, M] (identity experts). JAX uses praxis' einsums with the dense [G, S, E, C] tensors;
glam is timed with its MoE layer's own route and combine steps (index-based dispatch). Both sides
report their best tokens/s over alternating rounds.

Usage (from the repository root, after pip install -r Fixtures/requirements.txt and
pip install --no-deps praxis==1.4.0):
    python3 Scripts/bench_moe.py [--groups 8 --group-size 1024 --experts 64 --model-dim 512] [--rounds 3]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Fixtures"))
FAST_FLAGS = ["-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]


def jax_tokens_per_second(g, s, e, m, cf):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import numpy as np
    from praxis_gating import load_top2_gating

    top2 = load_top2_gating()
    rng = np.random.default_rng(2021)
    x = jnp.asarray(rng.standard_normal((g, s, m)).astype(np.float32))
    w = jnp.asarray((rng.uniform(-1, 1, (m, e)) * np.sqrt(3.0 / m)).astype(np.float32))

    @jax.jit
    def route(x, w):
        logits = jnp.einsum("gsm,me->gse", x, w)
        _, combine, dispatch, _ = top2(None, logits, e, None, jnp.float32, capacity_factor=cf)
        expert_in = jnp.einsum("gsec,gsm->egcm", dispatch, x)
        return jnp.einsum("gsec,egcm->gsm", combine, expert_in)

    route(x, w).block_until_ready()
    times = []
    while sum(times) < 1 or len(times) < 3:
        start = time.perf_counter()
        route(x, w).block_until_ready()
        times.append(time.perf_counter() - start)
        if len(times) >= 50:
            break
    return g * s / min(times), jax.__version__


def glam_tokens_per_second(binary, args):
    out = subprocess.run([binary, "bench", "moe", "--groups", str(args.groups), "--group-size", str(args.group_size),
                          "--experts", str(args.experts), "--model-dim", str(args.model_dim),
                          "--capacity-factor", str(args.capacity_factor), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["tokens_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=1024)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--model-dim", type=int, default=512)
    parser.add_argument("--capacity-factor", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "glam"] + FAST_FLAGS, cwd=ROOT, check=True, stdout=sys.stderr)
    binary = os.path.join(ROOT, ".build", "release", "glam")
    best = {"jax": 0.0, "indexed": 0.0}
    version = ""
    for _ in range(args.rounds):
        # JAX runs in a child so that its thread pool is gone while glam runs.
        child = subprocess.run([sys.executable, __file__, "--jax-child", json.dumps(vars(args))],
                               check=True, capture_output=True, text=True).stdout
        result = json.loads(child)
        best["jax"] = max(best["jax"], result["tokens_per_second"])
        version = result["version"]
        best["indexed"] = max(best["indexed"], glam_tokens_per_second(binary, args))
    print(f"MoE routing, G={args.groups} S={args.group_size} E={args.experts} M={args.model_dim} "
          f"cf={args.capacity_factor}; JAX {version} (jit, CPU), best of {args.rounds} rounds")
    print("| implementation | tokens/s | / JAX |")
    print("|---|---|---|")
    print(f"| JAX + praxis gating, dense einsums | {best['jax']:.0f} | 1.00 |")
    print(f"| glam, index-based dispatch | {best['indexed']:.0f} | {best['indexed'] / best['jax']:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--jax-child":
        a = json.loads(sys.argv[2])
        tokens, version = jax_tokens_per_second(a["groups"], a["group_size"], a["experts"], a["model_dim"], a["capacity_factor"])
        print(json.dumps({"tokens_per_second": tokens, "version": version}))
    else:
        main()
