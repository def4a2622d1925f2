#!/usr/bin/env python3
"""Rebuilds Fixtures/corpus/kjv-bible.txt from Debian's packages (see SOURCE.md).

Debian's `bible-kjv-text` 4.38 holds the King James Version (1611, public domain) in the compressed
format of the `bible` program (package `bible-kjv`, the Bible Retrieval System); `bible` prints it.
Each chapter becomes one paragraph: its heading ("Genesis 1"), then one line per verse without the
verse number; chapters are separated by a blank line (glam's documents are paragraphs, so every
20th chapter is held out for validation).

    apt-get install bible-kjv      # brings bible-kjv-text
    python3 Fixtures/corpus/make_kjv.py && sha256sum -c Fixtures/corpus/kjv-bible.txt.sha256
"""
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    raw = subprocess.run(["bible", "-l", "100000", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    chapters, current = [], None
    for line in raw.split("\n"):
        if not line.strip():
            continue
        verse = re.match(r"^\s+\d+ (.*)$", line)
        if verse:
            current.append(verse.group(1).strip())
        else:
            current = [line.strip()]
            chapters.append(current)
    assert len(chapters) == 1189 and sum(len(c) - 1 for c in chapters) == 31102, "unexpected verse count"
    with open(os.path.join(HERE, "kjv-bible.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join("\n".join(chapter) for chapter in chapters) + "\n")


if __name__ == "__main__":
    main()
