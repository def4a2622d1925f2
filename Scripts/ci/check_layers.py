#!/usr/bin/env python3
"""Checks that the library's folders depend on each other one way, as their READMEs say.

Each folder of Sources/GLaM has a README.md whose line `May use: A, B, …` (or `May use: nothing`)
names the folders its code may refer to. This script finds, for every Swift file, the names it uses
that another folder declares (types, typealiases, protocols, and free functions called as
`name(`), and fails on any use the folder's README does not allow, naming file, line and symbol.
It also fails when the allowed uses form a cycle, so that the folders can be drawn as a graph with
no arrow pointing up. Comments and string literals are not code and are skipped.

    python3 Scripts/ci/check_layers.py          # exit 0: every use allowed; exit 1: each bad use listed
    python3 Scripts/ci/check_layers.py --graph  # the allowed and the actual uses, folder by folder
"""
import argparse
import collections
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIBRARY = os.path.join(ROOT, "Sources", "GLaM")

TYPE = re.compile(r"^\s*(?:(?:public|package|internal|fileprivate|private|final|indirect|@\w+(?:\([^)]*\))?)\s+)*"
                  r"(?:struct|enum|class|protocol|typealias|actor)\s+([A-Za-z_]\w*)")
FREE_FUNCTION = re.compile(r"^(?:(?:public|package|internal|fileprivate|private|@\w+(?:\([^)]*\))?)\s+)*func\s+([A-Za-z_]\w*)")
MAY_USE = re.compile(r"^May use:\s*(.*?)\.?\s*$", re.M)


def code_only(text):
    """The text with comments and string literals blanked (line breaks kept, so lines still count)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            j = n if j < 0 else j + 3
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text[i] == '"':
            j = i + 1
            depth = 0
            while j < n and text[j] != "\n":
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "(":
                    depth += 1
                    j += 2
                    continue
                if depth and text[j] == ")":
                    depth -= 1
                elif text[j] == "\\":
                    j += 1
                elif text[j] == '"' and not depth:
                    break
                j += 1
            out.append(" " * (j + 1 - i))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def folders():
    return sorted(d for d in os.listdir(LIBRARY) if os.path.isdir(os.path.join(LIBRARY, d)) and not d.endswith(".docc"))


def swift_files(folder):
    base = os.path.join(LIBRARY, folder)
    return sorted(os.path.join(base, f) for f in os.listdir(base) if f.endswith(".swift"))


def allowed_uses(problems):
    allowed = {}
    for folder in folders():
        readme = os.path.join(LIBRARY, folder, "README.md")
        if not os.path.exists(readme):
            problems.append(f"Sources/GLaM/{folder}: no README.md saying what the folder may use")
            allowed[folder] = set()
            continue
        match = MAY_USE.search(open(readme, encoding="utf-8").read())
        if not match:
            problems.append(f"Sources/GLaM/{folder}/README.md: no line 'May use: …'")
            allowed[folder] = set()
            continue
        names = {name.strip() for name in match.group(1).split(",") if name.strip()}
        names.discard("nothing")
        for name in sorted(names - set(folders())):
            problems.append(f"Sources/GLaM/{folder}/README.md: 'May use' names {name!r}, which is not a folder")
        allowed[folder] = names & set(folders())
    return allowed


def declarations():
    """Each name declared at file level (types anywhere, functions at column 0) → its folder."""
    owner, clashes = {}, set()
    for folder in folders():
        for path in swift_files(folder):
            for line in code_only(open(path, encoding="utf-8").read()).splitlines():
                for pattern in (TYPE, FREE_FUNCTION):
                    match = pattern.match(line)
                    if match and (pattern is TYPE or not line[:1].isspace()):
                        name = match.group(1)
                        if owner.get(name, folder) != folder:
                            clashes.add(name)
                        owner[name] = folder
    return owner, clashes


def uses(owner, clashes):
    """(folder, file, line, name, owning folder) for every use of another folder's name."""
    found = []
    functions = set()
    for folder in folders():
        for path in swift_files(folder):
            for line in code_only(open(path, encoding="utf-8").read()).splitlines():
                match = FREE_FUNCTION.match(line)
                if match and not line[:1].isspace():
                    functions.add(match.group(1))
    for folder in folders():
        for path in swift_files(folder):
            for number, line in enumerate(code_only(open(path, encoding="utf-8").read()).splitlines(), 1):
                for match in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)", line):
                    name = match.group(1)
                    home = owner.get(name)
                    if home is None or home == folder or name in clashes:
                        continue
                    if name in functions and not re.match(r"\s*[(<]", line[match.end():]):
                        continue  # a free function's name used as something else (a label, a member)
                    found.append((folder, os.path.relpath(path, ROOT), number, name, home))
    return found


def cycle(allowed):
    state = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(allowed.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if state.get(nxt) is None:
                found = visit(nxt, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(allowed):
        if state.get(node) is None:
            found = visit(node, [])
            if found:
                return found[found.index(found[-1]):]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graph", action="store_true", help="print the allowed and actual uses")
    args = parser.parse_args()
    problems = []
    allowed = allowed_uses(problems)
    owner, clashes = declarations()
    found = uses(owner, clashes)
    if args.graph:
        actual = collections.defaultdict(set)
        for folder, _, _, _, home in found:
            actual[folder].add(home)
        for folder in folders():
            print(f"{folder:13} may use {', '.join(sorted(allowed[folder])) or 'nothing'}; "
                  f"uses {', '.join(sorted(actual[folder])) or 'nothing'}")
    loop = cycle(allowed)
    if loop:
        problems.append("the allowed uses form a cycle: " + " → ".join(loop))
    for folder, path, number, name, home in found:
        if home not in allowed[folder]:
            problems.append(f"{path}:{number}: {folder} uses {name} from {home}, which its README.md does not allow")
    for problem in problems:
        print(problem)
    print(f"check_layers: {len(folders())} folders, {len(found)} uses across folders, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
