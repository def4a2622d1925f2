#!/usr/bin/env python3
"""Opens the page of `glam trace --html` in a real headless Chromium and checks it against the same
run's `--json` object and `--dump` tensors.

For each prompt below, one `glam trace` run writes the page, the JSON and the dump. The page is then
driven as a reader would (keys and clicks, through Scripts/trace/browser.py), and at every stage of
every layer, for every token, each number the page shows (each element with `data-field`, its
unrounded value in `data-value`) is compared with an independent source:

  - routing (experts, gates, outcomes, queue places, C, aux shares, router favourites): the `--json`
    object's `moe_layers`;
  - the slot grid (which token holds which slot of which expert): the dump's dispatch tensor;
  - vector norms, router probabilities, each head's strongest keys and the extra logit's mass, the
    next-token predictions: recomputed here from the dump's tensors (and, for the followed token,
    equal to `--json`'s attention and predictions);
  - on a mesh, each expert's cores and the bytes of each all-to-all: the JSON's mesh totals.

A field the checker does not know fails (a new number cannot go unchecked). Keyboard: ← → walk every
stage, ↑ ↓ move the token, Home / End, digits, Tab then Enter on a token. A screenshot of every stage
is written to --screenshots (kept by CI as an artefact). Ends with "N checks passed"; exit 1 on a
failure, naming it.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import Browser  # noqa: E402

# (name, extra glam trace arguments, prompt). The first is the "Follow one token" article's example
# where capacity binds (C = 28, second choices dropped); the second runs on a 2 × 2 mesh with a
# character split into byte tokens; the third traces a `tiny` model trained here for 20 steps on
# the King James text (BPE tokens of several bytes), one layer, from a position inside the prompt.
RUNS = [
    ("capacity", [], "the cat and the dog and the cat and the dog and the cat"),
    ("mesh", ["--mesh", "2x2"], "café au lait"),
    ("trained", ["--checkpoint", "{checkpoint}", "--layer", "2", "--position", "8"],
     "In the beginning God created the heaven and the earth."),
]
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Fixtures", "corpus", "kjv-bible.txt")


class Failure(Exception):
    pass


def read_safetensors(path):
    """{name: (shape, [floats])} of an F32/I32 safetensors file (stdlib only)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = blob[8 + n + start:8 + n + end]
        code = {"F32": "f", "I32": "i"}[entry["dtype"]]
        out[name] = (entry["shape"], list(struct.unpack(f"<{len(raw) // 4}{code}", raw)))
    return out


def f32(x):
    """x rounded to the nearest float32 (the page writes a Float as its shortest decimal)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def row(tensor, index, width):
    return tensor[1][index * width:(index + 1) * width]


def norm(values):
    return math.sqrt(sum(x * x for x in values))


class Checker:
    def __init__(self, name, page, trace, dump, shots):
        self.name, self.page, self.j, self.dump, self.shots = name, page, trace, dump, shots
        self.passed = 0
        self.t = len(trace["tokens"])
        self.m = trace["model"]["model_dim"]

    def expect(self, condition, what):
        if not condition:
            raise Failure(f"{self.name}: {what}")
        self.passed += 1

    def close(self, a, b, what, tolerance=1e-5):
        self.expect(a is not None and b is not None and abs(a - b) <= tolerance * max(1.0, abs(b)), f"{what}: page {a}, expected {b}")

    def tensor(self, name):
        if name not in self.dump:
            raise Failure(f"{self.name}: the dump has no {name}")
        return self.dump[name]

    # What the page must show at each stage, for token p.
    def expected_norm(self, layer, field, p, route):
        if field == "final_norm":
            return norm(row(self.tensor("final_norm"), p, self.m))
        if field.startswith("in.") or field.startswith("out."):
            k = int(field.split(".")[1])
            side = "expert_inputs" if field.startswith("in.") else "expert_outputs"
            e, slot = route["experts"][k], route["queue_positions"][k]
            shape, _ = self.tensor(f"layers.{layer}.moe.{side}")
            g, c = shape[1], shape[2]
            return norm(row(self.tensor(f"layers.{layer}.moe.{side}"), (e * g + route["group"]) * c + slot, self.m))
        return norm(row(self.tensor(f"layers.{layer}.{field}"), p, self.m))

    def strongest(self, layer, p, head):
        shape, values = self.tensor(f"layers.{layer}.attention.probabilities")
        _, n, t, l = shape
        r = values[(head * t + p) * l:(head * t + p + 1) * l]
        order = sorted(range(l), key=lambda s: (-r[s], s))[:3]
        return [(s, r[s]) for s in order if r[s] > 0], max(0.0, 1.0 - sum(r))

    def predictions(self, p):
        shape, values = self.tensor("logits")
        v = shape[2]
        logits = values[p * v:(p + 1) * v]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        total = sum(weights)
        return sorted(((i, w / total) for i, w in enumerate(weights)), key=lambda x: (-x[1], x[0]))[:5]

    def check_fields(self, fields, layer, stage, p):
        moe = {m["layer"]: m for m in self.j["moe_layers"]}
        route = None
        if layer in moe:
            route = next(r for r in moe[layer]["tokens"] if r["position"] == p)
        where = f"layer {layer} stage {stage} token {p}"
        for field, (text, shown) in fields.items():
            value = float(text) if text not in ("", "null") and not text.isalpha() and "_" not in text else text
            if isinstance(value, float) and "." in shown:
                # The text is the value rounded to its decimals.
                decimals = len(shown.split(".")[1])
                self.expect(abs(float(shown) - value) <= 0.51 * 10 ** -decimals, f"{where}: {field} shows {shown} for {value}")
            parts = field.split(".")
            if field.endswith(".norm"):
                self.close(value, self.expected_norm(layer, field[:-5], p, route), f"{where}: {field}")
            elif parts[0] == "router" and len(parts) == 2:
                shape, probabilities = self.tensor(f"layers.{layer}.moe.router_probabilities")
                self.expect(f32(value) == probabilities[p * shape[2] + int(parts[1])], f"{where}: {field} {value}")
            elif parts[0] == "attention":
                head, j = int(parts[1]), (int(parts[3]) if len(parts) > 3 else None)
                keys, extra = self.strongest(layer, p, head)
                if parts[2] == "extra":
                    self.close(value, extra, f"{where}: {field}")
                    if p == self.j["predictions"]["position"]:
                        mine = next(a for a in self.j["attention"] if a["layer"] == layer)["heads"][head]["extra_logit"]
                        self.expect(value == mine, f"{where}: {field} {value} differs from --json {mine}")
                else:
                    self.expect(j < len(keys), f"{where}: {field} shown but the head has {len(keys)} positive keys")
                    expected = keys[j][0] if parts[2] == "key" else keys[j][1]
                    self.expect(value == expected, f"{where}: {field} {value}, expected {expected}")
                    if p == self.j["predictions"]["position"]:
                        mine = next(a for a in self.j["attention"] if a["layer"] == layer)["heads"][head]["keys"][j]
                        self.expect(value == mine["position" if parts[2] == "key" else "probability"], f"{where}: {field} vs --json")
            elif parts[0] == "prediction":
                j = int(parts[1])
                top = self.predictions(p)
                if parts[2] == "id":
                    self.expect(value == top[j][0], f"{where}: {field} {value}, expected {top[j][0]}")
                else:
                    self.close(value, top[j][1], f"{where}: {field}")
                if p == self.j["predictions"]["position"]:
                    mine = self.j["predictions"]["top"][j]
                    self.expect(value == mine["id" if parts[2] == "id" else "probability"], f"{where}: {field} vs --json")
            elif parts[0] in ("expert", "raw_gate", "renormalized_gate", "gate", "outcome", "queue_position"):
                k = int(parts[1])
                key = {"expert": "experts", "raw_gate": "raw_gates", "renormalized_gate": "renormalized_gates",
                       "gate": "gates", "outcome": "outcomes", "queue_position": "queue_positions"}[parts[0]]
                expected = route[key][k]
                if parts[0] == "expert" and route["outcomes"][k] in ("not_chosen", "padding"):
                    expected = ""
                self.expect(value == expected, f"{where}: {field} {value!r}, --json {expected!r}")
            elif parts[0] == "router_top":
                self.expect(value == route["router_top"][int(parts[1])]["probability"], f"{where}: {field}")
            elif field == "aux_loss_share":
                self.expect(value == route["aux_loss_share"], f"{where}: {field}")
            elif field == "aux_loss":
                self.expect(value == moe[layer]["aux_loss"], f"{where}: {field}")
            elif field == "capacity":
                self.expect(value == moe[layer]["capacity"], f"{where}: {field}")
            elif field == "bytes_per_all_to_all":
                mesh = self.j["mesh"]
                count = 2 * len(self.j["model"]["moe_layers"])
                self.expect(mesh["bytes_data"] % count == 0 and value == mesh["bytes_data"] // count, f"{where}: {field}")
            else:
                raise Failure(f"{self.name}: {where}: the page shows a field the checker does not know: {field}")

    def check_slots(self, layer, slots, p):
        """The slot grid equals the dump's dispatch tensor: (expert, slot) → token, every one."""
        shape, dispatch = self.tensor(f"layers.{layer}.moe.dispatch")
        _, s, e, c = shape
        expected = {(x, y): t for t in range(min(s, self.t)) for x in range(e) for y in range(c)
                    if dispatch[((t * e) + x) * c + y] == 1}
        shown = {(int(a["expert"]), int(a["slot"])): int(a["position"]) for a in slots if a.get("position") is not None and a.get("slot") is not None}
        self.expect(shown == expected, f"layer {layer} token {p}: slot grid {sorted(shown.items())[:6]}… differs from the dump's dispatch")
        dropped = {(int(a["position"]), int(a["dropped"])) for a in slots if a.get("dropped") is not None}
        route_drops = {(r["position"], k) for m in self.j["moe_layers"] if m["layer"] == layer
                       for r in m["tokens"] for k in (0, 1) if r["outcomes"][k] == "over_capacity"}
        self.expect(dropped == route_drops, f"layer {layer}: dropped choices shown {sorted(dropped)[:5]}, --json {sorted(route_drops)[:5]}")

    def run(self):
        b = self.page
        steps = b.evaluate("steps.length")
        self.expect(b.console_errors() == [], f"console errors on load: {b.console_errors()}")
        self.expect(b.evaluate("document.body.dataset.token") == str(self.j["predictions"]["position"]), "the page starts at the followed token")
        # Keyboard: End, Home, digits, ↑ ↓, Tab + Enter.
        b.press("End")
        self.expect(b.evaluate("+document.body.dataset.step") == steps - 1, "End goes to the last stage")
        b.press("Home")
        self.expect(b.evaluate("+document.body.dataset.step") == 0, "Home goes to the first stage")
        focus = self.j["predictions"]["position"]
        b.press("ArrowUp")
        self.expect(b.evaluate("+document.body.dataset.token") == max(focus - 1, 0), "↑ selects the token before")
        b.press("ArrowDown")
        self.expect(b.evaluate("+document.body.dataset.token") == min(max(focus - 1, 0) + 1, self.t - 1), "↓ selects the token after")
        shown_layers = [a["layer"] for a in self.j["attention"]]
        if len(shown_layers) > 1:
            b.press("1")
            self.expect(b.evaluate("document.body.dataset.layer") == str(shown_layers[1]), "the digit 1 goes to the second layer")
            b.press("Home")
        b.evaluate("document.activeElement && document.activeElement.blur()")
        b.press("Tab")
        focused = b.evaluate("document.activeElement.dataset.position")
        self.expect(focused is not None, "Tab reaches the token buttons")
        b.press("Enter")
        self.expect(b.evaluate("document.body.dataset.token") == focused, "Enter on a focused token follows it")
        # Every token at every stage, through clicks on the token strip and → through the stages.
        for p in range(self.t):
            b.click(f'#tokens [data-position="{p}"]')
            self.expect(b.evaluate("+document.body.dataset.token") == p, f"clicking token {p} follows it")
            b.press("Home")
            for step in range(steps):
                state = b.evaluate(
                    "({step: +document.body.dataset.step, stage: document.body.dataset.stage, layer: document.body.dataset.layer,"
                    " fields: Object.fromEntries([...document.querySelectorAll('#stage [data-field]')].map(e => [e.dataset.field, [e.dataset.value, e.textContent]])),"
                    " slots: [...document.querySelectorAll('#stage .slot:not(.empty)')].map(e => ({...e.dataset}))})")
                self.expect(state["step"] == step, f"→ reaches step {step}")
                layer = int(state["layer"]) if state["layer"] != "prediction" else None
                self.check_fields(state["fields"], layer, state["stage"], p)
                if state["stage"] == "capacity":
                    self.check_slots(layer, state["slots"], p)
                    # A slot click follows its token.
                    other = next((s for s in state["slots"] if s.get("position") not in (None, str(p))), None)
                    if other and p == 0:
                        b.click(f'#stage .slot[data-position="{other["position"]}"]')
                        self.expect(b.evaluate("document.body.dataset.token") == other["position"], "a slot click follows its token")
                        b.click(f'#tokens [data-position="{p}"]')
                if p == self.t - 1 and self.shots:
                    b.screenshot(os.path.join(self.shots, f"{self.name}-{step + 1:02d}-{state['stage']}-layer-{state['layer']}.png"))
                b.press("ArrowRight")
        self.expect(b.console_errors() == [], f"console errors: {b.console_errors()}")


def docs_images(page, directory):
    """The pictures the README and the DocC catalog show: router and capacity of layer 0, token 13."""
    with Browser(width=1100, height=860) as b:
        b.open("file://" + page)
        b.click('#tokens [data-position="13"]')
        for stage in ("router", "capacity"):
            b.click(f'#stages [data-step="{b.evaluate(f"steps.findIndex(s => s.stage.id === {stage!r})")}"]')
            b.evaluate("window.scrollTo(0, 0)")
            b.screenshot(os.path.join(directory, f"trace-page-{stage}.png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--glam", required=True)
    parser.add_argument("--screenshots", help="write a PNG of every stage here")
    parser.add_argument("--docs-images", help="write the documentation's pictures of the page here "
                        "(trace-page-router.png, trace-page-capacity.png: the capacity run, layer 0, token 13)")
    parser.add_argument("--only", choices=[r[0] for r in RUNS], help="check one of the runs")
    args = parser.parse_args()
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
    total = 0
    with tempfile.TemporaryDirectory(prefix="glam-page-") as scratch:
        for name, extra, prompt in RUNS:
            if args.only and name != args.only:
                continue
            paths = {k: os.path.join(scratch, f"{name}.{k}") for k in ("html", "safetensors")}
            if "{checkpoint}" in extra:
                train = subprocess.run([args.glam, "train", "--config", "tiny", "--steps", "20", "--batch", "4", "--length", "64",
                                        "--corpus", CORPUS, "--output", os.path.join(scratch, "run"), "--evaluate-every", "1000"],
                                       capture_output=True, text=True)
                if train.returncode != 0:
                    sys.exit(f"check_page: glam train failed ({train.returncode}): {train.stderr}")
                extra = [os.path.join(scratch, "run", "checkpoint.safetensors") if a == "{checkpoint}" else a for a in extra]
            run = subprocess.run([args.glam, "trace", "--prompt", prompt, "--json", "--html", paths["html"],
                                  "--dump", paths["safetensors"], *extra], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"check_page: glam trace failed ({run.returncode}): {run.stderr}")
            trace = json.loads(run.stdout)
            dump = read_safetensors(paths["safetensors"])
            with open(paths["html"], encoding="utf-8") as f:
                html = f.read()
            for needle in ("<script src", "<link", "http://", "https://", "@import", "url("):
                if needle in html:
                    sys.exit(f"check_page: {name}: the page refers outside itself ({needle!r})")
            with Browser(width=1280, height=1000) as b:
                b.open("file://" + paths["html"])
                checker = Checker(name, b, trace, dump, args.screenshots)
                try:
                    checker.run()
                    if name == "mesh":
                        texts = b.evaluate("[...document.querySelectorAll('#tokens .tok')].map(e => e.lastChild.textContent)")
                        expected = [t["text"].replace(" ", "␣") for t in trace["tokens"]]
                        checker.expect(texts == expected and "<0xC3>" in texts, f"token strip {texts} vs --json {expected}")
                except Failure as failure:
                    sys.exit(f"check_page: FAILED: {failure}")
                if args.docs_images and name == "capacity":
                    docs_images(paths["html"], args.docs_images)
                print(f"{name}: {checker.passed} checks passed ({checker.t} tokens, {b.evaluate('steps.length')} stages)")
                total += checker.passed
    print(f"check_page: {total} checks passed")


if __name__ == "__main__":
    main()
