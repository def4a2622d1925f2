#!/usr/bin/env python3
"""Training throughput: `glam bench model` (forward + backward + Adafactor update) against the same
model trained in JAX (jit, CPU) and in PyTorch (CPU, eager and torch.compile), measured in one run.

JAX runs the independent decoder of Fixtures/model/make_glam_fixtures.py (the glam_lm fixture
reference, with praxis' gating) on the same configuration, with optax's adafactor configured as
GLaM's, for a few steps after compilation. PyTorch runs Scripts/torch_glam.py, a port of that
decoder and of that optax configuration (`python3 Scripts/torch_glam.py --check` compares it with
the glam_lm fixtures and with optax), twice: eager, and compiled whole (forward, backward and update)
by torch.compile with inductor; it uses one intra-op thread per CPU the process may run on. JAX and
PyTorch start from the same random parameters (init_parameters, seed 0) and tokens. Every side
uses random tokens, B = 8, T = 128, dense [G, S, E, C] dispatch/combine einsums on the JAX and
PyTorch sides, and reports its best tokens/s; the sides run one after another (glam, JAX, PyTorch
eager, PyTorch compiled) in each of the alternating rounds. Each Python side is a fresh subprocess
and is timed after its warm-up steps (which include jit or torch.compile compilation).

With --scaling it measures instead how each side speeds up from one CPU to all of them: JAX and
PyTorch eager run once confined to CPU 0 (sched_setaffinity before the interpreter starts, so XLA's
pool has one core and PyTorch one thread) and once free; glam runs `glam bench model --scaling`
(1 thread and all CPUs, alternately).

Usage (repository root; pip install -r Fixtures/requirements.txt; pip install --no-deps praxis==1.4.0;
PyTorch for CPU and a C++ compiler for torch.compile):
    python3 Scripts/bench_train_jax.py [--config small] [--rounds 2]
    python3 Scripts/bench_train_jax.py --scaling [--rounds 3]
One side alone, printing its JSON (the configuration as main() builds it from `glam params --json`):
    python3 Scripts/bench_train_jax.py --child '[CONFIG, B, T, STEPS]'
    python3 Scripts/bench_train_jax.py --child-torch '[CONFIG, B, T, STEPS, COMPILED]'
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


def torch_child(config, batch, length, steps, compiled):
    """The same training step in PyTorch (Scripts/torch_glam.py, checked against the glam_lm fixtures and
    optax): the same random parameters and tokens as jax_child (init_parameters, seed 0), eager or
    compiled whole (forward, backward and update) by torch.compile. Intra-op threads: one per CPU this
    process may run on (len(os.sched_getaffinity(0)); 1 when --scaling pins it to CPU 0). Warm-up: one
    step (the compilation when compiled) and two more; then the best of `steps` steps."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # make_glam_fixtures imports jax; it stays unused here
    sys.path.insert(0, os.path.join(ROOT, "Fixtures", "model"))
    sys.path.insert(0, os.path.join(ROOT, "Fixtures"))
    sys.path.insert(0, os.path.join(ROOT, "Scripts"))
    import numpy as np
    import torch
    import make_glam_fixtures as reference
    import torch_glam

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    rng = np.random.default_rng(0)
    params = {k: torch.from_numpy(v) for k, v in reference.init_parameters(config, rng, 1.0).items()}
    tokens = torch.from_numpy(rng.integers(0, config["vocab_size"], size=(batch, length)).astype(np.int64))
    targets = torch.from_numpy(rng.integers(0, config["vocab_size"], size=(batch, length)).astype(np.int64))
    paddings = torch.zeros((batch, length), dtype=torch.float32)
    segments = torch.ones((batch, length), dtype=torch.int64)
    step = torch_glam.make_train_step(config, compiled=compiled)
    state = torch_glam.adafactor_init(params)

    start = time.perf_counter()
    params, state, loss = step(params, state, tokens, targets, paddings, segments)
    first_loss, first_step = loss.item(), time.perf_counter() - start
    for _ in range(2):
        params, state, loss = step(params, state, tokens, targets, paddings, segments)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        params, state, loss = step(params, state, tokens, targets, paddings, segments)
        loss.item()
        times.append(time.perf_counter() - start)
    return {"tokens_per_second": batch * length / min(times), "version": torch.__version__, "first_step_seconds": first_step,
            "first_loss": first_loss, "threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--scaling", action="store_true", help="1 CPU against all CPUs, for JAX, PyTorch eager and glam")
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
    best = {"jax": 0.0, "glam": 0.0, "torch eager": 0.0, "torch compiled": 0.0}
    version = torch_version = ""
    compile_seconds = []
    for _ in range(args.rounds):
        lines = subprocess.run([glam, "bench", "model", "--config", args.config, "--batch", str(args.batch), "--length", str(args.length),
                                "--json"], check=True, capture_output=True, text=True).stdout.splitlines()
        for line in lines:
            row = json.loads(line)
            if row["mode"] == "train step":
                best["glam"] = max(best["glam"], row["tokens_per_second"])
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps([config, args.batch, args.length, args.steps])],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out)
        best["jax"] = max(best["jax"], result["tokens_per_second"])
        version = result["version"]
        for compiled in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child-torch",
                                  json.dumps([config, args.batch, args.length, args.steps, compiled])],
                                 check=True, capture_output=True, text=True).stdout
            result = json.loads(out)
            side = "torch compiled" if compiled else "torch eager"
            best[side] = max(best[side], result["tokens_per_second"])
            torch_version = result["version"]
            if compiled:
                compile_seconds.append(result["first_step_seconds"])
    print(f"training step (forward + backward + Adafactor), {args.config}, B={args.batch} T={args.length}; "
          f"JAX {version} jit on CPU; best of {args.rounds} rounds")
    print(f"PyTorch {torch_version} on CPU, eager and torch.compile (inductor), {len(os.sched_getaffinity(0))} threads; "
          f"torch.compile's first step (compiling) took {', '.join(f'{s:.0f}' for s in compile_seconds)} s")
    # One row per implementation; the last column is glam's tokens/s over that row's.
    print("| implementation | tokens/s | glam / it |")
    print("|---|---|---|")
    for side, label in (("jax", "JAX + optax adafactor"), ("torch eager", "PyTorch eager + Adafactor"),
                        ("torch compiled", "PyTorch torch.compile + Adafactor")):
        print(f"| {label} | {best[side]:.0f} | {best['glam'] / best[side]:.2f} |")
    print(f"| glam | {best['glam']:.0f} | |")


def scaling(glam, config, args):
    """Best tokens/s on CPU 0 alone and on all CPUs, for JAX, PyTorch eager and glam, over alternating rounds."""
    cpus = len(os.sched_getaffinity(0))
    sides = ("jax", "torch", "glam")
    best = {(side, count): 0.0 for side in sides for count in (1, cpus)}
    version = torch_version = ""
    children = {"jax": [sys.executable, __file__, "--child", json.dumps([config, args.batch, args.length, args.steps])],
                "torch": [sys.executable, __file__, "--child-torch", json.dumps([config, args.batch, args.length, args.steps, False])]}
    for _ in range(args.rounds):
        for side in ("jax", "torch"):
            for count in (1, cpus):
                # Pinned before the interpreter starts: XLA sizes its pool, and torch_child its threads, from the affinity.
                pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if count == 1 else None
                result = json.loads(subprocess.run(children[side], check=True, capture_output=True, text=True, preexec_fn=pin).stdout)
                best[(side, count)] = max(best[(side, count)], result["tokens_per_second"])
                if side == "jax":
                    version = result["version"]
                else:
                    torch_version = result["version"]
        lines = subprocess.run([glam, "bench", "model", "--config", args.config, "--batch", str(args.batch), "--length", str(args.length),
                                "--scaling", "--threads", str(cpus), "--json"], check=True, capture_output=True, text=True).stdout.splitlines()
        for row in map(json.loads, lines):
            if row["mode"] == "train step":
                best[("glam", 1)] = max(best[("glam", 1)], row["tokens_per_second_1_thread"])
                best[("glam", cpus)] = max(best[("glam", cpus)], row["tokens_per_second"])
    print(f"training step (forward + backward + Adafactor), {args.config}, B={args.batch} T={args.length}; "
          f"JAX {version} jit on CPU; best of {args.rounds} rounds; 1 CPU against {cpus}")
    print(f"PyTorch {torch_version} eager on CPU, torch.set_num_threads(number of CPUs allowed)")
    print(f"| implementation | 1 CPU tokens/s | {cpus} CPUs tokens/s | speed-up |")
    print("|---|---|---|---|")
    for side, label in (("jax", "JAX + optax adafactor"), ("torch", "PyTorch eager + Adafactor"), ("glam", "glam")):
        one, many = best[(side, 1)], best[(side, cpus)]
        print(f"| {label} | {one:.0f} | {many:.0f} | {many / one:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        c, b, t, n = json.loads(sys.argv[2])
        tokens, version = jax_child(c, b, t, n)
        print(json.dumps({"tokens_per_second": tokens, "version": version}))
    elif len(sys.argv) == 3 and sys.argv[1] == "--child-torch":
        c, b, t, n, compiled = json.loads(sys.argv[2])
        print(json.dumps(torch_child(c, b, t, n, compiled)))
    else:
        main()
