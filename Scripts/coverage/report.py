#!/usr/bin/env python3
"""Code coverage of the test suite: lines, regions, functions (and branches, where the compiler
emits them) of every folder of Sources/GLaM and Sources/GLaMCLI, and the public declarations of
the GLaM module that no test calls.

Runs the README's test command with `--enable-code-coverage` in its own build folder
(.build-coverage), so the fast build is left alone. The glam processes that the tests start are
instrumented too, and their counts land in the same profile: code that only a `glam` subprocess
runs counts as covered. Public declarations are read from the module's symbol graph (written by
Scripts/docs/build.sh, or built here) and matched to the profile's functions by mangled name.

    python3 Scripts/coverage/report.py                    # build, test, report
    python3 Scripts/coverage/report.py --no-run           # report the last run's profile
    python3 Scripts/coverage/report.py --minimum-lines 90 # exit 1 below this share of Sources/GLaM

Ends with "N passed, N failed" over its checks (line floor, public functions called).
"""
import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FLAGS = ["-c", "release", "-Xswiftc", "-target-cpu", "-Xswiftc", "native", "-Xswiftc", "-DGLAM_FMA"]
SCRATCH = ".build-coverage"


def coverage_json(run):
    command = ["swift", "test"] + FLAGS + ["--enable-code-coverage", "--scratch-path", SCRATCH]
    if run:
        result = subprocess.run(command, cwd=ROOT)
        if result.returncode != 0:
            sys.exit("coverage: the tests failed")
    path = subprocess.run(command + ["--show-codecov-path"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    return json.load(open(path))["data"][0]


def public_symbols(graph_dir):
    """(mangled-name candidates, title) for every public function, initializer, method and property of GLaM."""
    symbols = []
    for path in glob.glob(os.path.join(graph_dir, "GLaM*.symbols.json")):
        graph = json.load(open(path))
        for symbol in graph["symbols"]:
            if symbol.get("accessLevel") != "public":
                continue
            kind = symbol["kind"]["identifier"]
            usr = symbol["identifier"]["precise"]
            if not usr.startswith("s:"):
                continue
            body = usr[2:]
            title = " ".join(symbol["pathComponents"])
            if kind in ("swift.func", "swift.method", "swift.init", "swift.type.method", "swift.func.op", "swift.subscript"):
                symbols.append(({"$s" + body}, title))
            elif kind in ("swift.property", "swift.type.property", "swift.var"):
                if body.endswith("vp") or body.endswith("Zvp"):
                    stem = body[:-2]
                    symbols.append(({"$s" + stem + "vg", "$s" + stem + "vM", "$s" + stem + "vpfi", "$s" + stem + "vau",
                                     "$s" + stem + "vr", "$s" + stem + "vs"}, title))
    return symbols


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="report the last run's profile")
    parser.add_argument("--minimum-lines", type=float, default=None, help="fail below this line coverage of Sources/GLaM (percent)")
    parser.add_argument("--symbol-graphs", default=os.path.join(ROOT, ".build-docs", "symbol-graphs"))
    parser.add_argument("--json", help="write the per-folder figures here")
    args = parser.parse_args()
    data = coverage_json(not args.no_run)

    folders = {}
    for entry in data["files"]:
        name = os.path.relpath(entry["filename"], ROOT)
        if not (name.startswith("Sources/GLaM/") or name.startswith("Sources/GLaMCLI/")):
            continue
        folder = os.path.dirname(name)
        total = folders.setdefault(folder, {k: [0, 0] for k in ("lines", "regions", "functions", "branches")})
        for key in total:
            summary = entry["summary"].get(key, {"count": 0, "covered": 0})
            total[key][0] += summary["covered"]
            total[key][1] += summary["count"]

    def share(pair):
        return f"{100 * pair[0] / pair[1]:.1f}% ({pair[0]}/{pair[1]})" if pair[1] else "–"

    print("| folder | lines | regions | functions |")
    print("|---|---|---|---|")
    groups = {"Sources/GLaM": {k: [0, 0] for k in ("lines", "regions", "functions", "branches")},
              "Sources/GLaMCLI": {k: [0, 0] for k in ("lines", "regions", "functions", "branches")}}
    for folder in sorted(folders):
        figures = folders[folder]
        group = groups["Sources/GLaMCLI" if folder.startswith("Sources/GLaMCLI") else "Sources/GLaM"]
        for key in group:
            group[key][0] += figures[key][0]
            group[key][1] += figures[key][1]
        print(f"| {folder} | {share(figures['lines'])} | {share(figures['regions'])} | {share(figures['functions'])} |")
    for name, figures in groups.items():
        print(f"| **{name}** | {share(figures['lines'])} | {share(figures['regions'])} | {share(figures['functions'])} |")
    branches = sum(g["branches"][1] for g in groups.values())
    if branches == 0:
        print("\nBranches: the Swift compiler emits no branch regions, so llvm-cov counts none; "
              "regions (every block and sub-expression with its own counter) stand in for them.")
    else:
        for name, figures in groups.items():
            print(f"branches of {name}: {share(figures['branches'])}")

    passed = failed = 0
    called = {f["name"] for f in data["functions"] if f["count"] > 0}
    known = {f["name"] for f in data["functions"]}
    if os.path.isdir(args.symbol_graphs):
        symbols = public_symbols(args.symbol_graphs)
        matched = [(names, title) for names, title in symbols if names & known]
        uncalled = sorted({title for names, title in matched if not names & called})
        print(f"\nPublic declarations of GLaM: {len(symbols)}; matched to profiled functions: {len(matched)} "
              f"(the rest are inlined, generic or stored); called by no test: {len(uncalled)}")
        for title in uncalled:
            print(f"  - {title}")
        if uncalled:
            failed += 1
        else:
            passed += 1
    else:
        print(f"\n(no symbol graphs at {args.symbol_graphs}: run Scripts/docs/build.sh first for the public-API check)")
    line_share = 100 * groups["Sources/GLaM"]["lines"][0] / max(groups["Sources/GLaM"]["lines"][1], 1)
    if args.minimum_lines is not None:
        if line_share >= args.minimum_lines:
            passed += 1
        else:
            failed += 1
            print(f"line coverage of Sources/GLaM {line_share:.1f}% is below the floor {args.minimum_lines}%")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"folders": folders, "groups": groups}, handle, indent=1)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
