#!/usr/bin/env python3
"""Crash test: `kill -9` a training run at random moments, resume it each time, and check that
nothing was lost or duplicated.

A reference run trains the `tiny` model for --steps steps with a checkpoint after every step. The
same run is then started again and killed with SIGKILL --kills times at random moments (during a
step, a checkpoint write or a metrics write), resumed with `glam train --resume` after each kill,
and finally left to finish. Checked:
  - every resume starts (the checkpoint on disk is always a whole one);
  - metrics.jsonl of the interrupted run holds each step exactly once, with the reference's losses
    bit for bit (a resumed run is bitwise the same);
  - no temporary checkpoint file is left behind.

Usage: python3 Scripts/crash/kill_test.py [--glam .build/release/glam] [--kills 10] [--steps 80] [--seed 0]
Ends with "N passed, N failed"; exit 1 if any check failed.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def losses(directory):
    """step -> (loss, applied) of every step record, and the list of logged steps in order."""
    records = [json.loads(line) for line in open(os.path.join(directory, "metrics.jsonl")) if line.strip()]
    steps = [r for r in records if "ce" in r]
    return {r["step"]: r["loss"] for r in steps}, [r["step"] for r in steps]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glam", default=os.path.join(ROOT, ".build", "release", "glam"))
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    glam = os.path.abspath(args.glam)
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="glam-kill-")
    corpus = os.path.join(work, "corpus.txt")
    with open(os.path.join(ROOT, "Fixtures", "corpus", "jargon-4.4.7.txt"), encoding="utf-8") as handle:
        text = handle.read()[:30000]
    with open(corpus, "w", encoding="utf-8") as handle:
        handle.write(text)
    common = ["--config", "tiny", "--batch", "2", "--length", "32", "--corpus", corpus, "--steps", str(args.steps),
              "--checkpoint-every", "1", "--evaluate-every", "4"]

    reference = os.path.join(work, "reference")
    subprocess.run([glam, "train", "--output", reference] + common, check=True, capture_output=True)
    expected, _ = losses(reference)

    interrupted = os.path.join(work, "interrupted")
    checks = []
    kills = 0
    started = time.time()
    finished = False
    while kills < args.kills and not finished:
        has_checkpoint = os.path.exists(os.path.join(interrupted, "checkpoint.safetensors"))
        command = [glam, "train", "--output", interrupted] + common + (["--resume"] if has_checkpoint else ["--force"])
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.02, 0.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
            process.wait()
        else:
            # It reached the last step before the kill: the run is complete.
            err = process.stderr.read()
            finished = process.returncode == 0
            if not finished:
                checks.append((False, f"a run exited {process.returncode}: {err[-300:]}"))
                break
    if not finished:
        command = [glam, "train", "--output", interrupted, "--resume"] + common
        result = subprocess.run(command, capture_output=True, text=True)
        checks.append((result.returncode == 0, f"the last run finished (exit {result.returncode}) {result.stderr[-200:]}"))

    got, order = losses(interrupted)
    checks.append((order == list(range(1, args.steps + 1)), f"each step logged once, in order: {order}"))
    same = [step for step in expected if got.get(step) == expected[step]]
    checks.append((len(same) == len(expected), f"losses equal the uninterrupted run's at {len(same)} of {len(expected)} steps"))
    checks.append((kills >= min(args.kills, 1), f"runs killed mid-flight: {kills}"))
    leftovers = [name for name in os.listdir(interrupted) if ".tmp-" in name]
    checks.append((not leftovers, f"no temporary checkpoint left behind: {leftovers}"))

    for ok, message in checks:
        print(("PASS  " if ok else "FAIL  ") + message)
    failed = sum(not ok for ok, _ in checks)
    print(f"{kills} kills over {args.steps} steps in {time.time() - started:.0f} s")
    print(f"{len(checks) - failed} passed, {failed} failed")
    if failed:
        print(f"runs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
