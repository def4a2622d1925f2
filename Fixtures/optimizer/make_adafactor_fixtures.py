#!/usr/bin/env python3
"""Golden fixtures of kind `adafactor_step` (the "Golden fixtures" article) from optax's own adafactor
(an independent implementation), configured as GLaM's Adafactor (the "Training" article):
decay_rate=0.8 (rho_t = 1 - (t+1)^-0.8), no momentum, clipping_threshold=1.0,
multiply_by_parameter_scale, eps=1e-30, parameter-scale floor 1e-3, factored second moments.

optax names its factored statistics by which dimension is largest; they are mapped here to the
contract's `vr` (mean of g^2 over the last axis, shape [..., R]) and `vc` (mean over the second to
last axis, shape [..., C]) by their shapes. For [R, C] weights the two agree exactly in value
(mean(vr) = mean(vc)); weights whose largest axis is not one of the last two are not used.

Run: pip install -r Fixtures/requirements.txt && python3 Fixtures/optimizer/make_adafactor_fixtures.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from fixture_io import write_fixture  # noqa: E402

SOURCE = f"optax {optax.__version__} adafactor under jax {jax.__version__} (CPU, float32); Fixtures/optimizer/make_adafactor_fixtures.py"
SHAPES = {"matrix": (128, 256), "tall": (256, 128), "vector": (64,), "small": (8, 16), "experts": (2, 128, 160)}


def factored_dims(shape, factored, min_dim):
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")
    if shape[order[-2]] < min_dim:
        return None
    return int(order[-2]), int(order[-1])


def make(name, step, learning_rate, factored=True, min_dim=128, scale_by_parameter=True, grad_scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(rng.standard_normal(s).astype(np.float32) * 0.05) for k, s in SHAPES.items()}
    tx = optax.adafactor(learning_rate=learning_rate, min_dim_size_to_factor=min_dim, decay_rate=0.8, decay_offset=0,
                         multiply_by_parameter_scale=scale_by_parameter, clipping_threshold=1.0, momentum=None,
                         eps=1e-30, factored=factored)
    state = tx.init(params)
    # Run `step` earlier updates (with their own random gradients) to build up statistics.
    for _ in range(step):
        grads = {k: jnp.asarray(rng.standard_normal(s).astype(np.float32) * grad_scale) for k, s in SHAPES.items()}
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    grads = {k: jnp.asarray(rng.standard_normal(s).astype(np.float32) * grad_scale) for k, s in SHAPES.items()}
    # Make one gradient large and uneven so that update clipping engages.
    grads["small"] = grads["small"].at[0, 0].set(100.0 * grad_scale)
    before_state = state
    updates, state = tx.update(grads, state, params)
    after = optax.apply_updates(params, updates)

    tensors = {}
    for key, shape in SHAPES.items():
        tensors[f"param.{key}"] = params[key]
        tensors[f"input.grad.{key}"] = grads[key]
        tensors[f"expected.param.{key}"] = after[key]
        dims = factored_dims(shape, factored, min_dim)
        for prefix, source in (("input.state", before_state[0]), ("expected.state", state[0])):
            if prefix == "input.state" and step == 0:
                continue  # zeros: the contract makes the input state optional
            if dims is None:
                tensors[f"{prefix}.{key}.v"] = source.v[key]
            else:
                row, col = np.asarray(source.v_row[key]), np.asarray(source.v_col[key])
                leading = shape[:-2]
                vr_shape, vc_shape = leading + (shape[-2],), leading + (shape[-1],)
                if row.shape == vr_shape and (col.shape == vc_shape or shape[-1] == shape[-2]):
                    vr, vc = row, col
                else:
                    vr, vc = col, row
                assert vr.shape == vr_shape and vc.shape == vc_shape, (key, row.shape, col.shape)
                tensors[f"{prefix}.{key}.vr"] = vr
                tensors[f"{prefix}.{key}.vc"] = vc
    config = {"step": step, "learning_rate": learning_rate, "decay_pow": 0.8, "clipping_threshold": 1.0,
              "multiply_by_parameter_scale": scale_by_parameter, "epsilon1": 1e-30, "epsilon2": 1e-3,
              "factored": factored, "min_dim_size_to_factor": min_dim}
    write_fixture(os.path.join(HERE, f"adafactor_step_{name}.safetensors"), "adafactor_step", config, SOURCE, tensors)


def main():
    make("first", step=0, learning_rate=0.01, seed=1)
    make("step5", step=5, learning_rate=0.01, seed=2)
    make("step40_decayed", step=40, learning_rate=0.004, seed=3, grad_scale=0.01)
    make("unfactored", step=3, learning_rate=0.01, factored=False, seed=4)
    make("no_parameter_scale", step=2, learning_rate=0.001, scale_by_parameter=False, min_dim=8, seed=5)


if __name__ == "__main__":
    main()
