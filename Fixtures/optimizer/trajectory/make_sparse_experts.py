#!/usr/bin/env python3
"""A 400-step Adafactor trajectory of one stacked expert weight [E, R, C] whose experts are used at
very different rates, from optax's own adafactor (an independent implementation) configured as
GLaM's Adafactor: decay_rate=0.8 (rho_t = 1 - (t+1)^-0.8), no momentum, clipping_threshold=1.0,
multiply_by_parameter_scale, eps=1e-30, parameter-scale floor 1e-3, factored second moments per
expert (min_dim_size_to_factor=8, so that the small weight is factored like a real one).

An expert that computes no token in a step has a zero gradient: its statistics only decay, and
when it is used again its normalised update g/sqrt(v) is large, since v has forgotten the old
gradients. The single-step fixtures (adafactor_step_*) cannot show that; this trajectory does:
  expert 0: used every step;   expert 1: used in about one step in ten;
  expert 2: used in steps 3 and 350 only (an idle run of 346 steps);   expert 3: never used.
The update clipping and the parameter scale are over the whole [E, R, C] tensor, as in praxis.

Not a glam fixture kind (`glam verify` skips it): Tests/GLaMTests/AdafactorTrajectoryTests.swift
replays the gradients through glam's Adafactor and compares every 50 steps.

Tensors: initial [E,R,C]; mask [S,E] (1 where the expert has a gradient); gradients [K,R,C], the
non-zero expert gradients in (step, expert) order; expected.param.step{N} [E,R,C] after N steps;
expected.vr [E,R] and expected.vc [E,C] after the last step.

Run: pip install -r Fixtures/requirements.txt && python3 Fixtures/optimizer/trajectory/make_sparse_experts.py
"""
import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
E, R, C, STEPS, EVERY = 4, 8, 16, 400, 50
LEARNING_RATE = 0.01


def main():
    rng = np.random.default_rng(16)
    initial = (rng.standard_normal((E, R, C)) * 0.05).astype(np.float32)
    mask = np.zeros((STEPS, E), np.float32)
    mask[:, 0] = 1
    mask[:, 1] = rng.random(STEPS) < 0.1
    mask[[3, 350], 2] = 1
    tx = optax.adafactor(learning_rate=LEARNING_RATE, min_dim_size_to_factor=8, decay_rate=0.8, decay_offset=0,
                         multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None, eps=1e-30,
                         factored=True)
    params = jnp.asarray(initial)
    state = tx.init(params)
    gradients, tensors = [], {"initial": initial, "mask": mask}
    for step in range(STEPS):
        g = np.zeros((E, R, C), np.float32)
        for expert in range(E):
            if mask[step, expert]:
                # Rarely used experts see larger gradients (more tokens' worth when they are chosen).
                scale = 0.01 * (1 + 3 * expert)
                g[expert] = (rng.standard_normal((R, C)) * scale).astype(np.float32)
                gradients.append(g[expert])
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        if (step + 1) % EVERY == 0:
            tensors[f"expected.param.step{step + 1}"] = np.asarray(params)
    tensors["gradients"] = np.stack(gradients)
    # optax keeps, per expert, the mean of g^2 over the largest axis (C = 16) as v_row [E, R] and over
    # the second largest (R = 8) as v_col [E, C]: glam's vr (mean over the last axis) and vc.
    v_row, v_col = np.asarray(state[0].v_row), np.asarray(state[0].v_col)
    assert v_row.shape == (E, R) and v_col.shape == (E, C), (v_row.shape, v_col.shape)
    tensors["expected.vr"], tensors["expected.vc"] = v_row, v_col
    metadata = {"source": f"optax {optax.__version__} adafactor under jax {jax.__version__} (CPU, float32); "
                          "Fixtures/optimizer/trajectory/make_sparse_experts.py",
                "config": json.dumps({"steps": STEPS, "every": EVERY, "learning_rate": LEARNING_RATE, "decay_pow": 0.8,
                                      "clipping_threshold": 1.0, "epsilon1": 1e-30, "epsilon2": 1e-3,
                                      "min_dim_size_to_factor": 8}, sort_keys=True)}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(HERE, "sparse_experts.safetensors"), metadata)


if __name__ == "__main__":
    main()
