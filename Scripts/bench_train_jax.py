#!/usr/bin/env python3
"""Training throughput: `glam bench model` (forward + backward + Adafactor update) against the same
model trained in JAX (jit, CPU), measured in one run.

JAX runs the independent decoder of Fixtures/model/make_glam_fixtures.py (the glam_lm fixture
reference, with praxis' gating) on the same configuration, with optax's adafactor configured as
GLaM's, for a few steps after compilation. Both sides use random tokens, B = 8, T = 128, and report
their best tokens/s over alternating rounds.

With --scaling it measures instead how each side speeds up from one CPU to all of them: JAX runs
once confined to CPU 0 (sched_setaffinity before XLA starts, so its thread pool has one core) and
once free; glam runs `glam bench model --scaling` (1 thread and all CPUs, alternately).

Usage (repository root; pip install -r Fixtures/requirements.txt; pip install --no-deps praxis==1.4.0):
    python3 Scripts/bench_train_jax.py [--config small] [--rounds 2]
    python3 Scripts/bench_train_jax.py --scaling [--rounds 3]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_FLAGS = ["-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]


def jax_child(config, batch, length, steps):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, os.path.join(ROOT, "Fixtures", "model"))
    sys.path.insert(0, os.path.join(ROOT, "Fixtures"))
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import make_glam_fixtures as reference

    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(v) for k, v in reference.init_parameters(config, rng, 1.0).items()}
    tokens = rng.integers(0, config["vocab_size"], size=(batch, length)).astype(np.int32)
    targets = rng.integers(0, config["vocab_size"], size=(batch, length)).astype(np.int32)
    paddings = np.zeros((batch, length), np.float32)
    segments = np.ones((batch, length), np.int32)
    tx = optax.adafactor(learning_rate=0.01, min_dim_size_to_factor=128, decay_rate=0.8, decay_offset=0,
                         multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None, eps=1e-30)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: reference.forward(p, config, tokens, targets, paddings, segments)[0])(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    params, state, loss = step(params, state)
    jax.block_until_ready(loss)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        params, state, loss = step(params, state)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - start)
    return batch * length / min(times), jax.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scaling", action="store_true", help="1 CPU against all CPUs, for JAX and glam")
    args = parser.parse_args()
    subprocess.run(["swift", "build", "-c", "release", "--product", "glam"] + FAST_FLAGS, cwd=ROOT, check=True, stdout=sys.stderr)
    glam = os.path.join(ROOT, ".build", "release", "glam")
    params = json.loads(subprocess.run([glam, "params", "--config", args.config, "--json"], check=True, capture_output=True, text=True).stdout)[0]
    # The model configuration as the glam_lm fixtures spell it.
    config = {"vocab_size": params["vocab_size"], "model_dim": params["model_dim"], "num_layers": params["layers"],
              "num_heads": params["num_heads"], "head_dim": params["head_dim"], "ff_dim": params["ff_dim"],
              "moe_hidden_dim": params.get("moe_hidden_dim", params["ff_dim"]), "num_experts": params["num_experts"],
              "expert_capacity": None, "capacity_factor": 2.0, "num_groups": 1, "moe_activation": "gelu_tanh",
              "relative_buckets": 32, "relative_max_distance": 128, "attention_extra_logit": True,
              "rmsnorm_epsilon": 1e-6, "z_loss_weight": 1e-4, "aux_loss_weight": 0.01}
    if args.scaling:
        return scaling(glam, config, args)
    best = {"jax": 0.0, "glam": 0.0}
    version = ""
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps([config, args.batch, args.length, args.steps])],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        best["jax"] = max(best["jax"], result["tokens_per_second"])
        version = result["version"]
        lines = subprocess.run([glam, "bench", "model", "--config", args.config, "--batch", str(args.batch), "--length", str(args.length),
                                "--json"], check=True, capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            row = json.loads(line)
            if row["mode"] == "train step":
                best["glam"] = max(best["glam"], row["tokens_per_second"])
    print(f"training step (forward + backward + Adafactor), {args.config}, B={args.batch} T={args.length}; "
          f"JAX {version} jit on CPU; best of {args.rounds} rounds")
    print("| implementation | tokens/s | glam / JAX |")
    print("|---|---|---|")
    print(f"| JAX + optax adafactor | {best['jax']:.0f} | |")
    print(f"| glam | {best['glam']:.0f} | {best['glam'] / best['jax']:.2f} |")


def scaling(glam, config, args):
    """Best tokens/s on CPU 0 alone and on all CPUs, for JAX and for glam, over alternating rounds."""
    cpus = len(os.sched_getaffinity(0))
    best = {(side, count): 0.0 for side in ("jax", "glam") for count in (1, cpus)}
    version = ""
    child = [sys.executable, __file__, "--child", json.dumps([config, args.batch, args.length, args.steps])]
    for _ in range(args.rounds):
        for count in (1, cpus):
            pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if count == 1 else None
            result = json.loads(subprocess.run(child, check=True, capture_output=True, text=True, preexec_fn=pin).stdout)
            best[("jax", count)] = max(best[("jax", count)], result["tokens_per_second"])
            version = result["version"]
        lines = subprocess.run([glam, "bench", "model", "--config", args.config, "--batch", str(args.batch), "--length", str(args.length),
                                "--scaling", "--threads", str(cpus), "--json"], check=True, capture_output=True, text=True).stdout.splitlines()
        for row in map(json.loads, lines):
            if row["mode"] == "train step":
                best[("glam", 1)] = max(best[("glam", 1)], row["tokens_per_second_1_thread"])
                best[("glam", cpus)] = max(best[("glam", cpus)], row["tokens_per_second"])
    print(f"training step (forward + backward + Adafactor), {args.config}, B={args.batch} T={args.length}; "
          f"JAX {version} jit on CPU; best of {args.rounds} rounds; 1 CPU against {cpus}")
    print(f"| implementation | 1 CPU tokens/s | {cpus} CPUs tokens/s | speed-up |")
    print("|---|---|---|---|")
    for side, label in (("jax", "JAX + optax adafactor"), ("glam", "glam")):
        one, many = best[(side, 1)], best[(side, cpus)]
        print(f"| {label} | {one:.0f} | {many:.0f} | {many / one:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        c, b, t, n = json.loads(sys.argv[2])
        tokens, version = jax_child(c, b, t, n)
        print(json.dumps({"tokens_per_second": tokens, "version": version}))
    else:
        main()
