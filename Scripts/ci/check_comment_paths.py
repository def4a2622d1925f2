#!/usr/bin/env python3
"""Checks that every file a comment or document names exists.

Comments drift: a file is renamed or split, and the comments that send a reader to it keep the old
name. This script reads the comments of every tracked Swift and Python file and the text of every
tracked Markdown file, finds each name that looks like a file of this repository (a path with a
directory, such as `Sources/GLaM/MoE/MoELayer.swift`, or a bare file name with one of the
Swift or Python file name, such as `MoELayer.swift`), and fails on any that no tracked file
matches: a path that starts with one of the repository's top-level folders must exist as written
(from the root, or from the folder of the file that names it), one that starts with another of its
folders (`MoE/MoELayer.swift`) must end some tracked path; a bare Swift or Python name must be
the name of some tracked file. Other names (the files a command writes, a user's files, files of
other projects such as praxis' `glam.py`, listed below) are not the repository's and are not checked.

    python3 Scripts/ci/check_comment_paths.py     # exit 0: every named file exists; 1: each dangling name listed
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXTENSIONS = ("swift", "py", "md", "sh", "json", "jsonl", "safetensors", "txt", "svg", "html")
NAME = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.(?:" + "|".join(EXTENSIONS) + r"))(?![\w/])")
# Swift and Python file names that are not this repository's: files of other projects (praxis'
# GLaM configuration `glam.py`), what a user writes (`script.py`), and what scripts generate into a
# scratch copy or a dependent package (`MutantSwitch.swift`, `main.swift`, `Package.swift`).
EXTERNAL = {"glam.py", "script.py", "MutantSwitch.swift", "main.swift", "Package.swift"}


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def comments(path, text):
    """(line number, comment text) of a Swift or Python file; every line of anything else."""
    if path.endswith(".swift"):
        for number, line in enumerate(text.splitlines(), 1):
            index = line.find("//")
            if index >= 0:
                yield number, line[index:]
    elif path.endswith(".py"):
        in_docstring = False
        for number, line in enumerate(text.splitlines(), 1):
            quotes = line.count('"""')
            if in_docstring or quotes:
                yield number, line
            elif "#" in line:
                yield number, line[line.index("#"):]
            if quotes % 2 == 1:
                in_docstring = not in_docstring
    else:
        yield from enumerate(text.splitlines(), 1)


def main():
    files = tracked()
    present = set(files)
    names = {os.path.basename(f) for f in files}
    directories = {os.path.dirname(f) for f in files}
    top = {f.split("/")[0] for f in files if "/" in f}
    folders = {os.path.basename(d) for d in directories if d}
    problems = []
    checked = 0
    for path in files:
        if not path.endswith((".swift", ".py", ".md", ".sh")):
            continue
        try:
            text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in comments(path, text):
            line = re.sub(r"https?://\S+", "", line)
            for match in NAME.finditer(line):
                name = match.group(1).rstrip(".")
                base = os.path.basename(name)
                if "/" in name:
                    first = name.split("/")[0]
                    if first not in top and (first not in folders or not base.endswith((".swift", ".py"))):
                        continue  # a path outside the repository (a user's, a run directory, /usr/share/…)
                    checked += 1
                    relative = os.path.normpath(os.path.join(os.path.dirname(path), name))
                    if name in present or relative in present or name.rstrip("/") in directories:
                        continue
                    if first not in top and any(f.endswith("/" + name) for f in files):
                        continue  # a path within a folder, such as MoE/MoELayer.swift
                elif base.endswith((".swift", ".py")) and base not in EXTERNAL:
                    checked += 1
                    if base in names:
                        continue
                else:
                    continue
                problems.append(f"{path}:{number}: names {name}, which is not a file of the repository")
    for problem in problems:
        print(problem)
    print(f"check_comment_paths: {checked} file names in comments and documents, {len(problems)} dangling")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
