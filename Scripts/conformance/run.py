#!/usr/bin/env python3
"""Conformance of real top-2 gating implementations with GLaM's gating, on glam's committed golden
fixtures (every `top2_gating` and `moe_layer` fixture under Fixtures/moe).

Implementations (installed from PyPI, see requirements.txt), through thin adapters (adapters.py):
  - DeepSpeed's `deepspeed.moe.sharded_moe.top2gating`
  - Hugging Face transformers' NLLB-MoE router `NllbMoeTop2Router` (+ its `load_balancing_loss_func`)
  - lucidrains' `mixture-of-experts` `Top2Gating` (a port of Mesh TensorFlow's `_top_2_gating`)

Each runs twice on every gating fixture: **as shipped** (the library's defaults, the fixture's
number of experts) and **aligned** (settings chosen to neutralise every difference that a setting
can neutralise: capacity, second-expert policy, renormalisation where configurable, the logit cap
applied before the call). The moe_layer fixtures run aligned: the layer output, aux loss and the
gradients of Σ(y ⊙ dy) + aux through the implementation's gating (experts computed by the adapter).
Where a difference remains, it is named (DIFFERENCES) and demonstrated: the comparison restricted to
the tokens it cannot touch agrees, or the difference is computed out of the result.

Every comparison has an expectation derived from the documented differences (`expect_*` below),
and a check passes when the outcome equals the expectation. Ends with `N passed, N failed`; exit 1
if any failed. `--markdown FILE` writes the table.

    pip install -r Scripts/conformance/requirements.txt
    python3 Scripts/conformance/run.py [--markdown FILE]
"""
import argparse
import glob
import importlib.metadata
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "Fixtures", "kit"))
sys.path.insert(0, os.path.join(ROOT, "Fixtures", "kit", "examples"))

import logging  # noqa: E402

logging.disable(logging.WARNING)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import adapters  # noqa: E402
import glam_fixtures as gf  # noqa: E402
from pytorch_gating import top2_gating as reference_gating  # noqa: E402  (the kit's example; passes every fixture)

torch.manual_seed(0)

IMPLEMENTATIONS = {
    "deepspeed": ("DeepSpeed `top2gating`", "deepspeed", adapters.deepspeed_top2),
    "nllb": ("transformers NLLB-MoE `NllbMoeTop2Router`", "transformers", adapters.nllb_top2),
    "lucidrains": ("mixture-of-experts `Top2Gating`", "mixture-of-experts", adapters.lucidrains_top2),
}

DIFFERENCES = {
    "capacity": "capacity formula: DeepSpeed ceil(2·cf·S/E) with a floor min_capacity (default 8); NLLB a given "
                "expert_capacity (default 64, or 2·ceil(S/E)); mixture-of-experts min(S, ⌊cf·S/E⌋) with a floor of 4; "
                "GLaM ⌊cf·S/E⌋ rounded up to a multiple of 4 (neutralised: each given GLaM's C)",
    "second": "second expert not always the runner-up by default: DeepSpeed adds Gumbel noise to the logits "
              "(top2_2nd_expert_sampling), mixture-of-experts keeps it with probability g₂/0.2 ('random'); GLaM 'all' "
              "(neutralised)",
    "renormalise_after": "gates renormalised after dropping (DeepSpeed always; NLLB by default): a token that keeps only "
                         "one choice gets weight 1 there, its pre-capacity share under GLaM's legacy_mtf_behavior "
                         "(neutralised for NLLB by normalize_router_prob_before_dropping; shown for DeepSpeed on the "
                         "tokens with 0 or 2 kept choices)",
    "renormalise_before": "gates always renormalised before dropping (Mesh TensorFlow's legacy behaviour): differs from "
                          "legacy_mtf_behavior = false for tokens that keep one choice (shown on the other tokens)",
    "padding": "no padding input: padded tokens are routed, take slots and count in the loss (DeepSpeed)",
    "aux_switch": "aux loss is Switch Transformer's over both choices: E·Σ_e (f¹_e + f²_e)·P_e, with f from top-1 and "
                  "top-2 choices over real tokens; GLaM's is E·Σ_e f¹_e·P_e per group (shown by subtracting "
                  "E·Σ_e f²_e·P_e on unpadded groups)",
    "aux_padding_share": "aux loss without GLaM's non-legacy division by the real-token share d_g² (only matters with "
                         "padding and legacy_mtf_behavior = false)",
    "logit_cap": "no logit cap (neutralised by capping before the call)",
    "ties": "ties between experts are not broken toward the lower index: `torch.topk` (its `top1`) returns another "
            "of the equal values; GLaM, praxis, DeepSpeed and NLLB (`argmax`) take the lowest (shown by replacing `top1` "
            "with a lowest-index argmax)",
    "slots": "returns per-expert weights only, not slots, so combine/dispatch [G, S, E, C] are compared summed over C",
}


class Report:
    def __init__(self):
        self.passed = self.failed = 0
        self.rows = []

    def check(self, ok, expected, text):
        good = ok == expected
        verdict = ("agrees" if ok else "differs") + ("" if good else " (UNEXPECTED)")
        print(("PASS " if good else "FAIL ") + f"{text}: {verdict}", flush=True)
        self.passed += good
        self.failed += not good
        return ok


def properties(fixture):
    """What the documented differences depend on: padding, legacy flag, tokens keeping one choice."""
    c = fixture.config
    if fixture.kind == "top2_gating":
        logits = torch.from_numpy(fixture.inputs["logits"])
        paddings = fixture.inputs.get("paddings")
    else:
        b, t, m = fixture.inputs["x"].shape
        x = torch.from_numpy(fixture.inputs["x"]).reshape(c["num_groups"], -1, m)
        logits = x @ torch.from_numpy(fixture.params["gate"])
        paddings = fixture.inputs.get("paddings")
        paddings = None if paddings is None else paddings.reshape(c["num_groups"], -1)
    pad = None if paddings is None else torch.from_numpy(np.asarray(paddings))
    combine, dispatch, _ = reference_gating(logits, pad, **c)
    kept = dispatch.sum(dim=(2, 3))
    top = torch.softmax(adapters.capped(logits, c, {"apply_logit_cap": True}), -1).sort(-1, descending=True).values
    real = torch.ones(kept.shape, dtype=torch.bool) if pad is None else pad == 0
    tied = ((top[..., 0] == top[..., 1]) | (top[..., 1] == top[..., 2])) & real
    return {"padded": pad is not None and bool(pad.any()), "legacy": bool(c["legacy_mtf_behavior"]), "ties": bool(tied.any()),
            "single": (kept == 1), "logits": logits, "paddings": pad, "capacity": combine.shape[-1],
            "cap": bool(c.get("gating_logit_cap"))}


def settings(name, mode, fixture, props):
    c, s = fixture.config, props["logits"].shape[1]
    cap = props["capacity"]
    if name == "deepspeed":
        if mode == "shipped":
            return {"capacity_factor": 1.0, "min_capacity": 8, "second_expert_sampling": True}
        return {"capacity_factor": 0.0, "min_capacity": cap, "second_expert_sampling": False, "apply_logit_cap": True}
    if name == "nllb":
        if mode == "shipped":
            return {"expert_capacity": 64, "second_expert_policy": "all", "normalize_before_dropping": False,
                    "batch_prioritized_routing": False, "pass_paddings": True}
        return {"expert_capacity": cap, "second_expert_policy": "all", "normalize_before_dropping": props["legacy"],
                "batch_prioritized_routing": False, "pass_paddings": True, "apply_logit_cap": True}
    if mode == "shipped":
        return {"second_policy": "random", "capacity_factor": 1.25, "min_expert_capacity": 4}
    return {"second_policy": "all", "capacity_factor": (cap + 0.5) * c["num_experts"] / s, "min_expert_capacity": 0,
            "apply_logit_cap": True}


def expected_gating(name, props):
    """(weights agree, aux agrees, differences) for the aligned run, from DIFFERENCES."""
    single = bool(props["single"].any())
    if name == "deepspeed":
        weights = not props["padded"] and (not props["legacy"] or not single)
        reasons = (["padding"] if props["padded"] else []) + (["renormalise_after"] if props["legacy"] and single else [])
        return weights, not props["padded"], reasons
    if name == "nllb":
        return True, False, ["slots", "aux_switch"]
    weights = props["legacy"] or not single
    aux = props["legacy"] or not props["padded"]
    reasons = ([] if weights else ["renormalise_before"]) + ([] if aux else ["aux_padding_share"])
    if props["ties"]:
        weights, aux, reasons = False, False, reasons + ["ties"]
    return weights, aux, reasons


def compare(name, value, expected, atol, rtol):
    return gf.compare_tensor(name, value.detach().numpy(), expected, atol, rtol).passed


def run_gating(report, name, fixture, props, table):
    label, _, adapter = IMPLEMENTATIONS[name]
    short = os.path.basename(fixture.path).replace(".safetensors", "")
    expected_combine = fixture.expected["combine"]
    atol, rtol = fixture.tolerance_for("combine")
    aux_tolerance = fixture.tolerance_for("aux_loss")
    outcomes = {}
    for mode in ("shipped", "aligned"):
        out = adapter(props["logits"].clone(), props["paddings"], fixture.config, settings(name, mode, fixture, props))
        if out["combine"] is not None:
            weights_ok = compare("combine", out["combine"], expected_combine, atol, rtol)
        else:  # NLLB: per-expert weights only
            weights_ok = compare("weights", out["weights"], expected_combine.sum(-1), atol, rtol)
        aux_ok = compare("aux", out["aux"], fixture.expected["aux_loss"], *aux_tolerance)
        outcomes[mode] = (weights_ok, aux_ok, out)
    # As shipped: expected to differ wherever a default differs from GLaM's on this fixture.
    shipped_weights, shipped_aux, _ = outcomes["shipped"]
    report.check(shipped_weights and shipped_aux, False, f"{name} {short} as shipped: combine and aux")
    weights_ok, aux_ok, out = outcomes["aligned"]
    want_weights, want_aux, reasons = expected_gating(name, props)
    report.check(weights_ok, want_weights, f"{name} {short} aligned: combine{' (Σ over slots)' if out['combine'] is None else ''}")
    report.check(aux_ok, want_aux, f"{name} {short} aligned: aux loss")
    demonstrations = demonstrate(report, name, short, fixture, props, out, reasons)
    table.append((label, short, "agrees" if shipped_weights and shipped_aux else "differs",
                  ("combine " + ("agrees" if weights_ok else "differs")) + ", aux " + ("agrees" if aux_ok else "differs"),
                  reasons, demonstrations))


def demonstrate(report, name, short, fixture, props, out, reasons):
    """Shows that each remaining difference is the named one: the rest agrees."""
    shown = []
    expected = torch.from_numpy(fixture.expected["combine"]).sum(-1) if fixture.kind == "top2_gating" else None
    atol, _ = fixture.tolerance_for("combine") if fixture.kind == "top2_gating" else (1e-5, 0)
    if ("renormalise_after" in reasons or "renormalise_before" in reasons) and expected is not None:
        untouched = ~props["single"]
        if props["paddings"] is not None and "padding" in reasons:
            return shown
        ok = torch.allclose(out["weights"][untouched], expected[untouched], atol=atol, rtol=0)
        report.check(ok, True, f"{name} {short}: combine on the tokens that keep 0 or 2 choices")
        shown.append("tokens keeping 0 or 2 choices agree")
    if "ties" in reasons and name == "lucidrains" and len(reasons) == 1:
        original = adapters.lucidrains_moe.top1
        adapters.lucidrains_moe.top1 = lambda t: (t.max(dim=-1).values, t.argmax(dim=-1))  # argmax: lowest index
        try:
            patched = adapters.lucidrains_top2(props["logits"].clone(), props["paddings"], fixture.config,
                                               settings(name, "aligned", fixture, props))
        finally:
            adapters.lucidrains_moe.top1 = original
        ok = compare("combine", patched["combine"], fixture.expected["combine"], *fixture.tolerance_for("combine")) and \
            compare("aux", patched["aux"], fixture.expected["aux_loss"], *fixture.tolerance_for("aux_loss"))
        report.check(ok, True, f"{name} {short}: combine and aux with top1 breaking ties toward the lower index")
        shown.append("with lowest-index ties, combine and aux agree")
    if "aux_switch" in reasons and not props["padded"]:
        logits = adapters.capped(props["logits"], fixture.config, {"apply_logit_cap": True})
        p = torch.softmax(logits, -1)
        e = p.shape[-1]
        first = F.one_hot(p.argmax(-1), e).float()
        second = F.one_hot(logits.masked_fill(first.bool(), float("-inf")).argmax(-1), e).float()
        correction = (e * (second.mean(1) * p.mean(1)).sum(-1)).mean()
        ok = compare("aux", out["aux"] - correction, fixture.expected["aux_loss"], *fixture.tolerance_for("aux_loss"))
        report.check(ok, True, f"{name} {short}: aux loss minus E·Σ f²·P")
        shown.append("aux − E·Σ f²·P agrees")
    return shown


def run_layer(report, name, fixture, props, table):
    """The moe_layer fixture through the implementation's gating, aligned; experts computed here."""
    label, _, adapter = IMPLEMENTATIONS[name]
    short = os.path.basename(fixture.path).replace(".safetensors", "")
    c = fixture.config
    x = torch.from_numpy(fixture.inputs["x"]).requires_grad_()
    gate = torch.from_numpy(fixture.params["gate"]).requires_grad_()
    wi = torch.from_numpy(fixture.params["wi"]).requires_grad_()
    wo = torch.from_numpy(fixture.params["wo"]).requires_grad_()
    b, t, m = x.shape
    g = c["num_groups"]
    logits = x.reshape(g, -1, m) @ gate
    out = adapter(logits, props["paddings"], c, settings(name, "aligned", fixture, props))
    act = (lambda v: F.gelu(v, approximate="tanh")) if c["activation"] == "gelu_tanh" else F.relu
    experts = torch.einsum("gseh,ehm->gsem", act(torch.einsum("gsm,emh->gseh", x.reshape(g, -1, m), wi)), wo)
    y = torch.einsum("gse,gsem->gsm", out["weights"], experts).reshape(b, t, m)
    paddings = fixture.inputs.get("paddings")
    if paddings is not None:
        y = y * (1 - torch.from_numpy(paddings))[..., None]
    objective = (y * torch.from_numpy(fixture.inputs["dy"])).sum() + out["aux"]
    grads = torch.autograd.grad(objective, [x, gate, wi, wo])
    actual = {"y": y.detach().numpy(), "aux_loss": out["aux"].detach().numpy()}
    actual.update({f"grad.{k}": v.numpy() for k, v in zip(["x", "gate", "wi", "wo"], grads)})
    result = gf.compare(fixture, actual)
    weights, aux, reasons = expected_gating(name, props)
    want = weights and aux  # the layer agrees only where both the combine weights and the aux loss do
    reasons = [reason for reason in reasons if reason != "slots"]  # the layer compares outputs, not slots
    report.check(result.ok, want, f"{name} {short} aligned: y, aux and 4 gradients ({result.passed} of "
                                  f"{result.passed + result.failed} tensors)")
    shown = []
    if name == "nllb":  # everything but the aux loss and what it feeds (grad.gate, grad.x through the router)
        y_ok = all(cmp.passed for cmp in result.comparisons if cmp.name in ("y", "grad.wi", "grad.wo"))
        report.check(y_ok, True, f"{name} {short}: y and the expert gradients (independent of the aux loss)")
        shown.append("y, grad.wi, grad.wo agree")
    table.append((label, short, "", f"{result.passed} of {result.passed + result.failed} tensors agree", reasons, shown))


def markdown(table, versions):
    """One row per fixture, one column per implementation: as shipped, aligned, remaining differences."""
    labels = [label for label, _, _ in IMPLEMENTATIONS.values()]
    cells = {}
    for label, short, shipped, aligned, reasons, shown in table:
        text = (f"as shipped: {shipped}; aligned: " if shipped else "aligned: ") + aligned
        if reasons:
            text += " — " + ", ".join(reasons)
        if shown:
            text += " (" + "; ".join(shown) + ")"
        cells[(short, label)] = text
    fixtures = sorted({short for short, _ in cells})
    lines = ["| fixture | " + " | ".join(f"{label} {versions[label]}" for label in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for short in fixtures:
        lines.append(f"| `{short}` | " + " | ".join(cells.get((short, label), "") for label in labels) + " |")
    lines += ["", "Differences:", ""] + [f"- **{key}**: {text}" for key, text in DIFFERENCES.items()]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown")
    args = parser.parse_args()
    versions = {label: importlib.metadata.version(package) for label, package, _ in IMPLEMENTATIONS.values()}
    report, table = Report(), []
    paths = sorted(glob.glob(os.path.join(ROOT, "Fixtures", "moe", "*.safetensors")))
    for name in IMPLEMENTATIONS:
        for path in paths:
            fixture = gf.read(path)
            props = properties(fixture)
            if fixture.kind == "top2_gating":
                run_gating(report, name, fixture, props, table)
            else:
                run_layer(report, name, fixture, props, table)
    text = markdown(table, versions)
    print()
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
