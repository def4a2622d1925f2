#!/usr/bin/env python3
"""The outside check of glam's virtual mesh: the same checkpoint on JAX's GSPMD mesh.

1. `glam train` starts a run of the `small` model (B = 8, T = 64, 8 routing groups) for 2 steps and
   continues it to 6; its checkpoint at step 2 is the starting point of everything below.
2. On each mesh (data × mdl = 1x1, 8x1, 4x2, 2x4 of virtual host devices), the JAX side
   (Scripts/gspmd/glam_jax.py: the independent decoder of the glam_lm fixtures, praxis' gating,
   optax's Adafactor) loads that checkpoint, shards it as glam's MeshTrainer does, and
   - computes loss, logits and every gradient of step 3's batch, written as a glam_lm golden
     fixture that `glam verify` checks against glam (logits and losses within 1e-5 relative);
   - trains steps 3 and 4 on the batches `glam train` draws and compares the losses and the
     validation cross-entropy with glam's own (1e-5 relative);
   - lists every collective in XLA's compiled training step and compares the bytes per device and
     mesh axis with glam's communication model (`glam plan --virtual`), category by category.
3. On the 4x2 mesh the JAX state after step 4 is written back as a glam checkpoint, which
   `glam train --resume` continues to step 6 (losses within 1e-4 relative of glam's own steps 5-6)
   and `glam generate` uses.

Prints one line per check, the collective tables (also written as Markdown with --markdown FILE)
and ends with `N passed, N failed`; exits 1 if any failed.

    python3 Scripts/gspmd/check.py [--glam .build/release/glam] [--markdown FILE] [--keep DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

DEVICES = 8
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + f" --xla_force_host_platform_device_count={DEVICES}").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import collectives  # noqa: E402
import glam_data  # noqa: E402
import glam_jax  # noqa: E402
from fixture_io import write_fixture  # noqa: E402  (Fixtures/, on the path through glam_jax)

MESHES = [(1, 1), (8, 1), (4, 2), (2, 4)]
CONFIG, BATCH, LENGTH, GROUPS = "small", 8, 64, 8
START, STEPS = 2, 2            # JAX starts from glam's checkpoint after 2 steps and trains 2 more
LOSS_TOLERANCE = 1e-5          # relative: JAX's losses against glam's on the same parameters and batch
ROUND_TRIP_TOLERANCE = 1e-4    # relative: glam's steps after JAX's updates against glam's own
GRADIENT_TOLERANCE = [1e-7, 1e-4]  # [absolute, relative]: measured differences are about 3e-9


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, text):
        print(("PASS " if ok else "FAIL ") + text, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def run_glam(glam, *arguments):
    result = subprocess.run([glam, *arguments], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"glam {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def metrics(path):
    losses, validation = {}, {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if "loss" in row:
                losses[row["step"]] = row["loss"]
            if "validation_ce" in row:
                validation[row["step"]] = row["validation_ce"]
    return losses, validation


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def glam_run(glam, work):
    """glam's own run: checkpoint after step 2 and losses of steps 1-6."""
    out = os.path.join(work, "glam")
    common = ["--config", CONFIG, "--length", str(LENGTH), "--batch", str(BATCH), "--evaluate-every", "2",
              "--checkpoint-every", "2", "--output", out]
    run_glam(glam, "train", *common, "--force", "--groups", str(GROUPS), "--steps", str(START))
    start = os.path.join(work, "start.safetensors")
    shutil.copyfile(os.path.join(out, "checkpoint.safetensors"), start)
    run_glam(glam, "train", *common, "--resume", "--steps", str(START + 2 * STEPS))
    return start, metrics(os.path.join(out, "metrics.jsonl")), common


def verify_fixture(glam, report, trainer, checkpoint, batch, label, work):
    """Loss, logits and gradients on the mesh, as a glam_lm fixture that glam verifies."""
    out, grads = trainer.gradients(batch)
    tensors = {"input.tokens": batch["tokens"], "input.targets": batch["targets"], "input.paddings": batch["paddings"],
               "input.segment_ids": batch["segment_ids"], "expected.logits": out["logits"],
               "expected.ce_loss": np.float32(out["ce"]), "expected.z_loss": np.float32(out["z_loss"]),
               "expected.aux_loss": np.float32(out["aux_loss"]), "expected.loss": np.float32(out["loss"])}
    for name, value in checkpoint.params.items():
        tensors["param." + name] = value
        tensors["expected.grad." + name] = grads[name]
    scale = float(np.max(np.abs(out["logits"])))
    tolerance = {"expected.logits": [LOSS_TOLERANCE * scale, LOSS_TOLERANCE]}
    tolerance.update({f"expected.{k}": [0.0, LOSS_TOLERANCE] for k in ("ce_loss", "z_loss", "aux_loss", "loss")})
    tolerance.update({f"expected.grad.{name}": GRADIENT_TOLERANCE for name in checkpoint.params})
    path = os.path.join(work, f"jax_{label}.safetensors")
    write_fixture(path, "glam_lm", checkpoint.config,
                  f"JAX {jax.__version__} GSPMD mesh {label} (Scripts/gspmd/check.py): independent decoder, praxis gating",
                  tensors, tolerance=tolerance)
    result = subprocess.run([GLAM, "verify", path], cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    failures = [line for line in lines if line.startswith("FAIL") or "glam verify:" in line]
    summary = failures[:3] + [line for line in lines if line.endswith("failed")][-1:]
    report.check(result.returncode == 0,
                 f"mesh {label}: glam verifies JAX's loss, logits (1e-5 relative) and gradients on step {START + 1}'s batch: "
                 + "; ".join(summary))


def collective_table(trainer, batch, label, config, prediction):
    """XLA's collectives of the compiled step, by category, beside glam's model; returns (rows, ok, unexplained)."""
    d, m = trainer.mesh.shape["data"], trainer.mesh.shape["mdl"]
    text = trainer.compiled_train_step(batch).as_text()
    found = collectives.collectives(text, (d, m))
    e, n, t, layers = config["num_experts"], config["num_heads"], LENGTH, config["num_layers"]
    sums = {k: 0 for k in ("all_to_all", "expert_all_reduce", "gradient_all_reduce", "scalars_data", "scalars_mdl",
                           "optimizer_mdl", "other")}
    counts = {k: 0 for k in sums}
    others = []
    for c in found:
        if c["op"] == "all-to-all" and c["axes"] == "data":
            sums["all_to_all"] += c["bytes_per_device"]
            counts["all_to_all"] += 1
            continue
        if c["op"] != "all-reduce" or c["axes"] not in ("data", "mdl"):
            if c["bytes_per_device"]:
                sums["other"] += c["bytes_per_device"]
                counts["other"] += 1
                others.append(f"{c['op']} {c['shape']} over {c['axes']} ({c['op_name']})")
            continue
        for dtype, dims in collectives.elements(c["shape"]):
            b = collectives.per_device_bytes("all-reduce", collectives.element_bytes(dtype, dims), c["group_size"], "")
            if not dims:
                key = "scalars_" + c["axes"]
            elif c["axes"] == "mdl" and len(dims) == 4 and dims[0] == e // d and dims[1] == GROUPS and dims[3] == config["model_dim"]:
                key = "expert_all_reduce"
            elif c["axes"] == "data":
                key = "gradient_all_reduce"
            else:
                key = "optimizer_mdl"
            sums[key] += b
            counts[key] += 1
    # The differences XLA's plan has by construction (see the README): the embedding's two gradients
    # (lookup and output projection) reduced separately, and each layer's relative-bias gradient
    # reduced as the gathered [N, T, T] bias instead of the [N, 32] table.
    def all_reduce(k, b):
        return 2 * (k - 1) * b // k if k > 1 else 0
    embedding_extra = all_reduce(d, config["vocab_size"] * config["model_dim"] * 4)
    bias_extra = layers * all_reduce(d, (n * t * t - n * config["relative_buckets"]) * 4)
    rows = [
        ("MoE dispatch and return", "data", "all-to-all", counts["all_to_all"], sums["all_to_all"], prediction["all_to_all"], 0,
         "equal: GShard's four all-to-alls per MoE layer"),
        ("expert partial sums over H", "mdl", "all-reduce", counts["expert_all_reduce"], sums["expert_all_reduce"],
         prediction["expert_all_reduce"], 0, "equal: forward output and backward input gradient"),
        ("gradients of replicated weights", "data", "all-reduce", counts["gradient_all_reduce"], sums["gradient_all_reduce"],
         prediction["gradient_all_reduce"], embedding_extra + bias_extra,
         f"XLA reduces the embedding's two gradients separately (+{embedding_extra:,}) and each relative bias "
         f"as the gathered [N, T, T] tensor (+{bias_extra:,})"),
        ("Adafactor statistics over H", "mdl", "all-reduce", counts["optimizer_mdl"], sums["optimizer_mdl"], None, None,
         "row/column sums of g² of the expert weights split over mdl"),
        ("scalar sums", "data", "all-reduce", counts["scalars_data"], sums["scalars_data"], prediction["optimizer_data"], None,
         "XLA: float32 loss terms and Adafactor RMS sums; glam: Σu², ΣW² of each expert weight as two doubles"),
        ("scalar sums", "mdl", "all-reduce", counts["scalars_mdl"], sums["scalars_mdl"], None, None,
         "glam counts its mdl optimizer sums in one figure, below"),
    ]
    ok = True
    for name, _, _, _, xla, ours, extra, _ in rows:
        if ours is not None and extra is not None and xla != ours + extra:
            ok = False
    # The optimizer's mdl traffic as a whole: glam's figure against XLA's statistics and scalar sums.
    rows.append(("Adafactor sums, all", "mdl", "all-reduce", counts["optimizer_mdl"] + counts["scalars_mdl"],
                 sums["optimizer_mdl"] + sums["scalars_mdl"], prediction["optimizer_mdl"], None,
                 "XLA sums float32 scalars where glam sums doubles"))
    if sums["other"]:
        ok = False
    return rows, ok, others


def markdown(tables):
    lines = ["| mesh | traffic | axis | XLA collective | XLA ops | XLA bytes/device | glam model bytes/core | explained difference |",
             "|---|---|---|---|---|---|---|---|"]
    for label, rows in tables:
        for name, axis, op, count, xla, ours, extra, note in rows:
            if count == 0 and not ours:
                continue
            difference = "" if ours is None else ("0" if xla == ours else f"{xla - ours:+,}")
            lines.append(f"| {label} | {name} | {axis} | {op} | {count} | {xla:,} | {'' if ours is None else f'{ours:,}'} | "
                         f"{difference}: {note} |" if ours is not None else
                         f"| {label} | {name} | {axis} | {op} | {count} | {xla:,} | | {note} |")
    return "\n".join(lines) + "\n"


def main():
    global GLAM
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glam", default=os.path.join(ROOT, ".build", "release", "glam"))
    parser.add_argument("--markdown", help="write the collective tables here")
    parser.add_argument("--keep", help="work in this directory and keep it")
    args = parser.parse_args()
    GLAM = os.path.abspath(args.glam)
    if not os.path.exists(GLAM):
        sys.exit(f"no glam binary at {GLAM}: build it first (swift build -c release --product glam) or pass --glam PATH")
    if len(jax.devices()) < DEVICES:
        sys.exit(f"JAX sees {len(jax.devices())} devices, the check needs {DEVICES} (XLA_FLAGS was set too late?)")
    work = args.keep or tempfile.mkdtemp(prefix="gspmd-check-")
    os.makedirs(work, exist_ok=True)
    report = Report()
    start, (losses, validation), common = glam_run(GLAM, work)
    checkpoint = glam_jax.GlamCheckpoint.read(start)
    tokenizer = glam_data.BytePairTokenizer(checkpoint.metadata["tokenizer"])
    with open(os.path.join(ROOT, "Fixtures", "corpus", "jargon-4.4.7.txt"), encoding="utf-8") as f:
        dataset = glam_data.TextDataset(f.read(), tokenizer, LENGTH)
    options = checkpoint.options

    def batch(step):
        return dataset.training.batch(glam_data.training_rows(step, options["batchSize"], dataset.training.count, options["seed"]))

    validation_batches = glam_data.validation_batches(dataset, options["batchSize"], options["evaluationBatches"])
    tables = []
    for d, m in MESHES:
        label = f"{d}x{m}"
        trainer = glam_jax.ShardedTrainer(glam_jax.GlamCheckpoint.read(start), glam_jax.make_mesh(d, m))
        verify_fixture(GLAM, report, trainer, checkpoint, batch(START), label, work)
        prediction = json.loads(run_glam(GLAM, "plan", "--virtual", "--config", CONFIG, "--mesh", label, "--batch", str(BATCH),
                                         "--length", str(LENGTH), "--groups", str(GROUPS), "--json"))
        rows, ok, others = collective_table(trainer, batch(START), label, checkpoint.config, prediction)
        tables.append((label, rows))
        report.check(ok, f"mesh {label}: XLA's collectives match glam's communication model category by category, "
                         "differences as explained" + ("; unexplained: " + "; ".join(others) if others else ""))
        for step in range(START, START + STEPS):
            got = trainer.train_step(batch(step))["loss"]
            want = losses[step + 1]
            report.check(relative(got, want) <= LOSS_TOLERANCE,
                         f"mesh {label}: step {step + 1} loss JAX {got:.7f}, glam {want:.7f} (relative {relative(got, want):.1e})")
        got, want = trainer.validation_ce(validation_batches), validation[START + STEPS]
        report.check(relative(got, want) <= LOSS_TOLERANCE,
                     f"mesh {label}: validation CE after step {START + STEPS} JAX {got:.7f}, glam {want:.7f} "
                     f"(relative {relative(got, want):.1e})")
        if (d, m) == (4, 2):
            back = os.path.join(work, "from-jax")
            shutil.rmtree(back, ignore_errors=True)
            os.makedirs(back)
            trainer.write(os.path.join(back, "checkpoint.safetensors"))
            out = common[:-1] + [back]
            run_glam(GLAM, "train", *out, "--resume", "--steps", str(START + 2 * STEPS))
            resumed, _ = metrics(os.path.join(back, "metrics.jsonl"))
            for step in range(START + STEPS + 1, START + 2 * STEPS + 1):
                got, want = resumed.get(step, float("nan")), losses[step]
                report.check(relative(got, want) <= ROUND_TRIP_TOLERANCE,
                             f"glam resumes JAX's 4x2 checkpoint: step {step} loss {got:.7f}, glam's own run {want:.7f} "
                             f"(relative {relative(got, want):.1e})")
            text = run_glam(GLAM, "generate", "--checkpoint", os.path.join(back, "checkpoint.safetensors"),
                            "--prompt", "The hacker", "--tokens", "8")
            report.check(text.strip().startswith("The hacker"), f"glam generate uses JAX's checkpoint: {text.strip()!r}")
    table = markdown(tables)
    print("\nXLA's collectives of one training step beside glam's communication model "
          f"({CONFIG}, B = {BATCH}, T = {LENGTH}, G = {GROUPS}; bytes each device sends):\n")
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
