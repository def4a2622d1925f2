#!/usr/bin/env python3
"""Golden fixtures of kinds `top2_gating` and `moe_layer` (the "Golden fixtures" article).

Independent reference: praxis' own `gshard_utils.top2_gating_on_logits` (praxis 1.4.0) run under
JAX on CPU in float32, and, for the layer, the MoE layer's einsums ("Top-2 gating" article) around it with
gradients of `sum(y * dy) + aux_loss` from `jax.grad`. Nothing here comes from the Swift code.

Run from the repository root (CI does, and fails if the output changes):
    pip install -r Fixtures/requirements.txt && pip install --no-deps praxis==1.4.0
    python3 Fixtures/moe/make_moe_fixtures.py
"""
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
SOURCE = f"praxis 1.4.0 gshard_utils.top2_gating_on_logits under jax {jax.__version__} (CPU, float32); Fixtures/moe/make_moe_fixtures.py"

SPEC_LOGITS = np.array([[
    [2.0, 1.0, 0.0, -1.0], [1.5, 1.4, 0.2, 0.1], [3.0, 0.0, 2.5, 0.0], [0.5, 0.4, 0.3, 0.2],
    [2.2, -0.5, 1.0, 1.9], [1.0, 1.0, 0.0, 0.0], [2.5, 0.1, 0.1, 2.4], [-1.0, 0.0, 3.0, 0.5],
]], dtype=np.float32)
SPEC_PADDINGS = np.array([[0, 0, 0, 1, 0, 0, 0, 0]], dtype=np.float32)


def gating_config(num_experts, expert_capacity=None, capacity_factor=None, legacy=True, cap=0.0):
    return {"num_experts": num_experts, "expert_capacity": expert_capacity, "capacity_factor": capacity_factor,
            "second_expert_policy": "all", "legacy_mtf_behavior": legacy, "gating_logit_cap": cap}


def run_gating(config, logits, paddings):
    aux, combine, dispatch, stats = top2_gating_on_logits(
        None if paddings is None else jnp.asarray(paddings), jnp.asarray(logits), config["num_experts"],
        config["expert_capacity"], jnp.float32, second_expert_policy="all",
        legacy_mtf_behavior=config["legacy_mtf_behavior"], capacity_factor=config["capacity_factor"],
        gating_logit_cap=config["gating_logit_cap"])
    return aux, combine, dispatch, stats


def gating_fixture(name, config, logits, paddings=None):
    aux, combine, dispatch, stats = run_gating(config, logits, paddings)
    tensors = {"input.logits": logits, "expected.combine": combine, "expected.dispatch": dispatch,
               "expected.aux_loss": np.float32(aux), "expected.over_capacity": np.array([stats[0], stats[1]], np.float32)}
    if paddings is not None:
        tensors["input.paddings"] = paddings
    write_fixture(os.path.join(HERE, f"top2_gating_{name}.safetensors"), "top2_gating", config, SOURCE, tensors)


def moe_layer_fixture(name, config, b, t, m, h, seed, pad_positions=(), scale=1.0):
    rng = np.random.default_rng(seed)
    e = config["num_experts"]
    x = rng.standard_normal((b, t, m)).astype(np.float32)
    gate = (rng.uniform(-1, 1, (m, e)) * np.sqrt(3.0 / m) * scale).astype(np.float32)
    wi = (rng.uniform(-1, 1, (e, m, h)) * np.sqrt(3.0 / m)).astype(np.float32)
    wo = (rng.uniform(-1, 1, (e, h, m)) * np.sqrt(3.0 / h)).astype(np.float32)
    dy = rng.standard_normal((b, t, m)).astype(np.float32)
    paddings = np.zeros((b, t), np.float32)
    for row, col in pad_positions:
        paddings[row, col] = 1.0
    g = config["num_groups"]
    s = b * t // g
    act = (lambda v: jax.nn.gelu(v, approximate=True)) if config["activation"] == "gelu_tanh" else jax.nn.relu

    def layer(x, gate, wi, wo):
        xg = x.reshape(g, s, m)
        logits = jnp.einsum("gsm,me->gse", xg, gate).astype(jnp.float32)
        aux, combine, dispatch, _ = run_gating(config, logits, jnp.asarray(paddings).reshape(g, s))
        expert_in = jnp.einsum("gsec,gsm->egcm", dispatch, xg)
        hidden = act(jnp.einsum("egcm,emh->egch", expert_in, wi))
        out = jnp.einsum("egch,ehm->egcm", hidden, wo)
        y = jnp.einsum("gsec,egcm->gsm", combine, out).reshape(b, t, m)
        y = y * (1.0 - jnp.asarray(paddings))[:, :, None]
        return y, aux

    def objective(x, gate, wi, wo):
        y, aux = layer(x, gate, wi, wo)
        return jnp.sum(y * dy) + aux

    y, aux = layer(x, gate, wi, wo)
    grads = jax.grad(objective, argnums=(0, 1, 2, 3))(x, gate, wi, wo)
    tensors = {"input.x": x, "input.paddings": paddings, "input.dy": dy, "param.gate": gate, "param.wi": wi,
               "param.wo": wo, "expected.y": y, "expected.aux_loss": np.float32(aux),
               "expected.grad.x": grads[0], "expected.grad.gate": grads[1], "expected.grad.wi": grads[2],
               "expected.grad.wo": grads[3]}
    write_fixture(os.path.join(HERE, f"moe_layer_{name}.safetensors"), "moe_layer", config,
                  SOURCE.replace("float32)", "float32) and jax.grad"), tensors)


def main():
    # The worked example of the "Top-2 gating" article: padding, capacity rounding (cf 1.0 → C 4) and no rounding (cf 0.5 → C 1).
    gating_fixture("spec_cf1", gating_config(4, capacity_factor=1.0), SPEC_LOGITS, SPEC_PADDINGS)
    gating_fixture("spec_cf05", gating_config(4, capacity_factor=0.5), SPEC_LOGITS, SPEC_PADDINGS)
    gating_fixture("spec_nopad", gating_config(4, capacity_factor=1.0), SPEC_LOGITS)
    rng = np.random.default_rng(2021)
    # Ties everywhere: logits are small integers, so many tokens have equal top choices.
    ties = rng.integers(-1, 2, size=(2, 16, 4)).astype(np.float32)
    gating_fixture("ties", gating_config(4, capacity_factor=1.0), ties, (rng.random((2, 16)) < 0.2).astype(np.float32))
    # Capacity 1 given directly (no factor): heavy overflow.
    gating_fixture("capacity1", gating_config(4, expert_capacity=1), rng.standard_normal((2, 8, 4)).astype(np.float32))
    # A capacity factor below 1.
    gating_fixture("cf025", gating_config(8, capacity_factor=0.25), rng.standard_normal((2, 64, 8)).astype(np.float32),
                   (rng.random((2, 64)) < 0.1).astype(np.float32))
    # legacy_mtf_behavior false: renormalise after dropping, density divided by the real-token share.
    gating_fixture("nonlegacy", gating_config(4, capacity_factor=0.5, legacy=False),
                   rng.standard_normal((2, 16, 4)).astype(np.float32) * 2, (rng.random((2, 16)) < 0.25).astype(np.float32))
    # The tanh logit cap with logits far beyond it.
    gating_fixture("logit_cap", gating_config(8, capacity_factor=2.0, cap=2.0),
                   (rng.standard_normal((1, 32, 8)) * 6).astype(np.float32))
    # A larger GLaM-like case: E = 16, cf 2, padding.
    gating_fixture("glam_like", gating_config(16, capacity_factor=2.0), rng.standard_normal((4, 64, 16)).astype(np.float32),
                   (rng.random((4, 64)) < 0.05).astype(np.float32))

    layer = lambda e, cf, groups, act, legacy=True: {**gating_config(e, capacity_factor=cf, legacy=legacy),
                                                      "num_groups": groups, "activation": act}
    moe_layer_fixture("gelu", layer(4, 2.0, 2, "gelu_tanh"), b=2, t=8, m=16, h=32, seed=1, pad_positions=[(0, 7), (1, 3)])
    moe_layer_fixture("relu_drops", layer(4, 0.5, 1, "relu"), b=2, t=8, m=16, h=24, seed=2, pad_positions=[(1, 7)], scale=4.0)
    moe_layer_fixture("gelu_e8_groups4", layer(8, 1.0, 4, "gelu_tanh"), b=4, t=16, m=32, h=64, seed=3,
                      pad_positions=[(0, 15), (2, 0), (3, 9)], scale=3.0)
    moe_layer_fixture("nonlegacy", layer(4, 0.5, 2, "gelu_tanh", legacy=False), b=2, t=8, m=16, h=16, seed=4,
                      pad_positions=[(0, 2)], scale=3.0)
    # Without padding (for implementations that have no padding input, Scripts/conformance): renormalising after
    # dropping with drops, and a layer with no drops at all. A separate generator keeps the fixtures above unchanged.
    rng = np.random.default_rng(2022)
    gating_fixture("nonlegacy_nopad", gating_config(4, capacity_factor=0.5, legacy=False),
                   rng.standard_normal((2, 16, 4)).astype(np.float32) * 2)
    moe_layer_fixture("nonlegacy_nopad", layer(4, 0.5, 2, "gelu_tanh", legacy=False), b=2, t=8, m=16, h=16, seed=5, scale=3.0)
    moe_layer_fixture("gelu_nopad_cf4", layer(4, 4.0, 1, "gelu_tanh"), b=2, t=8, m=16, h=32, seed=6)


if __name__ == "__main__":
    main()
