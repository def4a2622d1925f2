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
  cli       hostile values for every option of every subcommand;
  streams   commands whose standard output is closed or a pipe nobody reads, or whose standard
            error is closed: exit 2 with "cannot write to standard output" (never a trap or
            SIGPIPE), or the command's own status when it writes nothing there;
  targets   --out, --dump, --svg and a run's own files pointed at a FIFO, a directory, a device
            node made in the scratch directory (when this user may make one), a link to one, or
            the command's own input: exit 2 and the target exactly as it was;
  forged    checkpoints with a NaN, infinite or (for Adafactor's second moments) negative value in
            one tensor, checksum recomputed: every command must refuse them (exit 0 is a failure:
            it would compute from poisoned state);
  conflict  --resume with an option that would change the run (another value of --batch,
            --length, --seed, --config, --peak-lr …, or another corpus): exit 2 naming it;
  concurrent two `glam train` on one run directory: the second exits 2 naming the first's pid, the
            first finishes with every step logged once and its own checkpoint.

Usage: python3 Scripts/fuzz/fuzz.py [--glam .build/release/glam] [--cases 300] [--seed 0]
Ends with "N passed, N failed"; exit 1 if any case failed.
"""
import argparse
import collections
import json
import math
import os
import random
import resource
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
import socket
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
        self.other_corpus = os.path.join(work, "other-corpus.txt")  # another slice of the same text
        with open(self.other_corpus, "w", encoding="utf-8") as handle:
            handle.write(open(os.path.join(ROOT, "Fixtures", "corpus", "jargon-4.4.7.txt"), encoding="utf-8").read()[30000:60000])

    def limit(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.memory, self.memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def call(self, arguments, check=False, refuse=False, fragment=None, succeed=False):
        """Runs one case. `refuse`: only exit 2 holds (the input must be refused); `fragment`: the
        message must contain it; `succeed`: only exit 0 holds. No exit-2 message may be empty or one of
        Foundation's error codes."""
        started = time.time()
        try:
            result = subprocess.run([self.glam] + arguments, capture_output=True, text=True, errors="replace",
                                    timeout=self.timeout, preexec_fn=self.limit, cwd=self.work)
        except subprocess.TimeoutExpired:
            return "hang", f"no answer in {self.timeout} s", time.time() - started
        if check and result.returncode != 0:
            sys.exit(f"fuzz: seeding failed: glam {' '.join(arguments)}: {result.stderr}")
        return self.judge(arguments, result.returncode, result.stderr, refuse, fragment, started, succeed)

    def judge(self, arguments, status, stderr, refuse, fragment, started, succeed=False):
        elapsed = time.time() - started
        if status not in (0, 1, 2):
            return "crash", f"exit {status}: {stderr.strip()[-300:]}", elapsed
        stderr_lines = [line for line in stderr.splitlines() if line.strip()]
        if status == 2 and not stderr_lines:
            return "silent", "exit 2 without a message", elapsed
        if status == 2 and ("Domain=" in stderr or "(null)" in stderr):
            return "message", f"a raw Foundation error: {stderr.strip()[-200:]}", elapsed
        if refuse and status != 2:
            return "accepted", f"exit {status} where the input must be refused: {stderr.strip()[-200:]}", elapsed
        if succeed and status != 0:
            return "refused", f"exit {status} where the command must succeed: {stderr.strip()[-200:]}", elapsed
        if fragment is not None and fragment not in stderr:
            return "message", f"exit {status} without {fragment!r}: {stderr.strip()[-200:]}", elapsed
        self.statuses[status] += 1
        if self.verbose:
            print(f"  exit {status}: glam {' '.join(a[:40] for a in arguments)} :: {(stderr_lines or [''])[-1][:150]}")
        return "ok", "", elapsed

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
            # Each benchmark has its own options; a few of another's check that they are refused.
            "bench gemm": ["--size", "--threads", "--repeats", "--shape", "--layout", "--tile", "--config"],
            "bench moe": ["--groups", "--group-size", "--experts", "--model-dim", "--capacity-factor", "--threads", "--batch"],
            "bench model": ["--config", "--batch", "--length", "--experts", "--threads", "--size"],
            "params": ["--config"],
            "plan": ["--config", "--mesh"],
        }
        command = self.rng.choice(sorted(commands))
        arguments = command.split()
        for option in self.rng.sample(commands[command], k=min(len(commands[command]), self.rng.randint(1, 3))):
            arguments += [option, value()]
        if command == "train":
            arguments += ["--corpus", self.corpus, "--output", tempfile.mkdtemp(dir=self.work), "--steps", "1"] if "--steps" not in arguments else ["--corpus", self.corpus, "--output", tempfile.mkdtemp(dir=self.work)]
        if command == "generate":
            arguments += ["--checkpoint", self.checkpoint, "--prompt", self.rng.choice(["x", "The hacker", "\u00e9\u00e9", "a" * 600])]
        if command == "trace":
            arguments += ["--prompt", self.rng.choice(["x", "The hacker", "a" * 40])]
        if command in ("bench gemm", "bench model"):
            arguments += ["--repeats", "1"]
        return " ".join(arguments[:2]), self.call(arguments)

    # --- streams, targets, forged state, resume conflicts, concurrent runs ---------------------

    def scratch_run(self):
        """A new run directory holding a copy of the seed run's checkpoint."""
        run = tempfile.mkdtemp(dir=self.work)
        shutil.copy(self.checkpoint, os.path.join(run, "checkpoint.safetensors"))
        return run

    def streams_case(self):
        run = tempfile.mkdtemp(dir=self.work)
        commands = [
            ["params"], ["--help"], ["plan", "--config", "glam-64b-64e", "--mesh", "64x16"], ["verify", self.rng.choice(self.fixtures)],
            ["generate", "--checkpoint", self.checkpoint, "--prompt", "The", "--tokens", "3"], ["trace", "--prompt", "The hacker"],
            ["train", "--config", "tiny", "--steps", "2", "--batch", "2", "--length", "32", "--corpus", self.corpus, "--output", run],
            ["fixture", "--kind", "top2_gating", "--experts", "4", "--group-size", "8", "--out", os.path.join(run, "f.safetensors")],
        ]
        arguments = self.rng.choice(commands)
        bad = arguments[0] != "--help" and self.rng.random() < 0.25  # an unknown option: the message goes to standard error
        if bad:
            arguments = arguments[:1] + ["--no-such-option"] + arguments[1:]
        mode = self.rng.choice(["closed", "broken", "stderr-closed"])
        started = time.time()
        read_end, write_end = os.pipe()
        if mode == "broken":
            os.close(read_end)

        def prepare():
            self.limit()
            if mode == "closed":
                os.close(1)
            if mode == "stderr-closed":
                os.close(2)
        try:
            child = subprocess.Popen([self.glam] + arguments,
                                     stdout=write_end if mode == "broken" else (subprocess.PIPE if mode == "stderr-closed" else None),
                                     stderr=subprocess.PIPE if mode != "stderr-closed" else None, preexec_fn=prepare, cwd=self.work)
        finally:
            os.close(write_end)
            if mode != "broken":
                os.close(read_end)
        try:
            _, stderr = child.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return f"{arguments[0]} {mode}", ("hang", f"no answer in {self.timeout} s", time.time() - started)
        stderr = (stderr or b"").decode(errors="replace")
        detail = f"{arguments[0]}{' (bad option)' if bad else ''} {mode}"
        if mode == "stderr-closed":
            expected = 2 if bad else 0
            if child.returncode != expected:
                return detail, ("crash" if child.returncode not in (0, 1, 2) else "status",
                                f"exit {child.returncode}, expected {expected}", time.time() - started)
            self.statuses[child.returncode] += 1
            return detail, ("ok", "", time.time() - started)
        fragment = "unknown option" if bad else "cannot write to standard output"
        return detail, self.judge(arguments, child.returncode, stderr, True, fragment, started)

    def targets_case(self):
        directory = tempfile.mkdtemp(dir=self.work)
        kind = self.rng.choice(["fifo", "directory", "socket", "link", "input"])
        target = os.path.join(directory, "target")
        keep = None
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "directory":
            os.mkdir(target)
        elif kind == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(target)
            keep = sock
        elif kind == "link":
            os.mkfifo(target + ".fifo")
            os.symlink(target + ".fifo", target)
        else:
            shutil.copy(self.checkpoint, target)
        before = (os.lstat(target).st_mode, open(target, "rb").read() if kind == "input" else None)
        choices = [
            ["fixture", "--kind", self.rng.choice(["top2_gating", "moe_layer"]), "--out", target],
            ["trace", "--prompt", "The", self.rng.choice(["--dump", "--svg"]), target],
        ]
        if kind == "input":
            choices = [["trace", "--checkpoint", target, "--prompt", "The", self.rng.choice(["--dump", "--svg"]), target]]
        else:
            run = tempfile.mkdtemp(dir=self.work)
            name = self.rng.choice(["metrics.jsonl", "checkpoint.safetensors", "loss.svg"])
            os.rename(target, os.path.join(run, name))
            target = os.path.join(run, name)
            before = (os.lstat(target).st_mode, None)
            choices = [["train", "--config", "tiny", "--steps", "1", "--batch", "2", "--length", "32", "--corpus", self.corpus,
                        "--output", run, self.rng.choice(["--force", "--resume"])]]
        arguments = self.rng.choice(choices)
        outcome = self.call(arguments, refuse=True)
        after = (os.lstat(target).st_mode, open(target, "rb").read() if kind == "input" else None)
        if keep is not None:
            keep.close()
        if outcome[0] == "ok" and after != before:
            outcome = ("changed", f"the {kind} target {target} was changed", outcome[2])
        return f"{kind} {arguments[0]}", outcome

    def forged_case(self, path):
        header, body = read_safetensors(self.checkpoint)
        optimizer = self.rng.random() < 0.5
        names = sorted(k for k in header if k != "__metadata__" and k.startswith("optimizer.") == optimizer)
        name = self.rng.choice(names)
        entry = header[name]
        begin, end = entry["data_offsets"]
        value = self.rng.choice([math.nan, math.inf, -math.inf] + ([-1e-3, -1e30] if optimizer else []))
        index = self.rng.randrange((end - begin) // 4)
        body = bytearray(body)
        body[begin + 4 * index:begin + 4 * index + 4] = struct.pack("<f", value)
        body = bytes(body)
        resum(header, body)
        write_safetensors(path, header, body)
        # Generation and tracing read only the weights; a resumed run reads both.
        which = "resume" if optimizer else self.rng.choice(["generate", "trace", "resume"])
        if which == "generate":
            return f"{name} {value} generate", self.call(["generate", "--checkpoint", path, "--prompt", "The", "--tokens", "2"], refuse=True, fragment=name)
        if which == "trace":
            return f"{name} {value} trace", self.call(["trace", "--checkpoint", path, "--prompt", "The"], refuse=True, fragment=name)
        run = tempfile.mkdtemp(dir=self.work)
        shutil.copy(path, os.path.join(run, "checkpoint.safetensors"))
        outcome = self.call(["train", "--resume", "--output", run, "--corpus", self.corpus, "--steps", "3"], refuse=True, fragment=name)
        shutil.rmtree(run, ignore_errors=True)
        return f"{name} {value} resume", outcome

    def conflict_case(self):
        # The seed run: tiny, B 2, T 32, seed 0, the default schedule and intervals.
        stored = {"--config": "tiny", "--batch": "2", "--length": "32", "--seed": "0", "--checkpoint-every": "100",
                  "--evaluate-every": "50", "--constant-steps": "10000", "--peak-lr": "0.01", "--corpus": self.corpus}
        others = {"--config": ["small", "tiny-dense"], "--batch": ["1", "4"], "--length": ["16", "64"], "--seed": ["1", "7"],
                  "--checkpoint-every": ["0", "7"], "--evaluate-every": ["0", "7"], "--constant-steps": ["1", "7"],
                  "--peak-lr": ["0.5", "0.02"], "--corpus": [self.other_corpus]}
        option = self.rng.choice(sorted(stored))
        run = self.scratch_run()
        same = self.rng.random() < 0.2
        value = stored[option] if same else self.rng.choice(others[option])
        arguments = ["train", "--resume", "--output", run, "--steps", "3", option, value]
        if option != "--corpus":
            arguments += ["--corpus", self.corpus]
        if same:  # the run's own value is no conflict: the run continues
            return f"{option} same", self.call(arguments, succeed=True)
        fragment = "is not the corpus" if option == "--corpus" else f"{option} {value}"
        return f"{option} {value}", self.call(arguments, refuse=True, fragment=fragment)

    def concurrent_case(self):
        run = tempfile.mkdtemp(dir=self.work)
        steps = 12
        arguments = [self.glam, "train", "--config", "tiny", "--steps", str(steps), "--batch", "2", "--length", "32",
                     "--checkpoint-every", "4", "--corpus", self.corpus, "--output", run]
        started = time.time()
        first = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=self.limit, cwd=self.work)
        lock = os.path.join(run, ".glam.lock")
        while first.poll() is None and not (os.path.exists(lock) and open(lock).read().strip()):
            time.sleep(0.005)
        if first.poll() is not None:
            return "train", ("crash" if first.returncode else "status", f"the first run ended ({first.returncode}) before the second started",
                             time.time() - started)
        second = subprocess.run(arguments + [self.rng.choice(["--force", "--resume"])], capture_output=True, text=True, errors="replace",
                                timeout=self.timeout, preexec_fn=self.limit, cwd=self.work)
        try:
            first.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            first.kill()
            return "train", ("hang", f"the first run gave no answer in {self.timeout} s", time.time() - started)
        outcome = self.judge(arguments[1:], second.returncode, second.stderr, True, f"(pid {first.pid})", started)
        if outcome[0] != "ok":
            return "train second", outcome
        if first.returncode != 0:
            return "train first", ("status", f"the first run exited {first.returncode}", time.time() - started)
        with open(os.path.join(run, "metrics.jsonl")) as handle:
            logged = [json.loads(line)["step"] for line in handle if '"ce"' in line]
        header, _ = read_safetensors(os.path.join(run, "checkpoint.safetensors"))
        if logged != list(range(1, steps + 1)) or header["__metadata__"]["step"] != str(steps):
            return "train first", ("changed", f"steps logged {logged}, checkpoint at step {header['__metadata__']['step']}",
                                   time.time() - started)
        shutil.rmtree(run, ignore_errors=True)
        return "train", outcome

    def case(self):
        kind = self.rng.choice(KINDS)
        new_classes = {"streams": self.streams_case, "targets": self.targets_case, "conflict": self.conflict_case,
                       "concurrent": self.concurrent_case,
                       "forged": lambda: self.forged_case(os.path.join(self.work, "case.safetensors"))}
        if kind in new_classes:
            detail, outcome = new_classes[kind]()
            return kind, detail, outcome
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


KINDS = ["header", "entry", "config", "training", "cli", "streams", "targets", "forged", "conflict", "concurrent"]


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
    for kind in KINDS:
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
