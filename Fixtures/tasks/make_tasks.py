#!/usr/bin/env python3
"""Builds the in-context evaluation tasks in Fixtures/tasks/ from the King James Version in
Fixtures/corpus/kjv-bible.txt (public domain; see Fixtures/corpus/SOURCE.md and SOURCE.md here).

Test examples come only from the chapters glam holds out for validation (glam's documents are the
corpus's paragraphs, one per chapter, and every 20th, index 19, 39, ..., is held out), so a model
trained on the corpus with `glam train` or `glam compare` has never seen them; the train split, from
which k-shot examples are drawn, comes from the other chapters. Everything is drawn from a fixed
seed: running this again rewrites the same bytes.

Three tasks, after the three forms GPT-3 and GLaM evaluate:
  kjv_last_word     (LAMBADA-style, generate): the last word of a verse, which also occurs earlier
                    in its context (the verse before and the verse itself), so that it can be read
                    from the context; scored by greedy generation and exact match, and by the
                    likelihood of the word.
  kjv_continuation  (HellaSwag-style, 4 choices): a verse cut after its first clause; the true rest
                    against the rests of three other verses of about the same length.
  kjv_next_verse    (StoryCloze-style, 4 choices): two consecutive verses; the verse that follows
                    against three verses of other chapters.

Format (SOURCE.md here): one JSON object per line,
  multiple choice: {"id", "context", "choices": [...], "gold": index}
  generate:        {"id", "context", "target", "until": [...]}
and tasks.json lists the tasks with their kind and few-shot separator.

    python3 Fixtures/tasks/make_tasks.py            # rewrites Fixtures/tasks/
    python3 Fixtures/tasks/make_tasks.py --check    # exit 1 if the committed files differ
"""
import argparse
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus", "kjv-bible.txt")
SEED = 20261203
TEST_SIZE = 500
TRAIN_SIZE = 200
# Generation stops at the end of the word: every verse of the KJV text ends with punctuation.
UNTIL = ["\n", ".", ",", ";", ":", "?", "!"]


def documents(text):
    """glam's documents (TextDataset.documents): paragraphs separated by whitespace-only lines."""
    docs, current = [], []
    for line in text.split("\n"):
        if line.strip() == "":
            if current:
                docs.append(current)
            current = []
        else:
            current.append(line)
    if current:
        docs.append(current)
    return docs


def chapters(held_out):
    """(chapter name, verses) of the held-out chapters, or of the others."""
    with open(CORPUS, encoding="utf-8") as f:
        docs = documents(f.read())
    return [(doc[0], doc[1:]) for index, doc in enumerate(docs) if (index % 20 == 19) == held_out]


def last_word_examples(split):
    examples = []
    for name, verses in split:
        for i in range(1, len(verses)):
            match = re.fullmatch(r"(.*\S) ([A-Za-z]{3,})([.,;:?!]+)", verses[i])
            if not match or len(verses[i].split()) < 8:
                continue
            before, word = match.group(1), match.group(2)
            context = verses[i - 1] + "\n" + before
            if not re.search(r"\b" + re.escape(word) + r"\b", context):
                continue  # LAMBADA's rule: the word can be read from the context
            examples.append({"source": f"{name}:{i + 1}", "context": context, "target": " " + word, "until": UNTIL})
    return examples


def continuation_candidates(split):
    found = []
    for name, verses in split:
        for i in range(1, len(verses)):
            words = verses[i].split(" ")
            if len(words) < 12:
                continue
            # Cut after the first clause that leaves at least four words on each side.
            cut = next((k for k in range(4, len(words) - 4) if words[k - 1][-1] in ",;:"), None)
            if cut is None:
                continue
            found.append({
                "source": f"{name}:{i + 1}", "chapter": name, "context": verses[i - 1] + "\n" + " ".join(words[:cut]),
                "ending": " " + " ".join(words[cut:]), "length": len(words) - cut,
            })
    return found


def continuation_examples(split, rng, size):
    candidates = continuation_candidates(split)
    by_length = {}
    for candidate in candidates:
        by_length.setdefault(candidate["length"], []).append(candidate)
    examples = []
    for item in rng.sample(candidates, len(candidates)):
        if len(examples) == size:
            break
        # Distractors: rests of verses of other chapters, within a third of the true rest's length.
        spread = max(2, item["length"] // 3)
        close = [other for length in range(item["length"] - spread, item["length"] + spread + 1)
                 for other in by_length.get(length, []) if other["chapter"] != item["chapter"]]
        if len(close) < 3:
            continue
        endings = [item["ending"]] + [other["ending"] for other in rng.sample(close, 3)]
        order = list(range(4))
        rng.shuffle(order)
        examples.append({"source": item["source"], "context": item["context"],
                         "choices": [endings[k] for k in order], "gold": order.index(0)})
    return examples


def next_verse_examples(split, rng, size):
    pool = [(name, verse) for name, verses in split for verse in verses]
    places = [(name, verses, i) for name, verses in split for i in range(len(verses) - 2)]
    examples = []
    for name, verses, i in rng.sample(places, min(len(places), size)):
        # Three verses of other chapters (12 draws leave at least three outside any one chapter).
        others = [verse for other, verse in rng.sample(pool, 12) if other != name][:3]
        endings = [verses[i + 2]] + others
        order = list(range(4))
        rng.shuffle(order)
        examples.append({"source": f"{name}:{i + 3}", "context": verses[i] + "\n" + verses[i + 1] + "\n",
                         "choices": [endings[k] for k in order], "gold": order.index(0)})
    return examples


TASKS = [
    ("kjv_last_word", "generate", "the last word of a held-out verse, which occurs earlier in its context (LAMBADA-style)"),
    ("kjv_continuation", "multiple_choice", "the true rest of a verse cut after its first clause, among 4 (HellaSwag-style)"),
    ("kjv_next_verse", "multiple_choice", "the verse that follows two consecutive verses, among 4 (StoryCloze-style)"),
]


def build():
    """Every file of Fixtures/tasks/ this script writes: relative path -> text."""
    files = {}
    index = []
    for number, (name, kind, description) in enumerate(TASKS):
        splits = {}
        for split_name, held_out, size in [("test", True, TEST_SIZE), ("train", False, TRAIN_SIZE)]:
            rng = random.Random(f"{SEED}/{name}/{split_name}")
            split = chapters(held_out)
            if name == "kjv_last_word":
                examples = last_word_examples(split)
            elif name == "kjv_continuation":
                examples = continuation_examples(split, rng, size)
            else:
                examples = next_verse_examples(split, rng, size)
            examples = rng.sample(examples, min(size, len(examples)))
            examples.sort(key=lambda e: e["source"])
            lines = []
            for k, example in enumerate(examples):
                record = {"id": f"{name}/{split_name}/{k}"}
                record.update(example)
                lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
            files[f"{name}/{split_name}.jsonl"] = "\n".join(lines) + "\n"
            splits[split_name] = len(examples)
        index.append({"name": name, "kind": kind, "description": description, "fewshot_separator": "\n\n",
                      "target_delimiter": "", "examples": splits,
                      "source": "King James Version (1611), public domain: Fixtures/corpus/kjv-bible.txt"})
    files["tasks.json"] = json.dumps({"seed": SEED, "tasks": index}, indent=2, ensure_ascii=False) + "\n"
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args()
    files = build()
    different = []
    for path, text in sorted(files.items()):
        full = os.path.join(HERE, path)
        if args.check:
            try:
                with open(full, encoding="utf-8") as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                different.append(path)
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(text)
    if args.check:
        print(f"make_tasks --check: {len(files)} files, {len(different)} differ" + (f": {', '.join(different)}" if different else ""))
        return 1 if different else 0
    for task in json.loads(files["tasks.json"])["tasks"]:
        print(f"{task['name']}: {task['examples']['test']} test, {task['examples']['train']} train examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
