#!/usr/bin/env python3
"""Checking a PyTorch top-2 gating function against glam's golden fixtures, the way a user would.

`top2_gating` below is an example of user code: GShard top-2 gating written in PyTorch from the
"Top-2 gating" article (choices, renormalisation, capacity, first-come slots with every top-1 choice
ahead of every top-2 choice, combine/dispatch and the load-balancing loss). The last ten lines are
all the checking takes:

    python3 Fixtures/kit/examples/pytorch_gating.py [FIXTURE ...]   (default: every top2_gating fixture)
"""
import glob
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import glam_fixtures as gf  # noqa: E402


def capacity(group_size, num_experts, expert_capacity, capacity_factor):
    c = expert_capacity or 1
    if capacity_factor and capacity_factor > 0:
        auto = math.floor(group_size * capacity_factor / num_experts)
        if c < auto:
            c = 4 * math.ceil(auto / 4)
    return c


def top2_gating(logits, paddings, num_experts, expert_capacity, capacity_factor, legacy_mtf_behavior, gating_logit_cap,
                **_):
    """GShard top-2 gating of logits [G, S, E]; returns combine, dispatch [G, S, E, C] and the aux loss."""
    g, s, e = logits.shape
    if gating_logit_cap:
        logits = gating_logit_cap * torch.tanh(logits / gating_logit_cap)
    p = torch.softmax(logits, dim=-1)
    real = torch.ones(g, s) if paddings is None else 1.0 - paddings
    first = F.one_hot(p.argmax(-1), e).float() * real[..., None]              # ties: lowest index
    second = F.one_hot((p * (1 - F.one_hot(p.argmax(-1), e))).argmax(-1), e).float() * real[..., None]
    g1, g2 = (p * first).sum(-1), (p * second).sum(-1)
    if legacy_mtf_behavior:
        denominator = g1 + g2 + 1e-9
        g1, g2 = g1 / denominator, g2 / denominator
    f = first.mean(dim=1)                                                       # top-1 share before capacity
    share = (p * real[..., None]).mean(dim=1)
    d = 1.0 if legacy_mtf_behavior else real.mean(dim=1, keepdim=True) + 1e-6
    aux = (f * share / d ** 2).mean() * e * e
    c = capacity(s, e, expert_capacity, capacity_factor)
    position1 = torch.cumsum(first, dim=1) - first
    first = first * (position1 < c)
    position2 = torch.cumsum(second, dim=1) - second + first.sum(dim=1, keepdim=True)
    second = second * (position2 < c)
    kept1, kept2 = first.sum(-1), second.sum(-1)
    if not legacy_mtf_behavior:
        g1, g2 = g1 * kept1, g2 * kept2
        total = g1 + g2
        safe = torch.where(total > 0, total, torch.ones_like(total))
        g1, g2 = torch.where(total > 0, g1 / safe, g1), torch.where(total > 0, g2 / safe, g2)
    slots1 = F.one_hot((position1 * first).sum(-1).long(), max(c, 1))[..., :c].float()
    slots2 = F.one_hot((position2 * second).sum(-1).long().clamp(max=max(c - 1, 0)), max(c, 1))[..., :c].float()
    combine = ((g1 * kept1)[..., None, None] * first[..., None] * slots1[:, :, None, :]
               + (g2 * kept2)[..., None, None] * second[..., None] * slots2[:, :, None, :])
    return combine, (combine != 0).float(), aux


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(HERE, "..", "..", "moe", "top2_gating_*.safetensors")))
    failed = 0
    for path in paths:
        fixture = gf.read(path)
        logits = torch.from_numpy(fixture.inputs["logits"])
        paddings = torch.from_numpy(fixture.inputs["paddings"]) if "paddings" in fixture.inputs else None
        combine, dispatch, aux = top2_gating(logits, paddings, **fixture.config)
        report = gf.compare(fixture, {"combine": combine.numpy(), "dispatch": dispatch.numpy(), "aux_loss": aux.numpy()},
                            skip={"over_capacity"})
        print(report)
        failed += report.failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
