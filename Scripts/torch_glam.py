#!/usr/bin/env python3
"""The GLaM decoder and its Adafactor step in PyTorch (CPU, float32): the PyTorch peer of
Scripts/bench_train_jax.py, checked against the repository's golden fixtures.

This is a separate port, written from the "The model" and "Top-2 gating" articles and from the JAX
reference in Fixtures/model/make_glam_fixtures.py (the glam_lm fixtures' generator). It computes
the same function as that reference:

- pre-norm blocks with RMSNorm (x·rsqrt(mean x² + eps)·scale); attention with a learned
  relative-position bias per head over T5-style log buckets of (query − key); a query sees keys of its
  own non-zero segment that are not after it; masked logits are set to −0.7·float32 max;
- the extra zero logit: the softmax denominator gains exp(0 − peak), with peak = max(row max, 0)
  held constant (no gradient), so a query may attend to "nothing";
- odd layers (and every layer when num_experts = 0): a gated-GELU (tanh) feed-forward whose input
  rows at padded positions are zeroed first;
- even layers when num_experts > 0: a mixture of experts with GShard top-2 gating as praxis'
  `top2_gating_on_logits` computes it with second_expert_policy="all" and legacy_mtf_behavior=True
  (the praxis capacity rule, first-come slots with every top-1 choice ahead of every top-2 choice,
  gates renormalised with 1e-9 before capacity, the load-balancing loss from top-1 choices before
  capacity), with dense [G, S, E, C] dispatch and combine tensors so that every shape is static;
- tied embeddings, logits = RMSNorm(x)·M^-½·Eᵀ; loss = CE + z_loss_weight·mean(logZ²) +
  aux_loss_weight·Σ aux, CE and z summed over real positions and divided by B·T.

The Adafactor step follows optax.adafactor(learning_rate=0.01, min_dim_size_to_factor=128,
decay_rate=0.8, decay_offset=0, multiply_by_parameter_scale=True, clipping_threshold=1.0,
momentum=None, eps=1e-30), the configuration bench_train_jax.py gives JAX: second moments factored
over a weight's two largest axes when the smaller of them has at least 128 entries (a stacked expert
weight [E, M, H] keeps one row and one column statistic per expert), decay 1 − (step+1)^-0.8,
updates clipped to RMS ≤ 1, then scaled by the learning rate and by max(RMS(weight), 1e-3).

API: load_fixture(path) → (params, config, inputs, expected); loss_fn(params, config, tokens,
targets, paddings, segments) → (loss, (ce, z, aux)); adafactor_init / adafactor_step;
train_step(params, state, config, tokens, targets, paddings, segments) → (params, state, loss), eager or
compiled whole, optimizer included, by torch.compile (make_train_step(config, compiled=True)).

    python3 Scripts/torch_glam.py --check     every Fixtures/model/glam_lm_*.safetensors (loss, logits and
                                              every gradient by autograd), the legacy top-2 gating
                                              fixtures, two Adafactor steps against optax, and train_step
                                              against those pieces; exits 1 on any failure
    python3 Scripts/torch_glam.py --check --compiled   the same, and train_step through torch.compile
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASKED = -0.7 * float(np.finfo(np.float32).max)  # praxis' value for a logit that must not count

# Tolerances of --check: |computed − expected| ≤ ATOL_SCALE·max|expected| + RTOL·|expected| per element
# (see check_fixtures for why).
RTOL = 2e-5
ATOL_SCALE = 1e-5


# ----------------------------------------------------------------------------------------------
# Model


def capacity(group_size, num_experts, expert_capacity, capacity_factor):
    """Slots per expert and group, by praxis' rule: the given capacity (1 when absent) is replaced by
    floor(S·cf/E) rounded up to a multiple of 4 when that is strictly larger."""
    if not capacity_factor and not expert_capacity:
        raise ValueError("top-2 gating needs expert_capacity or capacity_factor")
    slots = expert_capacity
    if capacity_factor:
        if slots is None:
            slots = 1
        automatic = int(group_size * capacity_factor / num_experts)  # float64 product, truncated
        if slots < automatic:
            slots = -(-automatic // 4) * 4
    return slots


def relative_buckets(length, num_buckets, max_distance):
    """[T, T] int64 bucket of (query − key): distances below num_buckets/2 have their own bucket, the
    rest share logarithmically spaced ones up to num_buckets − 1; keys after the query count as 0.
    Computed in float32, as the reference does."""
    pos = torch.arange(length)
    distance = (pos[:, None] - pos[None, :]).clamp_min(0)
    half = num_buckets // 2
    scaled = distance.to(torch.float32).clamp_min(1.0) / torch.tensor(half, dtype=torch.float32)
    fraction = torch.log(scaled) / torch.log(torch.tensor(max_distance, dtype=torch.float32) / half)
    far = half + (fraction * torch.tensor(num_buckets - half, dtype=torch.float32)).to(torch.int64)
    return torch.where(distance < half, distance, far.clamp_max(num_buckets - 1))


def rms_norm(x, scale, eps):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * scale


def attention(y, params, prefix, config, visible, buckets):
    b, t, _ = y.shape
    n, d = config["num_heads"], config["head_dim"]
    q = (y @ params[prefix + "attention.wq"]).view(b, t, n, d)
    k = (y @ params[prefix + "attention.wk"]).view(b, t, n, d)
    v = (y @ params[prefix + "attention.wv"]).view(b, t, n, d)
    scores = torch.einsum("bqnd,bknd->bnqk", q, k) + params[prefix + "attention.relative_bias"][:, buckets].unsqueeze(0)
    scores = torch.where(visible, scores, torch.full_like(scores, MASKED))
    if config["attention_extra_logit"]:
        peak = scores.amax(dim=-1, keepdim=True).clamp_min(0.0).detach()
        weights = torch.exp(scores - peak)
        probs = weights / (torch.exp(-peak) + weights.sum(dim=-1, keepdim=True))
    else:
        probs = torch.softmax(scores, dim=-1)
    mixed = torch.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, t, n * d)
    return mixed @ params[prefix + "attention.wo"]


def top2_gating(router_logits, paddings, num_experts, slots):
    """GShard top-2 gating of [G, S, E] float32 logits with [G, S] paddings (1 = padding), policy "all",
    legacy renormalisation: (aux, combine [G, S, E, C], dispatch [G, S, E, C]).

    Ranks: the top-1 choice is the argmax of the softmax (lowest index on ties), the top-2 choice the
    argmax with the top-1 entry set to 0. Padded tokens choose nothing. Within a group each expert
    serves its top-1 arrivals in token order, then its top-2 arrivals, up to `slots` in all; a
    choice beyond that is dropped (its gate becomes 0, the other gate is not renormalised again)."""
    probs = torch.softmax(router_logits, dim=-1)
    real = (1.0 - paddings).unsqueeze(-1)  # [G, S, 1]
    first = F.one_hot(probs.argmax(dim=-1), num_experts).to(probs.dtype) * real
    gate1 = (probs * first).sum(dim=-1)
    without_first = probs * (1.0 - first)
    second = F.one_hot(without_first.argmax(dim=-1), num_experts).to(probs.dtype) * real
    gate2 = (without_first * second).sum(dim=-1)
    total = gate1 + gate2 + 1e-9
    gate1, gate2 = gate1 / total, gate2 / total

    # Load balancing, from the top-1 choices before capacity: E² · mean over (g, e) of f·P.
    fraction = first.mean(dim=1)
    mean_prob = (probs * real).mean(dim=1)
    aux = (mean_prob * fraction).mean() * float(num_experts * num_experts)

    # Slot of each choice: earlier arrivals of the same rank at that expert (exclusive running count);
    # top-2 choices queue behind every top-1 choice the expert kept.
    place1 = torch.cumsum(first, dim=1) - first
    kept1 = first * (place1 < slots).to(first.dtype)
    place2 = torch.cumsum(second, dim=1) - second + kept1.sum(dim=1, keepdim=True)
    kept2 = second * (place2 < slots).to(second.dtype)

    slot_ids = torch.arange(slots, dtype=probs.dtype)

    def part(gate, kept, place):
        slot = (place * kept).sum(dim=-1, keepdim=True)  # [G, S, 1]; 0 where nothing was kept
        slot_hot = (slot == slot_ids).to(probs.dtype)  # [G, S, C]
        weight = gate.unsqueeze(-1) * kept  # [G, S, E]; all zero where the choice was dropped
        return weight.unsqueeze(-1) * slot_hot.unsqueeze(2)

    combine = part(gate1, kept1, place1) + part(gate2, kept2, place2)
    dispatch = (combine != 0).to(probs.dtype)
    return aux, combine, dispatch


def mixture_of_experts(y, paddings, params, prefix, config):
    b, t, m = y.shape
    groups, experts = config["num_groups"], config["num_experts"]
    size = b * t // groups
    slots = capacity(size, experts, config["expert_capacity"], config["capacity_factor"])
    tokens = y.reshape(groups, size, m)
    router_logits = (tokens @ params[prefix + "moe.gate"]).to(torch.float32)
    aux, combine, dispatch = top2_gating(router_logits, paddings.reshape(groups, size), experts, slots)
    expert_in = torch.einsum("gsec,gsm->egcm", dispatch, tokens)
    hidden = torch.einsum("egcm,emh->egch", expert_in, params[prefix + "moe.wi"])
    hidden = F.gelu(hidden, approximate="tanh") if config["moe_activation"] == "gelu_tanh" else torch.relu(hidden)
    expert_out = torch.einsum("egch,ehm->egcm", hidden, params[prefix + "moe.wo"])
    out = torch.einsum("gsec,egcm->gsm", combine, expert_out).reshape(b, t, m)
    return out * (1.0 - paddings).unsqueeze(-1), aux


def dense_ffn(y, paddings, params, prefix):
    x = y * (1.0 - paddings).unsqueeze(-1)
    gated = F.gelu(x @ params[prefix + "ffn.wi_gate"], approximate="tanh") * (x @ params[prefix + "ffn.wi_linear"])
    return gated @ params[prefix + "ffn.wo"]


def forward(params, config, tokens, targets, paddings, segments=None):
    """(loss, (logits, ce, z, aux)) for int64 tokens/targets [B, T], float32 paddings [B, T] and int
    segment ids [B, T] (None: 1 − paddings)."""
    b, t = tokens.shape
    eps = config["rmsnorm_epsilon"]
    if segments is None:
        segments = (1.0 - paddings).to(torch.int64)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    visible = (segments[:, :, None] == segments[:, None, :]) & (segments[:, None, :] != 0) & causal
    visible = visible.unsqueeze(1)  # [B, 1, T(q), T(k)]
    buckets = relative_buckets(t, config["relative_buckets"], config["relative_max_distance"])
    x = params["embedding"][tokens]
    aux_total = torch.zeros((), dtype=torch.float32)
    for i in range(config["num_layers"]):
        prefix = f"layers.{i}."
        h = x + attention(rms_norm(x, params[prefix + "attention_norm.scale"], eps), params, prefix, config, visible, buckets)
        y = rms_norm(h, params[prefix + "ffn_norm.scale"], eps)
        if config["num_experts"] > 0 and i % 2 == 0:
            ffn, aux = mixture_of_experts(y, paddings, params, prefix, config)
            aux_total = aux_total + aux
        else:
            ffn = dense_ffn(y, paddings, params, prefix)
        x = h + ffn
    x = rms_norm(x, params["final_norm.scale"], eps) * config["model_dim"] ** -0.5
    logits = x @ params["embedding"].t()
    log_z = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    real = 1.0 - paddings
    ce = ((log_z - picked) * real).sum() / (b * t)
    z = (log_z * log_z * real).sum() / (b * t)
    loss = ce + config["z_loss_weight"] * z + config["aux_loss_weight"] * aux_total
    return loss, (logits, ce, z, aux_total)


def loss_fn(params, config, tokens, targets, paddings, segments=None):
    """(loss, (ce, z, aux)): the training objective and its three parts (aux unweighted, summed over layers)."""
    loss, (_, ce, z, aux) = forward(params, config, tokens, targets, paddings, segments)
    return loss, (ce, z, aux)


# ----------------------------------------------------------------------------------------------
# Adafactor (optax.adafactor as bench_train_jax.py configures it)


def factored_axes(shape, min_dim_size_to_factor=128):
    """(second largest axis, largest axis) when both have at least `min_dim_size_to_factor` entries,
    else None; ties ordered by axis, as optax's np.argsort does."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda axis: shape[axis])  # stable, like np.argsort on small arrays
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def adafactor_init(params, min_dim_size_to_factor=128):
    """{"count": int32 0, "v_row": {...}, "v_col": {...}, "v": {...}}; v_row drops the largest axis,
    v_col the second largest (optax's names), unfactored weights keep a full v."""
    state = {"count": torch.zeros((), dtype=torch.int32), "v_row": {}, "v_col": {}, "v": {}}
    for name, p in params.items():
        axes = factored_axes(tuple(p.shape), min_dim_size_to_factor)
        if axes is None:
            state["v"][name] = torch.zeros_like(p)
        else:
            second, largest = axes
            state["v_row"][name] = torch.zeros_like(p.detach().select(largest, 0))
            state["v_col"][name] = torch.zeros_like(p.detach().select(second, 0))
    return state


def adafactor_updates(params, grads, state, learning_rate=0.01, decay_rate=0.8, clipping_threshold=1.0,
                      min_scale=1e-3, eps=1e-30, min_dim_size_to_factor=128):
    """(updates to add to the params, new state), as optax's update function returns them."""
    step = state["count"]
    rho = 1.0 - (step + 1).to(torch.float32) ** (-decay_rate)
    new_state = {"count": step + 1, "v_row": {}, "v_col": {}, "v": {}}
    updates = {}
    for name, p in params.items():
        g = grads[name]
        g2 = g * g + eps
        axes = factored_axes(tuple(p.shape), min_dim_size_to_factor)
        if axes is None:
            v = rho * state["v"][name] + (1.0 - rho) * g2
            new_state["v"][name] = v
            u = g * v ** -0.5
        else:
            second, largest = axes
            row = rho * state["v_row"][name] + (1.0 - rho) * g2.mean(dim=largest)
            col = rho * state["v_col"][name] + (1.0 - rho) * g2.mean(dim=second)
            new_state["v_row"][name], new_state["v_col"][name] = row, col
            second_in_row = second - 1 if second > largest else second
            row_factor = (row / row.mean(dim=second_in_row, keepdim=True)) ** -0.5
            u = g * row_factor.unsqueeze(largest) * (col ** -0.5).unsqueeze(second)
        u = u / torch.clamp_min(torch.sqrt((u * u).mean()) / clipping_threshold, 1.0)
        u = u * learning_rate
        u = u * torch.clamp_min(torch.sqrt((p * p).mean()), min_scale)
        updates[name] = u * -1.0
    return updates, new_state


def adafactor_step(params, grads, state, **options):
    """One update: (new params, new state), functional, plain tensor ops (no autograd); `options` as
    adafactor_updates takes them (defaults: the benchmark's configuration)."""
    updates, new_state = adafactor_updates(params, grads, state, **options)
    return {name: p + updates[name] for name, p in params.items()}, new_state


# ----------------------------------------------------------------------------------------------
# Training step


def train_step(params, state, config, tokens, targets, paddings, segments=None):
    """Forward, backward and one Adafactor update: (new params, new state, loss). Gradients come from
    torch.func.grad_and_value (reverse-mode autograd, as a function), so that torch.compile can trace
    the whole step, optimizer included, into one graph; params need no requires_grad."""
    objective = lambda p: loss_fn(p, config, tokens, targets, paddings, segments)[0]  # noqa: E731
    grads, loss = torch.func.grad_and_value(objective)(params)
    new_params, state = adafactor_step(params, grads, state)
    return new_params, state, loss


def make_train_step(config, compiled=False):
    """step(params, state, tokens, targets, paddings, segments) → (params, state, loss) for `config`:
    train_step itself, or train_step compiled whole by torch.compile (inductor, one graph, static
    shapes; the first call compiles, a call with other shapes compiles again)."""
    def step(params, state, tokens, targets, paddings, segments=None):
        return train_step(params, state, config, tokens, targets, paddings, segments)

    return torch.compile(step, fullgraph=True, dynamic=False) if compiled else step


# ----------------------------------------------------------------------------------------------
# Fixtures and checks


def load_fixture(path):
    """A glam_lm fixture as (params {name: float32 tensor}, config, inputs {tokens, targets, paddings,
    segments} with int64 ids, expected {name: tensor}: loss, ce_loss, z_loss, aux_loss, logits, grad.<name>)."""
    from safetensors import safe_open

    with safe_open(path, "pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    if metadata.get("kind") != "glam_lm":
        raise ValueError(f"{path}: kind {metadata.get('kind')!r}, not glam_lm")
    config = json.loads(metadata["config"])
    params = {k[len("param."):]: v.to(torch.float32) for k, v in tensors.items() if k.startswith("param.")}
    expected = {k[len("expected."):]: v for k, v in tensors.items() if k.startswith("expected.")}
    raw = {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}
    tokens = raw["tokens"].to(torch.int64)
    paddings = raw["paddings"].to(torch.float32) if "paddings" in raw else torch.zeros(tokens.shape)
    segments = raw["segment_ids"].to(torch.int64) if "segment_ids" in raw else (1.0 - paddings).to(torch.int64)
    inputs = {"tokens": tokens, "targets": raw["targets"].to(torch.int64), "paddings": paddings, "segments": segments}
    return params, config, inputs, expected


def compare(name, actual, expected):
    """(ok, line): elementwise |a − e| ≤ ATOL_SCALE·max|e| + RTOL·|e| in float64."""
    a = actual.detach().to(torch.float64)
    e = expected.to(torch.float64)
    if a.shape != e.shape:
        return False, f"FAIL {name}: shape {tuple(a.shape)} against {tuple(e.shape)}"
    diff = (a - e).abs()
    scale = e.abs().max().item() if e.numel() else 0.0
    bound = ATOL_SCALE * scale + RTOL * e.abs()
    ok = bool(torch.isfinite(diff).all()) and bool((diff <= bound).all())
    max_abs = diff.max().item() if diff.numel() else 0.0
    max_rel = (diff / e.abs().clamp_min(1e-30)).max().item() if diff.numel() else 0.0
    # Relative error against the tensor's largest magnitude: the measure the tolerance bounds.
    max_scaled = max_abs / scale if scale > 0 else max_abs
    word = "ok  " if ok else "FAIL"
    return ok, f"{word} {name:44s} max|Δ| {max_abs:9.2e}  max|Δ|/|e| {max_rel:9.2e}  max|Δ|/max|e| {max_scaled:9.2e}"


def check_fixtures(verbose=True):
    """Every glam_lm fixture: loss parts, logits and every gradient (float32 autograd).

    Tolerance: |Δ| ≤ 1e-5·max|e| + 2e-5·|e|. Two float32 programs that add the same terms in a different
    order (XLA vs ATen/MKL blocking) differ by a few ulps of the largest partial sums; over a few hundred
    terms that is ~1e-6 of the tensor's largest entries, and gradient entries that nearly cancel can be
    far smaller than their terms, so a purely relative bound per element would fail on rounding alone.
    The bound is 10-100x the observed rounding differences and still ≥10x tighter than the kit's defaults
    for glam_lm (grad atol 1e-4, rtol 1e-3), so a wrong mask, bucket, gate or slot fails it."""
    failures = 0
    paths = sorted(glob.glob(os.path.join(ROOT, "Fixtures", "model", "glam_lm_*.safetensors")))
    if not paths:
        print("FAIL no Fixtures/model/glam_lm_*.safetensors")
        return 1
    for path in paths:
        params, config, inputs, expected = load_fixture(path)
        leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
        loss, (logits, ce, z, aux) = forward(leaves, config, inputs["tokens"], inputs["targets"], inputs["paddings"],
                                             inputs["segments"])
        names = sorted(leaves)
        grads = dict(zip(names, torch.autograd.grad(loss, [leaves[k] for k in names])))
        computed = {"loss": loss, "ce_loss": ce, "z_loss": z, "aux_loss": aux, "logits": logits}
        computed.update({"grad." + k: g for k, g in grads.items()})
        missing = sorted(set(expected) - set(computed))
        lines = []
        fixture_ok = not missing
        worst = 0.0
        for name in sorted(expected):
            if name not in computed:
                continue
            ok, line = compare(name, computed[name], expected[name])
            fixture_ok &= ok
            lines.append(line)
            diff = (computed[name].detach().double() - expected[name].double()).abs().max().item()
            worst = max(worst, diff / max(expected[name].double().abs().max().item(), 1e-30))
        failures += not fixture_ok
        print(f"{'PASS' if fixture_ok else 'FAIL'} {os.path.relpath(path, ROOT)}: {len(lines)} tensors, "
              f"loss {loss.item():.7f} (expected {expected['loss'].item():.7f}), worst max|Δ|/max|e| {worst:.2e}")
        for line in lines if (verbose or not fixture_ok) else []:
            print("    " + line)
        for name in missing:
            print(f"    FAIL expected.{name}: not computed")
    return failures


def check_train_step(compiled=False):
    """train_step (torch.func gradients, eager or compiled whole) against the checked pieces: autograd
    gradients and adafactor_step, two steps on every glam_lm fixture's model."""
    failures = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "Fixtures", "model", "glam_lm_*.safetensors"))):
        params, config, inputs, _ = load_fixture(path)
        batch = (inputs["tokens"], inputs["targets"], inputs["paddings"], inputs["segments"])
        step = make_train_step(config, compiled=compiled)
        mine, mine_state = dict(params), adafactor_init(params)
        theirs, their_state = dict(params), adafactor_init(params)
        worst = 0.0
        for _ in range(2):
            mine, mine_state, loss = step(mine, mine_state, *batch)
            leaves = {k: v.clone().requires_grad_() for k, v in theirs.items()}
            their_loss, _ = loss_fn(leaves, config, *batch)
            grads = dict(zip(leaves, torch.autograd.grad(their_loss, list(leaves.values()))))
            theirs, their_state = adafactor_step(theirs, grads, their_state)
            worst = max([worst, abs(loss.item() - their_loss.item())] + [(mine[k] - theirs[k]).abs().max().item() for k in mine])
        ok = worst <= 1e-6
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} train_step ({'torch.compile' if compiled else 'eager'}) on "
              f"{os.path.basename(path)}: two steps, max|Δ| of loss and params {worst:.2e} (tolerance 1e-6)")
    return failures


def check_buckets():
    """The bucket table equals the reference's relative_bucket (numpy float32) for long distances."""
    sys.path.insert(0, os.path.join(ROOT, "Fixtures", "model"))
    sys.path.insert(0, os.path.join(ROOT, "Fixtures"))
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import make_glam_fixtures as reference

    failures = 0
    for length, count, far in ((2048, 32, 128), (600, 16, 64), (300, 8, 20)):
        mine = relative_buckets(length, count, far).numpy()
        pos = np.arange(length)
        theirs = reference.relative_bucket(pos[:, None] - pos[None, :], count, far)
        ok = np.array_equal(mine, theirs)
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} relative buckets T={length} buckets={count} max_distance={far}: "
              f"{int((mine != theirs).sum())} of {mine.size} differ")
    return failures


def check_gating_fixtures():
    """The gating alone against praxis' values in the legacy, policy-"all", uncapped top2_gating fixtures
    (their default tolerance: atol 1e-5)."""
    from safetensors import safe_open

    failures = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "Fixtures", "moe", "top2_gating_*.safetensors"))):
        with safe_open(path, "pt") as handle:
            config = json.loads(handle.metadata()["config"])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        if not config["legacy_mtf_behavior"] or config.get("gating_logit_cap") or config["second_expert_policy"] != "all":
            continue
        logits = tensors["input.logits"].to(torch.float32)
        paddings = tensors.get("input.paddings", torch.zeros(logits.shape[:2])).to(torch.float32)
        slots = capacity(logits.shape[1], config["num_experts"], config["expert_capacity"], config["capacity_factor"])
        aux, combine, dispatch = top2_gating(logits, paddings, config["num_experts"], slots)
        worst, ok = 0.0, True
        for name, value in (("combine", combine), ("dispatch", dispatch), ("aux_loss", aux)):
            e = tensors["expected." + name].to(torch.float64)
            if e.shape != value.shape:
                ok = False
                continue
            d = (value.double() - e).abs().max().item()
            worst = max(worst, d)
            ok &= d <= 1e-5
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {os.path.relpath(path, ROOT)}: C={slots}, "
              f"max|Δ| {worst:.2e} (combine, dispatch, aux)")
    return failures


def check_adafactor():
    """One step (and a second, with non-zero statistics) of adafactor_step against optax.adafactor on a
    small random GLaM whose embedding, attention and expert weights are large enough to be factored."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, os.path.join(ROOT, "Fixtures", "model"))
    sys.path.insert(0, os.path.join(ROOT, "Fixtures"))
    import jax
    import jax.numpy as jnp
    import optax
    import make_glam_fixtures as reference

    config = {"vocab_size": 160, "model_dim": 128, "num_layers": 2, "num_heads": 2, "head_dim": 64, "ff_dim": 192,
              "moe_hidden_dim": 136, "num_experts": 4, "expert_capacity": None, "capacity_factor": 2.0, "num_groups": 1,
              "moe_activation": "gelu_tanh", "relative_buckets": 32, "relative_max_distance": 128,
              "attention_extra_logit": True, "rmsnorm_epsilon": 1e-6, "z_loss_weight": 1e-4, "aux_loss_weight": 0.01}
    rng = np.random.default_rng(7)
    params = reference.init_parameters(config, rng, 1.0)
    params["layers.1.attention_norm.scale"] = np.full(128, 1e-4, np.float32)  # RMS below the 1e-3 floor
    tx = optax.adafactor(learning_rate=0.01, min_dim_size_to_factor=128, decay_rate=0.8, decay_offset=0,
                         multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None, eps=1e-30)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    jstate = tx.init(jparams)
    tparams = {k: torch.from_numpy(v.copy()) for k, v in params.items()}
    tstate = adafactor_init(tparams)
    factored = sorted(k for k in params if factored_axes(params[k].shape) is not None)
    print(f"     adafactor check: {len(params)} weights, factored: {', '.join(factored)}; tolerances: params "
          f"max|Δ| ≤ 1e-6, updates and statistics max|Δ| ≤ 1e-5 of their largest entry")
    failures = 0
    for step in range(2):
        grads = {k: (rng.standard_normal(v.shape) * (0.02 if step else 1.0)).astype(np.float32) for k, v in params.items()}
        grads["embedding"][0, :4] = 50.0  # uneven, so that clipping engages
        updates, jstate = tx.update({k: jnp.asarray(v) for k, v in grads.items()}, jstate, jparams)
        jparams = optax.apply_updates(jparams, updates)
        tgrads = {k: torch.from_numpy(v) for k, v in grads.items()}
        tupdates, _ = adafactor_updates(tparams, tgrads, tstate)
        tparams, tstate = adafactor_step(tparams, tgrads, tstate)
        factored_state = jstate[0]
        worst = {"params": (0.0, ""), "updates": (0.0, ""), "statistics": (0.0, "")}

        def note(kind, name, actual, expected):
            expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
            if actual.shape != expected.shape:
                value = math.inf
            else:
                value = np.abs(actual - expected).max()
                if kind != "params":  # relative to the tensor's largest entry
                    value /= max(np.abs(expected).max(), 1e-30)
            if value >= worst[kind][0]:
                worst[kind] = (value, name)

        for k in params:
            note("params", k, tparams[k].numpy(), jparams[k])
            note("updates", k, tupdates[k].numpy(), updates[k])
            if k in tstate["v"]:
                note("statistics", k + " v", tstate["v"][k].numpy(), factored_state.v[k])
            else:
                note("statistics", k + " v_row", tstate["v_row"][k].numpy(), factored_state.v_row[k])
                note("statistics", k + " v_col", tstate["v_col"][k].numpy(), factored_state.v_col[k])
        ok = worst["params"][0] <= 1e-6 and worst["updates"][0] <= 1e-5 and worst["statistics"][0] <= 1e-5
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} adafactor step {step + 1} against optax {optax.__version__}: params max|Δ| "
              f"{worst['params'][0]:.2e} ({worst['params'][1]}); updates max|Δ|/max|u| {worst['updates'][0]:.2e} "
              f"({worst['updates'][1]}); statistics max|Δ|/max|v| {worst['statistics'][0]:.2e} ({worst['statistics'][1]})")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the golden fixtures and optax; exit 1 on failure")
    parser.add_argument("--quiet", action="store_true", help="with --check: one line per fixture unless it fails")
    parser.add_argument("--compiled", action="store_true",
                        help="with --check: also run train_step through torch.compile (minutes: inductor compiles each fixture)")
    args = parser.parse_args()
    if not args.check:
        parser.print_help()
        return 0
    torch.set_default_dtype(torch.float32)
    print(f"torch {torch.__version__}; tolerance per element |Δ| ≤ {ATOL_SCALE:g}·max|expected| + {RTOL:g}·|expected|")
    failures = check_fixtures(verbose=not args.quiet)
    failures += check_buckets()
    failures += check_gating_fixtures()
    failures += check_adafactor()
    failures += check_train_step()
    if args.compiled:
        failures += check_train_step(compiled=True)
    print(f"torch_glam --check: {'PASS' if failures == 0 else 'FAIL'} ({failures} failed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
