#!/usr/bin/env python3
"""Golden fixtures of kind `glam_lm` (the "Golden fixtures" article): an independent JAX implementation of
the GLaM decoder written from the "The model" and "Top-2 gating" articles, with praxis' own top2_gating_on_logits
for the MoE layers and jax.grad for every parameter's gradient. Nothing here comes from the Swift
code.

Semantics written down here (and in the Swift code) where the paper leaves a choice:
- attention visibility: same segment, key segment not 0, key not after query; segments default to
  1 - paddings; masked logits are replaced by -0.7 * float32 max (praxis apply_mask_to_logits);
- the extra zero logit joins the softmax normalisation (max includes 0, stop-gradient);
- the dense FFN zeroes padded inputs first (apply_padding_first); the MoE output is multiplied by
  (1 - paddings) and padded tokens are not routed;
- CE and z-loss are summed over real positions and divided by B*T (padding included).

Run from the repository root:
    pip install -r Fixtures/requirements.txt && pip install --no-deps praxis==1.4.0
    python3 Fixtures/model/make_glam_fixtures.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fixture_io import write_fixture  # noqa: E402
from praxis_gating import load_top2_gating  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
top2_gating_on_logits = load_top2_gating()
LARGE_NEGATIVE = np.float32(-0.7 * np.finfo(np.float32).max)
SOURCE = (f"independent JAX {jax.__version__} implementation of the GLaM decoder as documented (CPU, float32) with praxis 1.4.0 "
          "top2_gating_on_logits and jax.grad; Fixtures/model/make_glam_fixtures.py")


def relative_bucket(distance, num_buckets, max_distance):
    n = np.maximum(distance, 0)
    exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) for n = 0, unused (n < exact)
        ratio = np.log(n.astype(np.float32) / np.float32(exact)) / np.log(np.float32(max_distance) / np.float32(exact))
        large = exact + (ratio * np.float32(num_buckets - exact)).astype(np.int32)
    return np.where(n < exact, n, np.minimum(large, num_buckets - 1))


def parameter_shapes(c):
    m, nd = c["model_dim"], c["num_heads"] * c["head_dim"]
    shapes = {"embedding": (c["vocab_size"], m), "final_norm.scale": (m,)}
    for i in range(c["num_layers"]):
        p = f"layers.{i}."
        shapes.update({p + "attention_norm.scale": (m,), p + "attention.wq": (m, nd), p + "attention.wk": (m, nd),
                       p + "attention.wv": (m, nd), p + "attention.wo": (nd, m),
                       p + "attention.relative_bias": (c["num_heads"], c["relative_buckets"]), p + "ffn_norm.scale": (m,)})
        if c["num_experts"] > 0 and i % 2 == 0:
            e, h = c["num_experts"], c["moe_hidden_dim"]
            shapes.update({p + "moe.gate": (m, e), p + "moe.wi": (e, m, h), p + "moe.wo": (e, h, m)})
        else:
            h = c["ff_dim"]
            shapes.update({p + "ffn.wi_gate": (m, h), p + "ffn.wi_linear": (m, h), p + "ffn.wo": (h, m)})
    return shapes


def init_parameters(c, rng, router_scale):
    params = {}
    m, d, n = c["model_dim"], c["head_dim"], c["num_heads"]
    for name, shape in sorted(parameter_shapes(c).items()):
        leaf = ".".join(name.split(".")[-2:])
        if name == "embedding":
            value = rng.standard_normal(shape)
        elif leaf == "attention.wq":
            value = rng.standard_normal(shape) * (m * d) ** -0.5
        elif leaf in ("attention.wk", "attention.wv"):
            value = rng.standard_normal(shape) * m ** -0.5
        elif leaf == "attention.wo":
            value = rng.standard_normal(shape) * (n * d) ** -0.5
        elif leaf == "attention.relative_bias":
            value = rng.standard_normal(shape) * (n * c["relative_buckets"]) ** -0.5
        elif leaf in ("ffn.wi_gate", "ffn.wi_linear", "moe.wi"):
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / m)
        elif leaf == "moe.gate":
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / m) * router_scale
        elif leaf in ("ffn.wo", "moe.wo"):
            value = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / shape[-2])
        else:  # norm scales: perturbed around 1 so that their gradients are exercised
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        params[name] = value.astype(np.float32)
    return params


def rms_norm(x, scale, eps):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * scale


def no_constraint(x, _name):
    return x


def forward(params, c, tokens, targets, paddings, segment_ids, constrain=no_constraint):
    """The loss and (logits, CE, z-loss, summed aux loss). `constrain(x, name)` is called on the MoE
    layers' routed tensors so that a caller can place them on a device mesh (Scripts/gspmd): "groups"
    for [G, S, …] tensors (tokens, router logits, paddings, the gating's combine and dispatch
    tensors), "by_group" and "by_expert" for the [E, G, C, M] tensors before and after the exchange
    between groups and experts (GShard's all-to-alls), "expert_hidden" for [E, G, C, H]. The default
    leaves them alone."""
    b, t = tokens.shape
    m, n, d = c["model_dim"], c["num_heads"], c["head_dim"]
    eps = c["rmsnorm_epsilon"]
    nonpad = 1.0 - paddings
    visible = ((segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] != 0)
               & (np.arange(t)[:, None] >= np.arange(t)[None, :])[None])  # [B, T(q), T(k)]
    buckets = relative_bucket(np.arange(t)[:, None] - np.arange(t)[None, :], c["relative_buckets"], c["relative_max_distance"])
    x = params["embedding"][tokens]
    aux_total = jnp.float32(0)
    for i in range(c["num_layers"]):
        p = f"layers.{i}."
        y = rms_norm(x, params[p + "attention_norm.scale"], eps)
        q = jnp.einsum("btm,mk->btk", y, params[p + "attention.wq"]).reshape(b, t, n, d)
        k = jnp.einsum("btm,mk->btk", y, params[p + "attention.wk"]).reshape(b, t, n, d)
        v = jnp.einsum("btm,mk->btk", y, params[p + "attention.wv"]).reshape(b, t, n, d)
        logits = jnp.einsum("bqnd,bknd->bnqk", q, k) + params[p + "attention.relative_bias"][:, buckets][None]
        logits = jnp.where(visible[:, None], logits, LARGE_NEGATIVE)
        if c["attention_extra_logit"]:
            peak = jax.lax.stop_gradient(jnp.maximum(jnp.max(logits, axis=-1, keepdims=True), 0.0))
            e = jnp.exp(logits - peak)
            probs = e / (jnp.exp(-peak) + jnp.sum(e, axis=-1, keepdims=True))
        else:
            probs = jax.nn.softmax(logits, axis=-1)
        o = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, t, n * d)
        h = x + jnp.einsum("btk,km->btm", o, params[p + "attention.wo"])
        y = rms_norm(h, params[p + "ffn_norm.scale"], eps)
        if c["num_experts"] > 0 and i % 2 == 0:
            g = c["num_groups"]
            s = b * t // g
            yg = constrain(y.reshape(g, s, m), "groups")
            gate_logits = constrain(jnp.einsum("gsm,me->gse", yg, params[p + "moe.gate"]).astype(jnp.float32), "groups")
            aux, combine, dispatch, _ = top2_gating_on_logits(
                constrain(jnp.asarray(paddings).reshape(g, s), "groups"), gate_logits, c["num_experts"], c["expert_capacity"],
                jnp.float32, second_expert_policy="all", legacy_mtf_behavior=True, capacity_factor=c["capacity_factor"])
            combine, dispatch = constrain(combine, "groups"), constrain(dispatch, "groups")
            act = (lambda z: jax.nn.gelu(z, approximate=True)) if c["moe_activation"] == "gelu_tanh" else jax.nn.relu
            expert_in = constrain(constrain(jnp.einsum("gsec,gsm->egcm", dispatch, yg), "by_group"), "by_expert")
            hidden = constrain(act(jnp.einsum("egcm,emh->egch", expert_in, params[p + "moe.wi"])), "expert_hidden")
            out = constrain(constrain(jnp.einsum("egch,ehm->egcm", hidden, params[p + "moe.wo"]), "by_expert"), "by_group")
            ffn = jnp.einsum("gsec,egcm->gsm", combine, out).reshape(b, t, m) * nonpad[:, :, None]
            aux_total = aux_total + aux
        else:
            yp = y * nonpad[:, :, None]
            gate = jax.nn.gelu(jnp.einsum("btm,mh->bth", yp, params[p + "ffn.wi_gate"]), approximate=True)
            linear = jnp.einsum("btm,mh->bth", yp, params[p + "ffn.wi_linear"])
            ffn = jnp.einsum("bth,hm->btm", gate * linear, params[p + "ffn.wo"])
        x = h + ffn
    x = rms_norm(x, params["final_norm.scale"], eps) * (m ** -0.5)
    logits = jnp.einsum("btm,vm->btv", x, params["embedding"])
    log_z = jax.scipy.special.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[:, :, None], axis=-1)[:, :, 0]
    ce = jnp.sum((log_z - target_logit) * nonpad) / (b * t)
    z = jnp.sum(log_z ** 2 * nonpad) / (b * t)
    loss = ce + c["z_loss_weight"] * z + c["aux_loss_weight"] * aux_total
    return loss, (logits, ce, z, aux_total)


def make(name, c, b, t, seed, pad_positions=(), segments=None, router_scale=1.0):
    rng = np.random.default_rng(seed)
    params = init_parameters(c, rng, router_scale)
    tokens = rng.integers(0, c["vocab_size"], size=(b, t)).astype(np.int32)
    targets = rng.integers(0, c["vocab_size"], size=(b, t)).astype(np.int32)
    paddings = np.zeros((b, t), np.float32)
    for row, col in pad_positions:
        paddings[row, col] = 1.0
    segment_ids = np.asarray(segments, np.int32) if segments is not None else (1 - paddings).astype(np.int32)
    fn = lambda p: forward(p, c, tokens, targets, paddings, segment_ids)  # noqa: E731
    (loss, (logits, ce, z, aux)), grads = jax.value_and_grad(fn, has_aux=True)(params)
    tensors = {"input.tokens": tokens, "input.targets": targets, "input.paddings": paddings,
               "expected.logits": logits, "expected.ce_loss": np.float32(ce), "expected.z_loss": np.float32(z),
               "expected.aux_loss": np.float32(aux), "expected.loss": np.float32(loss)}
    if segments is not None:
        tensors["input.segment_ids"] = segment_ids
    for key, value in params.items():
        tensors["param." + key] = value
        tensors["expected.grad." + key] = grads[key]
    write_fixture(os.path.join(HERE, f"glam_lm_{name}.safetensors"), "glam_lm", c, SOURCE, tensors)
    return float(loss)


def config(vocab, m, layers, n, d, ff, e, moe_h=None, cf=2.0, groups=1, act="gelu_tanh", extra=True):
    return {"vocab_size": vocab, "model_dim": m, "num_layers": layers, "num_heads": n, "head_dim": d, "ff_dim": ff,
            "moe_hidden_dim": moe_h or ff, "num_experts": e, "expert_capacity": None, "capacity_factor": cf,
            "num_groups": groups, "moe_activation": act, "relative_buckets": 32, "relative_max_distance": 128,
            "attention_extra_logit": extra, "rmsnorm_epsilon": 1e-6, "z_loss_weight": 1e-4, "aux_loss_weight": 0.01}


def main():
    # A dense model with padding at the end of one row.
    make("dense", config(64, 16, 2, 2, 8, 32, 0), b=2, t=12, seed=1, pad_positions=[(1, 10), (1, 11)])
    # A MoE model (layers 0 and 2 MoE) with padding, no drops at capacity factor 4.
    make("moe", config(64, 16, 3, 2, 8, 32, 4, moe_h=24, cf=4.0, groups=2), b=2, t=8, seed=2, pad_positions=[(0, 7)])
    # Token drops: capacity factor 0.5 and a sharp router, ReLU experts.
    make("moe_drops", config(48, 16, 2, 2, 8, 24, 4, cf=0.5, act="relu"), b=2, t=8, seed=3, pad_positions=[(1, 7)],
         router_scale=6.0)
    # Packed segments and long distances (T = 160 reaches the last relative bucket), no extra logit.
    segments = [[1] * 70 + [2] * 80 + [0] * 10]
    make("packed_long", config(40, 8, 2, 2, 4, 16, 2, cf=2.0, extra=False), b=1, t=160, seed=4,
         pad_positions=[(0, j) for j in range(150, 160)], segments=segments)


if __name__ == "__main__":
    main()
