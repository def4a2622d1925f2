#!/usr/bin/env python3
"""Mutation testing: plants each realistic one-line bug of catalogue.json, one at a time, in a
scratch copy of the repository, and checks that the test suite (the README's test command) or
`glam verify Fixtures/` fails. A mutant that survives is a bug the tests would not notice.

Each mutant is data: the file, the exact old text (it must occur exactly once), the new text and
why it is a plausible bug. When the code changes so that a mutant's old text no longer occurs once,
the mutant is reported STALE and the run fails: fix the catalogue, do not skip it. A mutant that
does not compile is reported INVALID (it tests nothing) and fails the run too.

Usage: python3 Scripts/mutation/mutate.py [--only ID ...] [--sample N --seed S]
Ends with "N killed, N survived"; exit 1 if any mutant survived, is stale or invalid.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CATALOGUE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalogue.json")
FLAGS = ["-c", "release", "-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]


def run(command, cwd, timeout):
    started = time.time()
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stdout + result.stderr, time.time() - started
    except subprocess.TimeoutExpired:
        return -1, "timeout", time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="mutant ids to run")
    parser.add_argument("--sample", type=int, default=None, help="run this many mutants, chosen by --seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--check", action="store_true",
                        help="only check that every mutant's old text occurs exactly once in its file (no build)")
    args = parser.parse_args()
    mutants = json.load(open(CATALOGUE))["mutants"]
    if args.check:
        stale = []
        for mutant in mutants:
            path = os.path.join(ROOT, mutant["file"])
            count = open(path, encoding="utf-8").read().count(mutant["old"]) if os.path.exists(path) else -1
            if count != 1:
                stale.append(f"{mutant['id']}: old text occurs {count} times in {mutant['file']}" if count >= 0
                             else f"{mutant['id']}: {mutant['file']} does not exist")
        for line in stale:
            print("mutate: stale catalogue entry " + line)
        print(f"mutate: {len(mutants) - len(stale)} of {len(mutants)} catalogue mutants apply")
        sys.exit(1 if stale else 0)
    if args.only:
        mutants = [m for m in mutants if m["id"] in args.only]
    if args.sample:
        mutants = random.Random(args.seed).sample(mutants, min(args.sample, len(mutants)))

    scratch = tempfile.mkdtemp(prefix="glam-mutate-")
    work = os.path.join(scratch, "repo")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        os.makedirs(os.path.dirname(os.path.join(work, name)) or work, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(work, name))
    print(f"{len(mutants)} mutants; scratch copy {work}; testing the unmutated code first", flush=True)
    status, output, seconds = run(["swift", "test"] + FLAGS, work, args.timeout)
    if status != 0:
        sys.exit(f"mutate: the unmutated copy does not pass its tests:\n{output[-2000:]}")
    print(f"  unmutated: tests pass ({seconds:.0f} s)", flush=True)

    rows = []
    started = time.time()
    for mutant in mutants:
        path = os.path.join(work, mutant["file"])
        original = open(path, encoding="utf-8").read()
        if original.count(mutant["old"]) != 1:
            rows.append((mutant["id"], "STALE", f"old text occurs {original.count(mutant['old'])} times in {mutant['file']}", 0))
            continue
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(original.replace(mutant["old"], mutant["new"]))
        try:
            test, output, test_seconds = run(["swift", "test"] + FLAGS, work, args.timeout)
            build_seconds = 0
            compile_errors = [line for line in output.splitlines() if re.search(r"\.swift:\d+:\d+: error:", line)]
            if test != 0 and compile_errors:
                rows.append((mutant["id"], "INVALID", "does not compile: " + compile_errors[0].strip()[:120], test_seconds))
                print(f"  {rows[-1][0]}: {rows[-1][1]} {rows[-1][2]}", flush=True)
                continue
            failed_tests = sorted({line.split('"')[1] for line in output.splitlines() if line.startswith("✘ Test \"")})
            verify, verify_output, verify_seconds = run([os.path.join(work, ".build", "release", "glam"), "verify", "Fixtures/"], work,
                                                       args.timeout)
            seconds = build_seconds + test_seconds + verify_seconds
            if test != 0 or verify != 0:
                why = []
                if test != 0:
                    crashed = "unexpected signal" in output
                    why.append(f"{len(failed_tests)} tests failed" + (f" ({failed_tests[0][:60]}…)" if failed_tests else "")
                               + (", the test process trapped" if crashed else ""))
                if verify != 0:
                    why.append("glam verify failed")
                rows.append((mutant["id"], "killed", "; ".join(why), seconds))
            else:
                rows.append((mutant["id"], "SURVIVED", mutant["why"], seconds))
        finally:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(original)
        print(f"  {rows[-1][0]}: {rows[-1][1]} ({rows[-1][3]:.0f} s) {rows[-1][2]}", flush=True)

    print()
    print("| mutant | result | detail |")
    print("|---|---|---|")
    for mutant, result, detail, _ in rows:
        print(f"| {mutant} | {result} | {detail} |")
    killed = sum(r[1] == "killed" for r in rows)
    bad = len(rows) - killed
    print(f"\n{len(rows)} mutants in {time.time() - started:.0f} s")
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"{killed} killed, {bad} survived")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
