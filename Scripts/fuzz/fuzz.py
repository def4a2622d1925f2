#!/usr/bin/env python3
"""Fuzzes the `glam` binary with hostile files and command lines, and fails on any trap, hang or
allocation over a memory cap.

Every case runs one `glam` command in a child process with its address space capped
(`--memory-gb`, RLIMIT_AS) and a timeout. An exit status of 0, 1 or 2 is what `glam` promises (2
with a one-line message for bad input); anything else — a signal (a Swift trap is SIGILL or
SIGTRAP, an allocation beyond the cap aborts), a status ≥ 128, or the timeout — is a failure.

Case classes (chosen by a seeded generator, so `--seed S --cases N` is repeatable):
  header    byte-level mutants of fixtures and checkpoints: flipped, inserted or deleted header
            bytes, a wrong length field, truncation, appended bytes;
  entry     structure-aware mutants of the header: dtypes, shapes (0, -1, 2^62, floats, strings),
            data offsets, duplicated, renamed or missing tensors;
  config    checkpoints and glam_lm fixtures whose config holds hostile values (0, -1, 2^31, 2^62,
            2^63-1, 1e300, null, strings, nested objects) for one key, checksum recomputed;
  training  checkpoints with hostile training options, step counters or tokenizers (out-of-range
            merges, a merge bomb), checksum recomputed;
  cli       hostile values for every option of every subcommand.

Usage: python3 Scripts/fuzz/fuzz.py [--glam .build/release/glam] [--cases 300] [--seed 0]
Ends with "N passed, N failed"; exit 1 if any case failed.
"""
import argparse
import collections
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTILE_INTS = [0, -1, 1, 2, 3, 2**31, 2**31 - 1, 2**32, 2**40, 2**62, 2**63 - 1, -(2**63), 10**30]
HOSTILE_VALUES = HOSTILE_INTS + [1e300, -1e300, 0.5, 1.5, "x", "", None, [], {}, True, {"a": [1]}, "NaN", 1e-300]
CLI_VALUES = ["0", "-1", "1", "2", "2147483648", "4611686018427387904", "9223372036854775807", "99999999999999999999",
              "1e300", "-0", "nan", "inf", "", "x", "1x1", "0x0", "4611686018427387904x2", "64x64", "2x2", "1.5", "\u00e9",
              "/nonexistent", "--", "-", "NaN", " 3"]


def read_safetensors(path):
    with open(path, "rb") as handle:
        data = handle.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    return header, data[8 + length:]


def write_safetensors(path, header, body):
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw + body)


def shape_text(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def checksum(header, body):
    """The checkpoint checksum as TrainingCheckpoint computes it (CRC-32 over sorted tensors and
    metadata); only well-formed entries can be summed, others keep the stale checksum."""
    crc = 0
    for name in sorted(k for k in header if k != "__metadata__"):
        entry = header[name]
        try:
            begin, end = entry["data_offsets"]
            crc = zlib.crc32(f"{name}|{entry['dtype']}|{shape_text(entry['shape'])}|".encode(), crc)
            crc = zlib.crc32(body[begin:end], crc)
        except Exception:
            return None
    for key in sorted(header.get("__metadata__", {}) or {}):
        if key != "checksum":
            crc = zlib.crc32(f"{key}={header['__metadata__'][key]}\n".encode(), crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def resum(header, body):
    value = checksum(header, body)
    if value is not None and isinstance(header.get("__metadata__"), dict) and "checksum" in header["__metadata__"]:
        header["__metadata__"]["checksum"] = value


class Fuzzer:
    def __init__(self, glam, work, memory_gb, timeout, rng):
        self.glam, self.work, self.memory, self.timeout, self.rng = glam, work, int(memory_gb * 2**30), timeout, rng
        self.statuses = collections.Counter()
        self.verbose = False
        self.fixtures = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "Fixtures")) for f in fs
                               if f.endswith(".safetensors") and "/safetensors/" not in os.path.join(d, f))
        self.corpus = os.path.join(work, "corpus.txt")
        with open(os.path.join(ROOT, "Fixtures", "corpus", "jargon-4.4.7.txt"), encoding="utf-8") as handle:
            text = handle.read()[:30000]
        with open(self.corpus, "w", encoding="utf-8") as handle:
            handle.write(text)
        seed_run = os.path.join(work, "seed-run")
        self.call(["train", "--config", "tiny", "--steps", "2", "--batch", "2", "--length", "32", "--corpus", self.corpus,
                   "--output", seed_run], check=True)
        self.checkpoint = os.path.join(seed_run, "checkpoint.safetensors")

    def limit(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.memory, self.memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def call(self, arguments, check=False):
        started = time.time()
        try:
            result = subprocess.run([self.glam] + arguments, capture_output=True, text=True, errors="replace",
                                    timeout=self.timeout, preexec_fn=self.limit, cwd=self.work)
        except subprocess.TimeoutExpired:
            return "hang", f"no answer in {self.timeout} s", time.time() - started
        if check and result.returncode != 0:
            sys.exit(f"fuzz: seeding failed: glam {' '.join(arguments)}: {result.stderr}")
        if result.returncode in (0, 1, 2):
            stderr_lines = [line for line in result.stderr.splitlines() if line.strip()]
            if result.returncode == 2 and not stderr_lines:
                return "silent", "exit 2 without a message", time.time() - started
            self.statuses[result.returncode] += 1
            if self.verbose:
                print(f"  exit {result.returncode}: glam {' '.join(a[:40] for a in arguments)} :: {(stderr_lines or [''])[-1][:150]}")
            return "ok", "", time.time() - started
        return "crash", f"exit {result.returncode}: {result.stderr.strip()[-300:]}", time.time() - started

    # --- mutants -------------------------------------------------------------------------------

    def byte_mutant(self, source, path):
        with open(source, "rb") as handle:
            data = bytearray(handle.read())
        (length,) = struct.unpack("<Q", data[:8])
        kind = self.rng.choice(["flip", "insert", "delete", "length", "truncate", "append"])
        if kind == "flip":
            for _ in range(self.rng.randint(1, 4)):
                i = self.rng.randrange(8, 8 + length)
                data[i] = self.rng.choice([0, 0x22, 0x2C, 0x5B, 0x5D, 0x7B, 0x7D, 0x2D, 0x2E, 0x30, 0x39, 0xFF, data[i] ^ 0x01])
        elif kind == "insert":
            i = self.rng.randrange(8, 8 + length)
            data[i:i] = bytes(self.rng.choice([b",", b"-", b"0", b".5", b"e9", b"\x00", b"\xef\xbb\xbf", b"9" * 20]))
            data[:8] = struct.pack("<Q", length + (len(data) - len(bytearray(open(source, "rb").read()))))
        elif kind == "delete":
            i = self.rng.randrange(8, 8 + length - 1)
            del data[i:i + self.rng.randint(1, 3)]
        elif kind == "length":
            data[:8] = struct.pack("<Q", self.rng.choice([0, 1, 2, length - 1, length + 1, 2**40, 2**63, 100_000_001]) % 2**64)
        elif kind == "truncate":
            del data[self.rng.randrange(0, len(data)):]
        else:
            data += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16)))
        with open(path, "wb") as handle:
            handle.write(data)
        return kind

    def entry_mutant(self, source, path):
        header, body = read_safetensors(source)
        names = [k for k in header if k != "__metadata__"]
        name = self.rng.choice(names)
        kind = self.rng.choice(["dtype", "shape", "offsets", "remove", "rename", "duplicate", "extra"])
        entry = header[name]
        if kind == "dtype":
            entry["dtype"] = self.rng.choice(["F16", "U8", "BOOL", "I64", "F64", "BF16", "I32", "f32", "", 7])
        elif kind == "shape":
            shape = list(entry["shape"])
            if shape and self.rng.random() < 0.7:
                shape[self.rng.randrange(len(shape))] = self.rng.choice([0, -1, 2**62, 1.0, "2", 2**31, 3])
            else:
                shape = self.rng.choice([[], [2**62, 2**62], [0] * 40, "x"])
            entry["shape"] = shape
        elif kind == "offsets":
            begin, end = entry["data_offsets"]
            entry["data_offsets"] = self.rng.choice([[end, begin], [begin, end + 4], [begin - 4, end], [0, 2**63], [begin], [begin, float(end)]])
        elif kind == "remove":
            del header[name]
        elif kind == "rename":
            header[self.rng.choice(["__metadata__x", "layers.99.moe.wi", "expected.bogus", name + "x"])] = header.pop(name)
        elif kind == "duplicate":
            header[name + "_copy"] = dict(entry)
        else:
            entry["extra"] = self.rng.choice(HOSTILE_VALUES)
        resum(header, body)
        write_safetensors(path, header, body)
        return kind

    def config_mutant(self, source, path):
        header, body = read_safetensors(source)
        config = json.loads(header["__metadata__"]["config"])
        key = self.rng.choice(sorted(config) + ["num_groups", "expert_capacity", "capacity_factor"])
        config[key] = self.rng.choice(HOSTILE_VALUES)
        header["__metadata__"]["config"] = json.dumps(config)
        resum(header, body)
        write_safetensors(path, header, body)
        return key

    def training_mutant(self, path):
        header, body = read_safetensors(self.checkpoint)
        metadata = header["__metadata__"]
        kind = self.rng.choice(["options", "step", "skipped", "tokenizer", "bomb"])
        if kind == "options":
            options = json.loads(metadata["training"])
            key = self.rng.choice(sorted(options))
            if key == "schedule":
                options[key][self.rng.choice(["peak", "constantSteps"])] = self.rng.choice(HOSTILE_VALUES)
            else:
                options[key] = self.rng.choice(HOSTILE_VALUES)
            metadata["training"] = json.dumps(options)
        elif kind in ("step", "skipped"):
            metadata["step" if kind == "step" else "skipped_steps"] = str(self.rng.choice(HOSTILE_VALUES))
        elif kind == "tokenizer":
            tokenizer = json.loads(metadata["tokenizer"])
            merges = tokenizer["merges"]
            if merges:
                merges[self.rng.randrange(len(merges))] = [self.rng.choice(HOSTILE_INTS), self.rng.choice(HOSTILE_INTS)]
            metadata["tokenizer"] = json.dumps(tokenizer)
        else:
            pairs = [[97, 97]] + [[255 + k, 255 + k] for k in range(1, 60)]
            metadata["tokenizer"] = json.dumps({"format": "glam-bpe", "version": 1, "merges": pairs})
        resum(header, body)
        write_safetensors(path, header, body)
        return kind

    def run_file_case(self, path, checkpoint_like):
        if not checkpoint_like:
            return self.call(["verify", path])
        which = self.rng.choice(["generate", "trace", "resume"])
        if which == "generate":
            return self.call(["generate", "--checkpoint", path, "--prompt", "The hacker", "--tokens", "2"])
        if which == "trace":
            return self.call(["trace", "--checkpoint", path, "--prompt", "The hacker"])
        run = tempfile.mkdtemp(dir=self.work)
        shutil.copy(path, os.path.join(run, "checkpoint.safetensors"))
        outcome = self.call(["train", "--resume", "--output", run, "--corpus", self.corpus, "--steps", "3"])
        shutil.rmtree(run, ignore_errors=True)
        return outcome

    def cli_case(self):
        value = lambda: self.rng.choice(CLI_VALUES)
        commands = {
            "train": ["--config", "--steps", "--batch", "--length", "--seed", "--checkpoint-every", "--evaluate-every",
                      "--constant-steps", "--peak-lr", "--threads", "--groups", "--mesh"],
            "generate": ["--tokens", "--temperature", "--top-k", "--seed"],
            "trace": ["--layer", "--position", "--mesh", "--seed"],
            "bench": ["--size", "--threads", "--repeats", "--groups", "--group-size", "--experts", "--model-dim",
                      "--capacity-factor", "--config", "--batch", "--length"],
            "params": ["--config"],
            "plan": ["--config", "--mesh"],
        }
        command = self.rng.choice(sorted(commands))
        arguments = [command]
        if command == "bench":
            arguments.append(self.rng.choice(["gemm", "moe", "model"]))
        for option in self.rng.sample(commands[command], k=min(len(commands[command]), self.rng.randint(1, 3))):
            arguments += [option, value()]
        if command == "train":
            arguments += ["--corpus", self.corpus, "--output", tempfile.mkdtemp(dir=self.work), "--steps", "1"] if "--steps" not in arguments else ["--corpus", self.corpus, "--output", tempfile.mkdtemp(dir=self.work)]
        if command == "generate":
            arguments += ["--checkpoint", self.checkpoint, "--prompt", self.rng.choice(["x", "The hacker", "\u00e9\u00e9", "a" * 600])]
        if command == "trace":
            arguments += ["--prompt", self.rng.choice(["x", "The hacker", "a" * 40])]
        if command == "bench" and arguments[1] in ("gemm", "model"):
            arguments += ["--repeats", "1"]
        return " ".join(arguments[:2]), self.call(arguments)

    def case(self):
        kind = self.rng.choice(["header", "entry", "config", "training", "cli"])
        path = os.path.join(self.work, "case.safetensors")
        if kind == "header":
            source = self.rng.choice(self.fixtures + [self.checkpoint] * 4)
            detail = self.byte_mutant(source, path)
            return kind, detail, self.run_file_case(path, source == self.checkpoint)
        if kind == "entry":
            source = self.rng.choice(self.fixtures + [self.checkpoint] * 4)
            detail = self.entry_mutant(source, path)
            return kind, detail, self.run_file_case(path, source == self.checkpoint)
        if kind == "config":
            lm = [f for f in self.fixtures if "glam_lm" in f]
            source = self.rng.choice(lm + [self.checkpoint] * 2)
            detail = self.config_mutant(source, path)
            return kind, detail, self.run_file_case(path, source == self.checkpoint)
        if kind == "training":
            detail = self.training_mutant(path)
            return kind, detail, self.run_file_case(path, True)
        detail, outcome = self.cli_case()
        return kind, detail, outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glam", default=os.path.join(ROOT, ".build", "release", "glam"))
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--verbose", action="store_true", help="print every case's command, status and last stderr line")
    args = parser.parse_args()
    glam = os.path.abspath(args.glam)
    if not os.access(glam, os.X_OK):
        sys.exit(f"fuzz: no glam binary at {glam} (build it first: swift build -c release ...)")
    work = tempfile.mkdtemp(prefix="glam-fuzz-")
    started = time.time()
    try:
        fuzzer = Fuzzer(glam, work, args.memory_gb, args.timeout, random.Random(args.seed))
        fuzzer.statuses.clear()
        fuzzer.verbose = args.verbose
        counts = collections.Counter()
        failures = []
        for number in range(args.cases):
            kind, detail, (outcome, message, seconds) = fuzzer.case()
            counts[(kind, outcome)] += 1
            if outcome != "ok":
                failures.append(f"case {number} [{kind} {detail}] {outcome}: {message}")
                saved = os.path.join(work, f"failure-{number}.safetensors")
                if os.path.exists(os.path.join(work, "case.safetensors")):
                    shutil.copy(os.path.join(work, "case.safetensors"), saved)
    finally:
        pass
    for failure in failures:
        print("FAIL", failure)
    print(f"{args.cases} cases in {time.time() - started:.0f} s (seed {args.seed}, memory cap {args.memory_gb:g} GB, "
          f"timeout {args.timeout:g} s):")
    for kind in ["header", "entry", "config", "training", "cli"]:
        total = sum(v for (k, _), v in counts.items() if k == kind)
        bad = total - counts[(kind, "ok")]
        print(f"  {kind:9s} {total:5d} cases, {bad} failed")
    print(f"  exit statuses of the cases that held: " + ", ".join(f"{k}: {v}" for k, v in sorted(fuzzer.statuses.items())))
    if failures:
        print(f"failing cases kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.cases - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
