"""Golden fixtures for anyone's MoE code: read them, check your outputs against them with the same
tolerances and report as `glam verify`, and write your own. Needs numpy and safetensors only.

A fixture is a safetensors file with metadata `format` = `glam-fixture`, `version` = `1`, `kind`,
`config` (JSON), `source` and optionally `tolerance` (JSON `{"expected.NAME": [atol, rtol]}`), and
tensors named `input.*`, `param.*` and `expected.*`. The kinds, their config keys, tensors and
default tolerances are in `SCHEMAS` below and in the "Golden fixtures" article of the docs.

    import glam_fixtures as gf
    fixture = gf.read("Fixtures/moe/top2_gating_spec_cf1.safetensors")
    logits, paddings = fixture.inputs["logits"], fixture.inputs.get("paddings")
    combine, dispatch, aux = my_top2_gating(logits, paddings, **fixture.config)   # your code
    report = gf.compare(fixture, {"combine": combine, "dispatch": dispatch, "aux_loss": aux})
    print(report)            # PASS/FAIL lines and "N passed, N failed", as glam verify prints them
    assert report.ok

An element passes when |actual − expected| ≤ atol + rtol·|expected| (in double precision); a NaN or
infinite difference fails; a shape mismatch fails. A failure names the [i, j, …] index of the
first element out of tolerance (row-major) and both values there.
"""
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

FORMAT, VERSION = "glam-fixture", "1"
GATING_KEYS = ["num_experts", "expert_capacity", "capacity_factor", "second_expert_policy", "legacy_mtf_behavior",
               "gating_logit_cap"]
MODEL_KEYS = ["vocab_size", "model_dim", "num_layers", "num_heads", "head_dim", "ff_dim", "moe_hidden_dim", "num_experts",
              "expert_capacity", "capacity_factor", "num_groups", "moe_activation", "relative_buckets",
              "relative_max_distance", "attention_extra_logit", "rmsnorm_epsilon", "z_loss_weight", "aux_loss_weight"]
ADAFACTOR_KEYS = ["step", "learning_rate", "decay_pow", "clipping_threshold", "multiply_by_parameter_scale", "epsilon1",
                  "epsilon2", "factored", "min_dim_size_to_factor"]


@dataclass(frozen=True)
class Schema:
    """One kind: its config keys, tensors (name → (shape, meaning); `<name>` stands for any parameter
    name), what its gradients are gradients of, and default tolerances (name → (atol, rtol))."""
    kind: str
    config_keys: list
    inputs: dict
    params: dict
    expected: dict
    tolerances: dict
    gradients_of: str = ""
    notes: str = ""


SCHEMAS = {
    "top2_gating": Schema(
        "top2_gating", GATING_KEYS,
        inputs={"logits": ("[G, S, E]", "router logits"), "paddings": ("[G, S], optional", "1 = padding")},
        params={},
        expected={"combine": ("[G, S, E, C]", "gate of each kept choice at its expert and slot"),
                  "dispatch": ("[G, S, E, C]", "1 where combine is non-zero"),
                  "aux_loss": ("[]", "the layer's load-balancing loss"),
                  "over_capacity": ("[2]", "share of top-1 and of top-2 choices dropped, as praxis reports them")},
        tolerances={"combine": (1e-5, 0.0), "dispatch": (1e-5, 0.0), "aux_loss": (1e-5, 0.0), "over_capacity": (1e-5, 0.0)},
        notes="second_expert_policy must be \"all\"; C follows the praxis capacity rule from capacity_factor or "
              "expert_capacity; gating_logit_cap 0 or null is off."),
    "moe_layer": Schema(
        "moe_layer", GATING_KEYS + ["num_groups", "activation"],
        inputs={"x": ("[B, T, M]", "the layer input, already RMS-normalised"), "paddings": ("[B, T], optional", "1 = padding"),
                "dy": ("[B, T, M]", "weights of the objective Σ(y ⊙ dy) + aux_loss")},
        params={"gate": ("[M, E]", "router"), "wi": ("[E, M, H]", "expert input matrices"), "wo": ("[E, H, M]", "expert output matrices")},
        expected={"y": ("[B, T, M]", "the layer output without residual, padded rows zero"),
                  "aux_loss": ("[]", "the load-balancing loss, unweighted"),
                  "grad.x": ("[B, T, M]", "gradient"), "grad.gate": ("[M, E]", "gradient"), "grad.wi": ("[E, M, H]", "gradient"),
                  "grad.wo": ("[E, H, M]", "gradient")},
        tolerances={"y": (1e-5, 1e-4), "aux_loss": (1e-5, 1e-4), "grad.x": (1e-4, 1e-4), "grad.gate": (1e-4, 1e-4),
                    "grad.wi": (1e-4, 1e-4), "grad.wo": (1e-4, 1e-4)},
        gradients_of="Σ (y ⊙ dy) + aux_loss  (the output contracted with dy, plus the aux loss with weight 1)",
        notes="activation is \"gelu_tanh\" or \"relu\"; num_groups must divide B·T."),
    "glam_lm": Schema(
        "glam_lm", MODEL_KEYS,
        inputs={"tokens": ("[B, T] int", "input ids"), "targets": ("[B, T] int", "the id each position predicts"),
                "paddings": ("[B, T], optional", "1 = padding"),
                "segment_ids": ("[B, T] int, optional", "packed segments, 0 = padding; default 1 − paddings")},
        params={"<name>": ("per the parameter table", "every parameter of the configuration, required")},
        expected={"logits": ("[B, T, V]", "output logits"), "ce_loss": ("[]", "cross-entropy over B·T positions"),
                  "z_loss": ("[]", "mean of logZ² over B·T positions"), "aux_loss": ("[]", "sum of the MoE layers' losses"),
                  "loss": ("[]", "ce + z_loss_weight·z + aux_loss_weight·aux"),
                  "grad.<name>": ("the parameter's shape", "d loss / d parameter")},
        tolerances={"logits": (1e-4, 1e-4), "ce_loss": (1e-5, 1e-5), "z_loss": (1e-5, 1e-5), "aux_loss": (1e-5, 1e-5),
                    "loss": (1e-5, 1e-5), "grad.<name>": (1e-4, 1e-3)},
        gradients_of="the total loss, expected.loss",
        notes="all eighteen model keys must be present (null takes the documented default)."),
    "adafactor_step": Schema(
        "adafactor_step", ADAFACTOR_KEYS,
        inputs={"grad.<name>": ("as the param", "its gradient, required"),
                "state.<name>.vr": ("[..., R], optional", "factored row statistic before the update"),
                "state.<name>.vc": ("[..., C], optional", "factored column statistic before the update"),
                "state.<name>.v": ("as the param, optional", "full statistic before the update")},
        params={"<name>": ("any", "the weight before the update; at least one")},
        expected={"param.<name>": ("as the param", "the weight after the update"),
                  "state.<name>.vr": ("[..., R]", "statistics after the update"), "state.<name>.vc": ("[..., C]", ""),
                  "state.<name>.v": ("as the param", "")},
        tolerances={"param.<name>": (1e-6, 1e-5), "state.<name>.vr": (1e-12, 1e-5), "state.<name>.vc": (1e-12, 1e-5),
                    "state.<name>.v": (1e-12, 1e-5)},
        notes="absent input statistics are zeros."),
}


class FixtureError(Exception):
    """A file that is not a well-formed glam fixture (glam verify exits 2 on these)."""


def _pattern_match(pattern, name):
    """Whether `name` fits a schema name where `<name>` stands for one or more dotted words."""
    if "<name>" not in pattern:
        return pattern == name
    prefix, suffix = pattern.split("<name>")
    return name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)


def _known(names, name):
    return any(_pattern_match(p, name) for p in names)


@dataclass
class Fixture:
    """A fixture's envelope and tensors, with names split by prefix (`inputs["logits"]` is `input.logits`)."""
    path: str
    kind: str
    config: dict
    source: str
    tolerance: dict
    inputs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)

    @property
    def schema(self):
        return SCHEMAS[self.kind]

    def tolerance_for(self, name):
        """(atol, rtol) of expected tensor `name`: the fixture's own, else the kind's default."""
        if "expected." + name in self.tolerance:
            return tuple(self.tolerance["expected." + name])
        for pattern, value in self.schema.tolerances.items():
            if _pattern_match(pattern, name):
                return value
        raise FixtureError(f"{self.path}: {name} is not an expected tensor of kind {self.kind}")


def read(path):
    """Reads and validates a fixture: envelope, kind, config keys, tensor names."""
    try:
        with safe_open(path, "np") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise FixtureError(f"{path}: not a glam fixture (__metadata__ format is {metadata.get('format')!r})")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except FixtureError:
        raise
    except Exception as error:  # safetensors raises several types for unreadable files
        raise FixtureError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("version") != VERSION:
        raise FixtureError(f"{path}: fixture version {metadata.get('version')!r}, this kit reads {VERSION}")
    kind = metadata.get("kind")
    if kind not in SCHEMAS:
        raise FixtureError(f"{path}: unknown kind {kind!r} (known: {', '.join(SCHEMAS)})")
    try:
        config = json.loads(metadata.get("config", ""))
        tolerance = json.loads(metadata["tolerance"]) if "tolerance" in metadata else {}
    except json.JSONDecodeError as error:
        raise FixtureError(f"{path}: config or tolerance is not JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(tolerance, dict):
        raise FixtureError(f"{path}: config and tolerance must be JSON objects")
    for name, value in tolerance.items():
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value)):
            raise FixtureError(f"{path}: tolerance for {name} is not [atol, rtol] with non-negative numbers")
    schema = SCHEMAS[kind]
    missing = [key for key in schema.config_keys if key not in config]
    if missing:
        raise FixtureError(f"{path}: config has no {', '.join(repr(k) for k in missing)} (a {kind} fixture must give it)")
    fixture = Fixture(path, kind, config, metadata.get("source", ""), tolerance)
    for name, value in tensors.items():
        prefix, _, rest = name.partition(".")
        table = {"input": (schema.inputs, fixture.inputs), "param": (schema.params, fixture.params),
                 "expected": (schema.expected, fixture.expected)}.get(prefix)
        if table is None or not _known(table[0], rest):
            raise FixtureError(f"{path}: {name} is not a tensor of kind {kind} (it reads input.{{{', '.join(schema.inputs)}}}, "
                               f"param.{{{', '.join(schema.params)}}}, expected.{{{', '.join(schema.expected)}}})")
        table[1][rest] = value
    if not fixture.expected:
        raise FixtureError(f"{path}: no expected tensor")
    return fixture


@dataclass
class Comparison:
    """One expected tensor against the computed one."""
    name: str
    passed: bool
    max_abs: float
    atol: float
    rtol: float
    detail: str = ""
    skipped: bool = False


@dataclass
class Report:
    """Every comparison of one fixture; `str(report)` is glam verify's output for it."""
    path: str
    comparisons: list

    @property
    def ok(self):
        return all(c.passed for c in self.comparisons)

    @property
    def passed(self):
        return sum(c.passed and not c.skipped for c in self.comparisons)

    @property
    def failed(self):
        return sum(not c.passed for c in self.comparisons)

    def lines(self):
        out = []
        for c in self.comparisons:
            if c.skipped:
                out.append(f"SKIP  {self.path}  expected.{c.name}")
                continue
            line = (f"{'PASS' if c.passed else 'FAIL'}  {self.path}  expected.{c.name}  max|Δ| {c.max_abs:.3g}  "
                    f"(atol {c.atol!r}, rtol {c.rtol!r})")
            out.append(line + (f"  {c.detail}" if c.detail else ""))
        return out + [f"{self.passed} passed, {self.failed} failed"]

    def __str__(self):
        return "\n".join(self.lines())


def compare_tensor(name, actual, expected, atol, rtol):
    """Compares one tensor as glam verify does (double precision, first mismatch in row-major order)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Comparison(name, False, float("inf"), atol, rtol,
                          f"shape {list(actual.shape)} computed, {list(expected.shape)} expected")
    with np.errstate(invalid="ignore", over="ignore"):
        difference = np.abs(actual - expected)
        bad = ~(difference <= atol + rtol * np.abs(expected)) | ~np.isfinite(difference)
    worst = float(np.max(np.where(np.isnan(difference), np.inf, difference))) if difference.size else 0.0
    if not bad.any():
        return Comparison(name, True, worst, atol, rtol)
    flat = int(np.flatnonzero(bad.reshape(-1))[0])
    index = [int(i) for i in np.unravel_index(flat, expected.shape)] if expected.ndim else []
    return Comparison(name, False, worst, atol, rtol,
                      f"first mismatch at {index}: {np.float32(actual.reshape(-1)[flat])} computed, "
                      f"{np.float32(expected.reshape(-1)[flat])} expected")


def compare(fixture, actual, skip=()):
    """Compares computed tensors (`actual`: expected-name without `expected.` → array) with every
    expected tensor the fixture holds. One the caller did not compute fails, naming it, unless it is
    listed in `skip` (then it is reported as SKIP and not counted)."""
    comparisons = []
    for name, expected in sorted(fixture.expected.items()):
        atol, rtol = fixture.tolerance_for(name)
        if name in skip:
            comparisons.append(Comparison(name, True, 0.0, atol, rtol, "skipped", skipped=True))
        elif name not in actual:
            comparisons.append(Comparison(name, False, float("inf"), atol, rtol, "not computed"))
        else:
            comparisons.append(compare_tensor(name, actual[name], expected, atol, rtol))
    return Report(fixture.path, comparisons)


def write(path, kind, config, source, tensors, tolerance=None):
    """Writes a fixture: checks the kind's config keys and tensor names, stores integer arrays as
    I32 and everything else as F32 (rank 0 kept), `config` and `tolerance` as JSON with sorted keys."""
    if kind not in SCHEMAS:
        raise FixtureError(f"unknown kind {kind!r} (known: {', '.join(SCHEMAS)})")
    schema = SCHEMAS[kind]
    missing = [key for key in schema.config_keys if key not in config]
    if missing:
        raise FixtureError(f"a {kind} fixture's config must give {', '.join(missing)}")
    arrays = {}
    for name, value in tensors.items():
        prefix, _, rest = name.partition(".")
        table = {"input": schema.inputs, "param": schema.params, "expected": schema.expected}.get(prefix)
        if table is None or not _known(table, rest):
            raise FixtureError(f"{name} is not a tensor of kind {kind}")
        value = np.asarray(value)
        arrays[name] = np.array(value, dtype=np.int32 if value.dtype.kind in "iub" else np.float32, order="C")
    metadata = {"format": FORMAT, "version": VERSION, "kind": kind, "config": json.dumps(config, sort_keys=True),
                "source": source}
    if tolerance:
        metadata["tolerance"] = json.dumps(tolerance, sort_keys=True)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    save_file(arrays, temporary, metadata=metadata)
    os.replace(temporary, path)


def describe(kind):
    """The schema of `kind` as text: config keys, tensors with shapes and meanings, tolerances."""
    s = SCHEMAS[kind]
    lines = [f"kind {kind}", "  config keys: " + ", ".join(s.config_keys)]
    for title, table in (("input", s.inputs), ("param", s.params), ("expected", s.expected)):
        for name, (shape, meaning) in table.items():
            tol = s.tolerances.get(name) if title == "expected" else None
            lines.append(f"  {title + '.' + name:<27} {shape:<28} {meaning}" + (f"  (atol {tol[0]}, rtol {tol[1]})" if tol else ""))
    if s.gradients_of:
        lines.append("  gradients are of: " + s.gradients_of)
    if s.notes:
        lines.append("  " + s.notes)
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "describe":
        print("\n\n".join(describe(k) for k in (sys.argv[2:] or SCHEMAS)))
    else:
        print("usage: python3 glam_fixtures.py describe [KIND ...]")
