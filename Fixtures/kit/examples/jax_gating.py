#!/usr/bin/env python3
"""Checking a JAX gating function against glam's golden fixtures: praxis' own
`gshard_utils.top2_gating_on_logits` (praxis 1.4.0), which produced the committed fixtures, run
through the kit as any JAX user's function would be. All four expected tensors are compared,
`over_capacity` included (praxis returns it).

    pip install -r Fixtures/requirements.txt && pip install --no-deps praxis==1.4.0
    python3 Fixtures/kit/examples/jax_gating.py [FIXTURE ...]   (default: every top2_gating fixture)
"""
import glob
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))                      # the kit
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))     # Fixtures/, for the praxis loader

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import glam_fixtures as gf  # noqa: E402
from praxis_gating import load_top2_gating  # noqa: E402

top2_gating_on_logits = load_top2_gating()


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "..", "..", "moe", "top2_gating_*.safetensors")))
    failed = 0
    for path in paths:
        fixture = gf.read(path)
        c = fixture.config
        paddings = fixture.inputs.get("paddings")
        aux, combine, dispatch, over = top2_gating_on_logits(
            None if paddings is None else jnp.asarray(paddings), jnp.asarray(fixture.inputs["logits"]), c["num_experts"],
            c["expert_capacity"], jnp.float32, second_expert_policy=c["second_expert_policy"],
            legacy_mtf_behavior=c["legacy_mtf_behavior"], capacity_factor=c["capacity_factor"],
            gating_logit_cap=c["gating_logit_cap"])
        report = gf.compare(fixture, {"combine": np.asarray(combine), "dispatch": np.asarray(dispatch), "aux_loss": np.asarray(aux),
                                      "over_capacity": np.array([over[0], over[1]], np.float32)})
        print(report)
        failed += report.failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
