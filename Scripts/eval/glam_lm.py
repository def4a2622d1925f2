#!/usr/bin/env python3
"""EleutherAI's lm-eval on a glam checkpoint: an `LM` whose requests `glam eval --requests` answers.

    python3 -m pip install -r Scripts/eval/requirements.txt      # lm-eval, pinned; no PyTorch
    python3 Scripts/eval/glam_lm.py --glam .build/release/glam --checkpoint run/checkpoint.safetensors \\
        --tasks Fixtures/tasks --shots 0,1 [--limit N] [--seed 1234] [--output FILE] [--check GLAM_JSON]

Each task directory laid out as Fixtures/tasks (NAME/test.jsonl, NAME/train.jsonl, tasks.json; the
format: Fixtures/tasks/SOURCE.md) becomes an lm-eval task over local JSON files:

- multiple choice (`choices`, `gold`): lm-eval's `multiple_choice` output type, metrics acc and
  acc_norm (log-likelihood per character), each choice appended to the context as it is
  (target delimiter "");
- generation (`target`, `until`): `generate_until`, greedy, the task's stop strings, at most
  --max-tokens tokens, metric exact_match.

k-shot prompts: lm-eval joins k demonstrations (context + right answer) and the example's context
with the task's few-shot separator, as `glam eval` does. Which train examples it draws is the
sampler's choice; `GlamSampler` draws the ones `glam eval` draws (a partial Fisher–Yates shuffle
of the train split by SplitMix64 seeded with seed + index · 0x9E3779B97F4A7C15, never an example
with the test example's id), written here again from the rule, so that the two programs score
the same prompts. lm-eval builds the prompts of a task's examples in order, one at a time, as its
own sampler (one random stream over the examples) also requires; GlamSampler counts them.

The model: `GlamLM` writes each batch of requests to a file and runs `glam eval --requests` on it
(one process per request type; the model loads once per call).

--check GLAM_JSON compares the results with `glam eval --json` output for the same checkpoint,
tasks, shots, seed and limit: every accuracy and standard error must agree (to 1e-9), and so must
each example's right-or-wrong (acc, acc_norm, exact_match), else exit 1.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.api.samplers import ContextSampler

MASK = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def splitmix64(state):
    """The SplitMix64 stream from `state`: each value is mix(state += γ)."""
    while True:
        state = (state + GOLDEN_GAMMA) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def demonstrations(train_ids, test_id, index, shots, seed):
    """Indices into the train split of test example `index`'s demonstrations, in prompt order."""
    pool = [i for i, train_id in enumerate(train_ids) if train_id != test_id]
    if len(pool) < shots:
        raise ValueError(f"{shots}-shot prompts need {shots} train examples, the pool has {len(pool)}")
    stream = splitmix64((seed + index * GOLDEN_GAMMA) & MASK)
    for k in range(shots):
        j = k + next(stream) % (len(pool) - k)
        pool[k], pool[j] = pool[j], pool[k]
    return pool[:shots]


def glam_sampler(test_ids, seed):
    """A ContextSampler class drawing `glam eval`'s demonstrations for a task with these test ids."""

    class GlamSampler(ContextSampler):
        def __init__(self, df=None, *, rnd=None, **kwargs):
            super().__init__(df, rnd=rnd, **kwargs)
            self.calls = 0

        def set_rnd(self, rnd):
            # lm-eval seeds its sampler before building a task's prompts: start counting again.
            self.calls = 0
            return super().set_rnd(rnd)

        def sample(self, n, eval_doc=None, df=None, **kwargs):
            if df:
                self.df = df
            index = self.calls
            self.calls += 1
            if index >= len(test_ids):
                raise RuntimeError("GlamSampler: more prompts than test examples (were they built out of order?)")
            if eval_doc is not None and eval_doc.get("id") != test_ids[index]:
                raise RuntimeError(f"GlamSampler: prompt {index} is for {eval_doc.get('id')}, expected {test_ids[index]}")
            docs = self.fewshot_docs()
            chosen = demonstrations([d["id"] for d in docs], test_ids[index], index, n, seed)
            return [docs[i] for i in chosen]

    return GlamSampler


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def task_configs(directory, seed, max_tokens):
    """lm-eval task configurations (dicts) for every task of `directory`, as `glam eval` finds them."""
    directory = os.path.abspath(directory)
    index = os.path.join(directory, "tasks.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            entries = json.load(f)["tasks"]
        tasks = [(e["name"], e.get("fewshot_separator", "\n\n")) for e in entries]
    else:
        names = sorted(n for n in os.listdir(directory) if os.path.exists(os.path.join(directory, n, "test.jsonl")))
        tasks = [(n, "\n\n") for n in names]
    configs = []
    for name, separator in tasks:
        files = {"test": os.path.join(directory, name, "test.jsonl")}
        train = os.path.join(directory, name, "train.jsonl")
        if os.path.exists(train):
            files["train"] = train
        test = read_jsonl(files["test"])
        config = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": files},
            "test_split": "test",
            "doc_to_text": lambda doc: doc["context"],
            "target_delimiter": "",
            "fewshot_delimiter": separator,
        }
        if "train" in files:
            config["fewshot_split"] = "train"
            config["fewshot_config"] = {"sampler": glam_sampler([d["id"] for d in test], seed)}
        if "choices" in test[0]:
            config.update({
                "output_type": "multiple_choice",
                "doc_to_choice": lambda doc: doc["choices"],
                "doc_to_target": lambda doc: doc["gold"],
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
                ],
            })
        else:
            stops = {json.dumps(d.get("until") or []) for d in test}
            if len(stops) != 1:
                raise SystemExit(f"glam_lm: task {name}: lm-eval takes one list of stop strings per task, the examples have {len(stops)}")
            config.update({
                "output_type": "generate_until",
                "doc_to_target": lambda doc: doc["target"],
                "generation_kwargs": {"until": json.loads(stops.pop()), "max_gen_toks": max_tokens, "do_sample": False},
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
            })
        configs.append(config)
    return configs


@register_model("glam")
class GlamLM(LM):
    """A glam checkpoint behind lm-eval's LM interface, answered by `glam eval --requests`."""

    def __init__(self, glam=".build/release/glam", checkpoint=None, batch_size=8, max_length=1024, **kwargs):
        super().__init__()
        if checkpoint is None:
            raise ValueError("GlamLM needs checkpoint=FILE")
        self.glam, self.checkpoint = glam, checkpoint
        self.batch, self.max_length = int(batch_size), int(max_length)
        self.requests_sent = 0

    def _answer(self, requests):
        if not requests:
            return []
        with tempfile.TemporaryDirectory(prefix="glam-lm-") as scratch:
            path, out = os.path.join(scratch, "requests.jsonl"), os.path.join(scratch, "answers.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                for request in requests:
                    f.write(json.dumps(request, ensure_ascii=False) + "\n")
            command = [self.glam, "eval", "--checkpoint", self.checkpoint, "--requests", path, "--output", out,
                       "--batch", str(self.batch), "--max-length", str(self.max_length)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"glam eval --requests exited {done.returncode}: {done.stderr.strip()}")
            answers = read_jsonl(out)
        if len(answers) != len(requests):
            raise RuntimeError(f"glam eval answered {len(answers)} of {len(requests)} requests")
        self.requests_sent += len(requests)
        return answers

    def loglikelihood(self, requests, disable_tqdm=False):
        answers = self._answer([
            {"request": "loglikelihood", "context": r.args[0], "continuation": r.args[1]} for r in requests])
        return [(a["loglikelihood"], a["is_greedy"]) for a in answers]

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        answers = self._answer([{"request": "loglikelihood_rolling", "text": r.args[0]} for r in requests])
        return [a["loglikelihood"] for a in answers]

    def generate_until(self, requests, disable_tqdm=False):
        batch = []
        for r in requests:
            context, options = r.args[0], dict(r.args[1])
            if options.get("do_sample") or options.get("temperature", 0) not in (0, 0.0):
                raise ValueError("GlamLM decodes greedily only (do_sample=False, temperature=0)")
            until = options.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            batch.append({"request": "generate_until", "context": context, "until": until,
                          "max_tokens": int(options.get("max_gen_toks", 256))})
        return [a["text"] for a in self._answer(batch)]


def results_by_task(results, shots):
    """{(task, shots): {metric: value}} from lm-eval's results dict of one num_fewshot run, with
    per example (by doc_id) whether it was right: "correct" (acc or exact_match), "correct_norm"."""
    rows = {}
    for task, values in results["results"].items():
        row = {}
        for key, value in values.items():
            metric, _, flt = key.partition(",")
            if flt in ("none", "") and isinstance(value, (int, float)):
                row[metric] = float(value)
        samples = sorted(results.get("samples", {}).get(task, []), key=lambda sample: sample["doc_id"])
        if samples:
            first = "acc" if "acc" in samples[0] else "exact_match"
            row["correct"] = [bool(sample[first]) for sample in samples]
            if "acc_norm" in samples[0]:
                row["correct_norm"] = [bool(sample["acc_norm"]) for sample in samples]
        rows[(task, shots)] = row
    return rows


def check_against(glam_json, rows):
    """Every accuracy and standard error of `glam eval --json` against lm-eval's, to 1e-9."""
    with open(glam_json, encoding="utf-8") as f:
        glam = json.load(f)
    names = {"acc": ("acc", "exact_match"), "acc_stderr": ("acc_stderr", "exact_match_stderr"),
             "acc_norm": ("acc_norm",), "acc_norm_stderr": ("acc_norm_stderr",),
             "correct": ("correct",), "correct_norm": ("correct_norm",)}
    problems, compared = [], 0
    for entry in glam["results"]:
        key = (entry["task"], entry["shots"])
        if key not in rows:
            problems.append(f"{key[0]} {key[1]}-shot: lm-eval has no result")
            continue
        for field, candidates in names.items():
            if field not in entry:
                continue
            theirs = next((rows[key][c] for c in candidates if c in rows[key]), None)
            compared += 1
            if isinstance(entry[field], list):
                if theirs != entry[field]:
                    wrong = [i for i, (a, b) in enumerate(zip(entry[field], theirs or [])) if a != b]
                    problems.append(f"{key[0]} {key[1]}-shot {field}: examples {wrong[:8]} (of {len(entry[field])}) differ")
            elif theirs is None or abs(theirs - entry[field]) > 1e-9:
                problems.append(f"{key[0]} {key[1]}-shot {field}: glam eval {entry[field]}, lm-eval {theirs}")
    return problems, compared


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glam", default=".build/release/glam")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tasks", default="Fixtures/tasks")
    parser.add_argument("--task", help="comma-separated task names (default: all)")
    parser.add_argument("--shots", default="0,1")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--check", help="a `glam eval --json` output to agree with")
    args = parser.parse_args()

    def chosen_configs():
        configs = task_configs(args.tasks, args.seed, args.max_tokens)
        if not args.task:
            return configs
        wanted = args.task.split(",")
        unknown = [w for w in wanted if w not in {c["task"] for c in configs}]
        if unknown:
            raise SystemExit(f"glam_lm: no task {unknown[0]} in {args.tasks}")
        return [c for c in configs if c["task"] in wanted]

    model = GlamLM(glam=args.glam, checkpoint=args.checkpoint, batch_size=args.batch, max_length=args.max_length)
    rows = {}
    for shots in [int(k) for k in args.shots.split(",")]:
        # bootstrap_iters=1: the metrics are means, whose standard error lm-eval computes in closed form.
        results = simple_evaluate(model=model, tasks=chosen_configs(), num_fewshot=shots, limit=args.limit,
                                  fewshot_random_seed=args.seed, bootstrap_iters=1, log_samples=True,
                                  random_seed=0, numpy_random_seed=0, torch_random_seed=0)
        rows.update(results_by_task(results, shots))
    print(f"lm-eval on {args.checkpoint}, seed {args.seed}, {model.requests_sent} requests answered by glam eval:")
    for (task, shots), row in sorted(rows.items()):
        shown = "  ".join(f"{m} {v:.4f}" for m, v in sorted(row.items()) if not isinstance(v, list))
        print(f"  {task:20} {shots}-shot  {shown}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump([{"task": t, "shots": k, **row} for (t, k), row in sorted(rows.items())], f, indent=1)
    if args.check:
        problems, compared = check_against(args.check, rows)
        for problem in problems:
            print("  DIFFERS: " + problem)
        if problems or compared == 0:
            print(f"lm-eval and glam eval disagree ({len(problems)} of {compared} values)")
            return 1
        print(f"lm-eval and glam eval agree on all {compared} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
