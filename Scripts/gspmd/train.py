#!/usr/bin/env python3
"""Continue a `glam train` run in JAX on a GSPMD mesh, and hand it back to glam.

Reads DIR/checkpoint.safetensors of a glam run (parameters, Adafactor statistics, step, tokenizer,
options), shards it over a data × mdl mesh as glam's MeshTrainer does, trains to --steps on the
batches `glam train` would draw (same corpus, tokenizer, packing and seeded order), with optax's
Adafactor configured as GLaM's, and writes OUTPUT/checkpoint.safetensors (atomically, every
checkpoint interval and at the end) and OUTPUT/metrics.jsonl in glam's format. `glam train
--resume --output OUTPUT --steps N` continues from there, `glam generate --checkpoint
OUTPUT/checkpoint.safetensors` uses it, and this script continues a run glam left.

    python3 Scripts/gspmd/train.py --from runs/small --mesh 4x2 --steps 400 --output runs/small-jax
    python3 Scripts/gspmd/train.py --from runs/small-jax --mesh 2x4 --steps 500 --output runs/small-jax

On a CPU host the mesh is made of virtual devices (--host-devices, default: as many as the mesh
needs); on a TPU or GPU host install JAX's plugin for it and the mesh uses the real devices.
Steps whose gradients are not finite are applied anyway (optax has no skip); glam skips them.
"""
import argparse
import json
import os
import sys
import time


def parse_mesh(text):
    try:
        data, mdl = (int(x) for x in text.split("x"))
        assert data >= 1 and mdl >= 1
    except (ValueError, AssertionError):
        raise SystemExit(f"train.py: --mesh must be DATAxMDL with positive integers, e.g. 4x2; got {text!r}") from None
    return data, mdl


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", required=True, help="a glam run directory (or a checkpoint file)")
    parser.add_argument("--mesh", default="1x1", help="DATAxMDL, e.g. 4x2")
    parser.add_argument("--steps", type=int, required=True, help="train until this step (1-based, as glam counts)")
    parser.add_argument("--output", required=True, help="directory for checkpoint.safetensors and metrics.jsonl")
    parser.add_argument("--corpus", default=None, help="the run's corpus (default: the bundled Jargon File)")
    parser.add_argument("--host-devices", type=int, default=None, help="virtual CPU devices (CPU hosts only)")
    args = parser.parse_args()
    data, mdl = parse_mesh(args.mesh)
    if os.environ.get("JAX_PLATFORMS", "cpu") == "cpu" and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        count = args.host_devices or data * mdl
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}").strip()

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import glam_data
    import glam_jax

    root = os.path.dirname(os.path.dirname(here))
    source = os.path.join(args.source, "checkpoint.safetensors") if os.path.isdir(args.source) else args.source
    try:
        checkpoint = glam_jax.GlamCheckpoint.read(source)
        if args.steps <= checkpoint.step:
            raise glam_jax.CheckpointError(f"{source} is already at step {checkpoint.step}; --steps must be larger")
        corpus = args.corpus or os.path.join(root, "Fixtures", "corpus", "jargon-4.4.7.txt")
        with open(corpus, encoding="utf-8") as f:
            text = f.read()
        tokenizer = glam_data.BytePairTokenizer(checkpoint.metadata["tokenizer"])
        options = checkpoint.options
        dataset = glam_data.TextDataset(text, tokenizer, options["sequenceLength"])
        trainer = glam_jax.ShardedTrainer(checkpoint, glam_jax.make_mesh(data, mdl))
    except (glam_jax.CheckpointError, glam_data.DataError, OSError) as error:
        print(f"train.py: {error}", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    metrics_path = os.path.join(args.output, "metrics.jsonl")
    kept = []
    if os.path.exists(metrics_path):  # keep the history up to the checkpoint's step, as glam --resume does
        with open(metrics_path) as f:
            kept = [line for line in f if json.loads(line).get("step", 0) <= checkpoint.step]
    with open(metrics_path, "w") as f:
        f.writelines(kept)
    validation = glam_data.validation_batches(dataset, options["batchSize"], options["evaluationBatches"])
    schedule = glam_jax.learning_rate_schedule(options)
    b, t = options["batchSize"], options["sequenceLength"]
    print(f"{checkpoint.step} → {args.steps} on a {data}x{mdl} mesh of {trainer.mesh.devices.flat[0].platform} devices; "
          f"{dataset.training.count} training rows of {t} tokens, batch {b}", flush=True)
    destination = os.path.join(args.output, "checkpoint.safetensors")
    while trainer.step < args.steps:
        step = trainer.step
        rows = glam_data.training_rows(step, b, dataset.training.count, options["seed"])
        began = time.time()
        report = trainer.train_step(dataset.training.batch(rows))
        elapsed = time.time() - began
        line = {"step": step + 1, "loss": report["loss"], "ce": report["ce"], "z_loss": report["z_loss"],
                "aux_loss": report["aux_loss"], "lr": float(schedule(step)), "tokens_per_second": b * t / elapsed,
                "source": f"jax {data}x{mdl}"}
        logs = [line]
        if step % 10 == 9 or trainer.step == args.steps:
            print(f"step {trainer.step:5d}/{args.steps}  loss {report['loss']:.4f} (ce {report['ce']:.4f}, aux {report['aux_loss']:.3f})"
                  f"  {b * t / elapsed:7.0f} tok/s", flush=True)
        if options["evaluateEvery"] > 0 and trainer.step % options["evaluateEvery"] == 0:
            ce = trainer.validation_ce(validation)
            logs.append({"step": trainer.step, "validation_ce": ce, "validation_perplexity": float(__import__("math").exp(ce))})
            print(f"  validation at step {trainer.step}: cross-entropy {ce:.4f} nats/token", flush=True)
        with open(metrics_path, "a") as f:
            f.writelines(json.dumps(entry, sort_keys=True) + "\n" for entry in logs)
        if (options["checkpointEvery"] > 0 and trainer.step % options["checkpointEvery"] == 0) or trainer.step == args.steps:
            trainer.write(destination)
    print(f"saved {destination}; continue with glam: glam train --resume --output {args.output} --steps N")
    return 0


if __name__ == "__main__":
    sys.exit(main())
