#!/usr/bin/env python3
"""Generated mutation testing over all of Sources/ and the fixture kit: no catalogue to keep.

Mutants are derived by operator from the code itself (swift_mutants.py, python_mutants.py: operators
swapped, constants ±1, terms dropped, bounds off by one, arguments swapped, guards skipped,
statements such as a sync or a truncate deleted), sampled by a seed, stratified by folder, and
run against the README's test command and `glam verify Fixtures/` (Swift) or the kit's tests
(Python). All sampled Swift mutants are compiled into one build as schemata and switched on by the
environment variable GLAM_MUTANT, so a mutant costs one test run, not one build.

A mutant that survives is a property no test states, unless it is equivalent (no input can tell it
from the original): equivalent.json lists those by id, each with the reason; they are run, but left
out of the score. Mutants that do not compile test nothing and are replaced.

    python3 Scripts/mutation/generate.py --sample 240 --seed 1      # a full run (about 2 hours here)
    python3 Scripts/mutation/generate.py --sample 20 --seed 20261202 --python 6
    python3 Scripts/mutation/generate.py --pool                      # mutants per folder and operator
    python3 Scripts/mutation/generate.py --show ID ...               # what the mutants do

Prints one line per mutant, a table per folder and "N killed, N survived"; --report FILE writes
every result as JSON. Exit 1 if any non-equivalent mutant survived (with --minimum-score, only if
the share killed is below it: a CI sample is small, and new survivors are answered from full runs).
"""
import argparse
import collections
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import python_mutants  # noqa: E402
import swift_mutants  # noqa: E402

FLAGS = ["-c", "release", "-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]
PYTHON_FILES = ["Fixtures/kit/glam_fixtures.py"]
SWITCH = """// Written by Scripts/mutation/generate.py into its scratch copy only: which mutant is on.
import Foundation

/// The mutant compiled in as schemata that this process runs (GLAM_MUTANT), or -1 for none.
@usableFromInline package let glamMutant: Int = Int(ProcessInfo.processInfo.environment["GLAM_MUTANT"] ?? "") ?? -1
"""


def folder_of(path):
    return os.path.dirname(path)


def tracked(pattern):
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


def pool():
    """Every mutant of every Swift source and kit file: {path: (source, [mutants])}."""
    files = {}
    for path in tracked("Sources/*.swift"):
        source = open(os.path.join(ROOT, path), encoding="utf-8").read()
        files[path] = (source, swift_mutants.find_mutants(path, source))
    for path in PYTHON_FILES:
        source = open(os.path.join(ROOT, path), encoding="utf-8").read()
        files[path] = (source, python_mutants.find_mutants(path, source))
    return files


def stratified(candidates, count, rng, taken_lines):
    """`count` mutants drawn from `candidates` by folder (proportionally, at least 3 a folder), at
    most one per source line."""
    by_folder = collections.defaultdict(list)
    for m in candidates:
        by_folder[folder_of(m.file)].append(m)
    total = sum(len(v) for v in by_folder.values())
    if total == 0 or count <= 0:
        return []
    quota = {f: max(min(3, len(v)), round(count * len(v) / total)) for f, v in by_folder.items()}
    while sum(quota.values()) > count and any(q > 1 for q in quota.values()):
        biggest = max(quota, key=lambda f: quota[f])
        quota[biggest] -= 1
    chosen = []
    for f in sorted(by_folder):
        ms = by_folder[f][:]
        rng.shuffle(ms)
        for m in ms:
            if quota[f] == 0:
                break
            if (m.file, m.line) in taken_lines:
                continue
            taken_lines.add((m.file, m.line))
            chosen.append(m)
            quota[f] -= 1
    return chosen


def run(command, cwd, timeout, env=None):
    """Runs a command in its own process group; on a timeout the whole group is killed (swift test
    runs the test binary as a child, which a hung mutant would otherwise keep alive)."""
    started = time.time()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               env=env, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output, time.time() - started
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output or "", time.time() - started
    finally:
        reap(cwd)


def reap(work):
    """Kills every process still running a program of the scratch copy `work`: a test binary that
    left its process group (a test that spawns the tool, an exit test) outlives the group kill
    above, and a hung one would take a core from every later mutant."""
    if not os.path.isdir("/proc"):
        return
    prefix = os.path.realpath(work) + os.sep
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            executable = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if executable.startswith(prefix):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def copy_repository(work):
    for name in tracked("."):
        target = os.path.join(work, name)
        os.makedirs(os.path.dirname(target) or work, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), target)


def build(work, files, mutants):
    """Instrument `mutants` into the scratch copy and build; returns the mutants whose lines the
    compiler rejected, or raises on an error no mutant explains."""
    for path, (source, _) in files.items():
        if path.endswith(".swift"):
            mine = [m for m in mutants if m.file == path]
            with open(os.path.join(work, path), "w", encoding="utf-8") as handle:
                handle.write(swift_mutants.instrument(source, mine) if mine else source)
    status, output, seconds = run(["swift", "build", "--build-tests", "--enable-code-coverage"] + FLAGS + ["-Xswiftc", "-enable-testing"],
                                  work, 3600)
    print(f"  build with {len(mutants)} mutants: {'ok' if status == 0 else 'errors'} ({seconds:.0f} s)", flush=True)
    if status == 0:
        return []
    by_line = {(m.file, m.line): m for m in mutants}
    rejected, unexplained = set(), []
    for match in re.finditer(r"^(/[^\n:]+\.swift):(\d+):\d+: error: (.*)$", output, re.M):
        path = os.path.relpath(match.group(1), work)
        key = (path, int(match.group(2)))
        if key in by_line:
            rejected.add(by_line[key])
            continue
        # An error on another line: a deleted statement leaves a later use uninitialised or a path
        # without a return, so blame the nearest deletion above it in the same file, else the
        # nearest mutant above, else the nearest below.
        mine = sorted((m for m in mutants if m.file == path), key=lambda m: m.line)
        above = [m for m in mine if m.line <= key[1]]
        print(f"    error off a mutant's line: {path}:{key[1]}: {match.group(3)[:120]}", flush=True)
        if not mine:
            unexplained.append(match.group(0))
        elif above:
            # Flow errors (a use before initialisation, a missing return) are reported where the
            # flow ends: set aside every mutant of the enclosing declaration above the error.
            source = files[path][0].split("\n")
            start = next((n for n in range(key[1], 0, -1)
                          if re.match(r"\s*(public |private |fileprivate |internal |package |static |mutating |@\w+ )*(func|init|var|subscript)\b",
                                      source[n - 1])), 1)
            rejected.update(m for m in above if m.line >= start)
            rejected.add(above[-1])
        else:
            rejected.add(mine[0])
    if unexplained or not rejected:
        tail = "\n".join(unexplained[:5]) or output[-3000:]
        raise SystemExit(f"generate: the instrumented build failed where no mutant is:\n{tail}")
    return list(rejected)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=20, help="Swift mutants to run")
    parser.add_argument("--python", type=int, default=None, help="kit mutants to run (default: about a tenth of --sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", action="append", help="only mutants under this folder (repeatable)")
    parser.add_argument("--pool", action="store_true", help="count the mutants and stop")
    parser.add_argument("--show", nargs="*", help="describe these mutant ids and stop")
    parser.add_argument("--only", nargs="*", help="run exactly these mutant ids")
    parser.add_argument("--report", help="write the results as JSON here")
    parser.add_argument("--minimum-score", type=float, default=None,
                        help="exit 0 when the share killed is at least this (percent), survivors or not (CI's rotating sample)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds a suite may take under a mutant (default 8 × unmutated + 30)")
    args = parser.parse_args()

    files = pool()
    equivalent = json.load(open(os.path.join(HERE, "equivalent.json")))["equivalent"]
    everything = [m for _, (_, ms) in files.items() for m in ms]
    if args.folder:
        everything = [m for m in everything if any(m.file.startswith(f.rstrip("/") + "/") for f in args.folder)]
    if args.pool:
        counts = collections.Counter(folder_of(m.file) for m in everything)
        for folder, n in sorted(counts.items()):
            ops = collections.Counter(m.operator for m in everything if folder_of(m.file) == folder)
            print(f"{folder:28} {n:6}  " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
        print(f"{len(everything)} mutants in {len(files)} files")
        return
    if args.show is not None:
        wanted = set(args.show)
        for m in everything:
            if m.id in wanted:
                print(f"{m.id} {m.file}:{m.line} {m.operator}: {m.describe(files[m.file][0])}")
        return

    rng = random.Random(args.seed)
    swift_pool = [m for m in everything if m.file.endswith(".swift")]
    python_pool = [m for m in everything if m.file.endswith(".py")]
    taken = set()
    if args.only:
        wanted = set(args.only)
        swift = [m for m in swift_pool if m.id in wanted]
        python = [m for m in python_pool if m.id in wanted]
    else:
        # Oversampled: about a quarter of mutants do not compile (types that a rewrite breaks, a
        # deleted assignment that leaves a later use uninitialised); the run takes --sample of those that do.
        swift = stratified(swift_pool, int(args.sample * 1.4) + 5, rng, taken)
        python_count = args.python if args.python is not None else max(1, args.sample // 10)
        python = rng.sample(python_pool, min(python_count, len(python_pool)))
    for number, m in enumerate(swift + python):
        m.number = number

    if python:
        # The kit's tests import these; say so now rather than after the Swift build and baseline.
        missing = [name for name in ("numpy", "safetensors") if importlib.util.find_spec(name) is None]
        if missing:
            sys.exit(f"generate: the kit's tests need {', '.join(missing)}: pip install -r Fixtures/requirements.txt (or --python 0)")
    scratch = tempfile.mkdtemp(prefix="glam-generated-mutants-")
    work = os.path.join(scratch, "repo")
    copy_repository(work)
    with open(os.path.join(work, "Sources", "GLaM", "Support", "MutantSwitch.swift"), "w") as handle:
        handle.write(SWITCH)
    with open(os.path.join(work, "Sources", "GLaMCommand", "MutantSwitch.swift"), "w") as handle:
        handle.write(SWITCH.replace("@usableFromInline package let", "let"))
    print(f"{len(swift)} Swift and {len(python)} kit mutants (seed {args.seed}) of {len(everything)}; scratch copy {work}", flush=True)

    invalid = []
    for attempt in range(20):
        rejected = build(work, files, swift)
        if not rejected:
            break
        invalid += rejected
        for m in rejected:
            print(f"    does not compile: {m.id} {m.file}:{m.line} {m.operator}", flush=True)
        swift = [m for m in swift if m not in rejected]
    else:
        raise SystemExit("generate: the instrumented build still fails after 20 attempts")
    if not args.only:
        compiled = len(swift)
        swift = stratified(swift, args.sample, random.Random(args.seed), set())
        random.Random(args.seed).shuffle(swift)  # every folder early in the run
        print(f"  {compiled} mutants compile; running {len(swift)} of them", flush=True)

    glam = os.path.join(work, ".build", "release", "glam")
    base_env = dict(os.environ)
    base_env.pop("GLAM_MUTANT", None)
    profiles = os.path.join(scratch, "profiles")
    os.makedirs(profiles)
    base_env["LLVM_PROFILE_FILE"] = os.path.join(profiles, "mutant-%p.profraw")
    reach, cost = coverage_by_suite(work, scratch, base_env, glam)
    baseline = sum(cost.values())
    print(f"  no mutant on: every suite passes ({baseline:.0f} s in all); a suite's run under a mutant times out after "
          f"8 × its own time + 30 s (at least 60 s)", flush=True)

    kit_env = dict(base_env, GLAM=glam)
    if python:
        status, output, kit_seconds = run([sys.executable, "Fixtures/kit/test_glam_fixtures.py"], work, 600, kit_env)
        if status != 0:
            raise SystemExit(f"generate: the kit's tests fail unmutated:\n{output[-2000:]}")

    results = []
    started = time.time()

    def record(m, result, detail, seconds):
        source = files[m.file][0]
        row = {"id": m.id, "file": m.file, "line": m.line, "folder": folder_of(m.file), "operator": m.operator,
               "mutation": m.describe(source), "result": result, "detail": detail, "seconds": round(seconds, 1)}
        if m.id in equivalent:
            row["equivalent"] = equivalent[m.id]
        results.append(row)
        tag = result + (" (equivalent)" if m.id in equivalent else "")
        print(f"  [{len(results)}/{len(swift) + len(python)}] {tag:8} {m.id} {m.file}:{m.line} {m.operator}: "
              f"{row['mutation'][:140]}  ({seconds:.0f} s{'; ' + detail if detail else ''})", flush=True)
        if args.report:
            write_report(args.report, results, invalid, files, args.seed)

    for m in swift:
        env = dict(base_env, GLAM_MUTANT=str(m.number))
        # A line with no counter at all (a constant that is initialised statically) may still be
        # used by any test: it gets every suite.
        reaching = reach[(m.file, m.line)] if (m.file, m.line) in reach else set(cost)
        suites = sorted(reaching - {"verify"})
        if not suites and "verify" not in reaching:
            record(m, "survived", "no test reaches its line", 0)
            continue
        # The suites that reach the line, quickest first, one process each: the first that fails
        # kills the mutant, so only survivors pay for every suite.
        status, output, seconds = 0, "", 0.0
        for suite in sorted(suites, key=lambda name: cost.get(name, 0)):
            selection = "^GLaMTests\\." + suite + "/"
            limit = args.timeout or max(60.0, 8 * cost.get(suite, 0) + 30)  # a mutant that slows a suite this much hangs
            status, output, spent = run(["swift", "test", "--skip-build", "--filter", selection] + FLAGS, work, limit, env)
            seconds += spent
            for leftover in os.listdir(profiles):
                os.remove(os.path.join(profiles, leftover))
            if status != 0:
                break
        if status is None:
            record(m, "killed", "tests timed out", seconds)
            continue
        if status != 0:
            failed = sorted({line.split('"')[1] for line in output.splitlines() if line.startswith("✘ Test \"")})
            trapped = "unexpected signal" in output or "Fatal error" in output
            detail = f"{len(failed)} tests failed" + (f" ({failed[0][:50]})" if failed else "") + (", trapped" if trapped else "")
            record(m, "killed", detail, seconds)
            continue
        verify, _, verify_seconds = run([glam, "verify", "Fixtures/"], work, 600, env)
        if verify != 0:
            record(m, "killed", "glam verify failed", seconds + verify_seconds)
        else:
            record(m, "survived", "", seconds + verify_seconds)

    for m in python:
        path = os.path.join(work, m.file)
        original = files[m.file][0]
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(m.apply(original))
        try:
            status, output, seconds = run([sys.executable, "Fixtures/kit/test_glam_fixtures.py"], work, 600, kit_env)
        finally:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(original)
        record(m, "killed" if status != 0 else "survived", "kit tests failed" if status else "", seconds)

    summary = summarise(results, invalid, files)
    print(summary)
    print(f"{len(results)} mutants in {time.time() - started:.0f} s")
    shutil.rmtree(scratch, ignore_errors=True)
    killed = sum(r["result"] == "killed" and "equivalent" not in r for r in results)
    survived = sum(r["result"] == "survived" and "equivalent" not in r for r in results)
    print(f"{killed} killed, {survived} survived")
    if args.minimum_score is not None:
        score = 100 * killed / max(killed + survived, 1)
        print(f"score {score:.0f}% against a floor of {args.minimum_score:.0f}%")
        sys.exit(0 if score >= args.minimum_score else 1)
    sys.exit(1 if survived else 0)


def llvm_tool(name):
    """The toolchain's own llvm tool (its profile format matches the compiler's), else PATH's."""
    swift = shutil.which("swift")
    beside = os.path.join(os.path.dirname(os.path.realpath(swift)), name) if swift else ""
    return beside if os.path.exists(beside) else name


def coverage_by_suite(work, scratch, env, glam):
    """Runs each test suite (and `glam verify Fixtures/`) alone on the instrumented build with no
    mutant on; every one must pass. Returns {(file, line): suites whose run executes that line}
    and the seconds each suite took. A mutant is run against the suites that reach its line only:
    one that no test reaches survives without a run."""
    listing = subprocess.run(["swift", "test", "--skip-build", "--list-tests"] + FLAGS, cwd=work, capture_output=True,
                             text=True, env=env).stdout
    suites = sorted({line.split("/")[0].split(".", 1)[1] for line in listing.splitlines() if line.startswith("GLaMTests.")})
    if not suites:
        raise SystemExit("generate: no test suites listed")
    binaries = [os.path.join(work, ".build", "release", "GLaMPackageTests.xctest"), glam]
    profiles = os.path.dirname(env["LLVM_PROFILE_FILE"])
    reach, cost = {}, {}
    for suite in suites + ["verify"]:
        if suite == "verify":
            status, output, seconds = run([glam, "verify", "Fixtures/"], work, 900, env)
        else:
            status, output, seconds = run(["swift", "test", "--skip-build", "--filter", f"^GLaMTests\\.{suite}/"] + FLAGS, work, 1800, env)
        cost[suite] = seconds
        if status != 0:
            raise SystemExit(f"generate: {suite} fails with no mutant on:\n{output[-3000:]}")
        raws = [os.path.join(profiles, f) for f in os.listdir(profiles)]
        merged = os.path.join(scratch, "suite.profdata")
        subprocess.run([llvm_tool("llvm-profdata"), "merge", "-sparse", "-o", merged] + raws, check=True)
        for raw in raws:
            os.remove(raw)
        lcov = subprocess.run([llvm_tool("llvm-cov"), "export", "-format=lcov", "-instr-profile", merged, binaries[0], "-object", binaries[1]],
                              capture_output=True, text=True, check=True).stdout
        current = None
        for line in lcov.splitlines():
            if line.startswith("SF:"):
                current = os.path.relpath(line[3:], work)
            elif line.startswith("DA:") and current:
                number, count = line[3:].split(",")[:2]
                reach.setdefault((current, int(number)), set())
                if int(count) > 0:
                    reach[(current, int(number))].add(suite)
        print(f"    {suite}: passes ({seconds:.0f} s)", flush=True)
    return reach, cost


def summarise(results, invalid, files):
    lines = ["", "| folder | mutants | killed | survived | equivalent | score |", "|---|---|---|---|---|---|"]
    folders = sorted({r["folder"] for r in results})
    for folder in folders + ["all"]:
        rows = [r for r in results if folder == "all" or r["folder"] == folder]
        eq = sum("equivalent" in r for r in rows)
        killed = sum(r["result"] == "killed" and "equivalent" not in r for r in rows)
        survived = sum(r["result"] == "survived" and "equivalent" not in r for r in rows)
        score = f"{100 * killed / (killed + survived):.0f}%" if killed + survived else "–"
        name = f"**{folder}**" if folder == "all" else folder
        lines.append(f"| {name} | {len(rows)} | {killed} | {survived} | {eq} | {score} |")
    lines.append("")
    lines.append(f"{len(invalid)} sampled mutants did not compile (they test nothing) and were set aside.")
    survivors = [r for r in results if r["result"] == "survived"]
    if survivors:
        lines.append("")
        lines.append("Survivors:")
        for r in survivors:
            lines.append(f"- {r['id']} {r['file']}:{r['line']} {r['operator']}: {r['mutation'][:160]}"
                         + (f" — equivalent: {r['equivalent']}" if "equivalent" in r else ""))
    return "\n".join(lines)


def write_report(path, results, invalid, files, seed):
    data = {"seed": seed, "results": results,
            "invalid": [{"id": m.id, "file": m.file, "line": m.line, "operator": m.operator,
                         "mutation": m.describe(files[m.file][0])} for m in invalid]}
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
