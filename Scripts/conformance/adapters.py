"""Thin adapters from glam's golden fixtures to three real top-2 gating implementations.

Each adapter takes router logits [G, S, E] (a torch tensor, possibly requiring grad), optional
paddings [G, S] and settings, calls the implementation once per group (none of them has groups),
and returns the per-group results stacked:
    weights  [G, S, E]       each token's combine weight at each expert (Σ over slots)
    combine  [G, S, E, C]    with slots, where the implementation exposes them (else None)
    aux      []              the load-balancing loss as the implementation computes it, averaged over groups
The adapters add nothing to the gating: what they compute themselves (a logit cap applied before the
call, a mean over groups) is stated where they do it.
"""
import torch

import deepspeed.moe.sharded_moe as ds_moe
import mixture_of_experts.mixture_of_experts as lucidrains_moe
from transformers.models.nllb_moe.configuration_nllb_moe import NllbMoeConfig
from transformers.models.nllb_moe.modeling_nllb_moe import NllbMoeTop2Router, load_balancing_loss_func


def capped(logits, config, settings):
    """glam's optional logit cap, applied by the adapter when settings say so (none of the three has one)."""
    cap = config.get("gating_logit_cap") or 0.0
    if settings.get("apply_logit_cap") and cap > 0:
        return cap * torch.tanh(logits / cap)
    return logits


def deepspeed_top2(logits, paddings, config, settings):
    """deepspeed.moe.sharded_moe.top2gating(logits [S, E], capacity_factor, min_capacity, drop_tokens,
    top2_2nd_expert_sampling); it has no paddings input."""
    logits = capped(logits, config, settings)
    weights, combines, auxes = [], [], []
    for g in range(logits.shape[0]):
        aux, combine, _, _ = ds_moe.top2gating(logits[g].clone(), capacity_factor=settings["capacity_factor"],
                                               min_capacity=settings["min_capacity"], drop_tokens=True,
                                               top2_2nd_expert_sampling=settings["second_expert_sampling"])
        weights.append(combine.sum(-1))
        combines.append(combine)
        auxes.append(aux)
    same = len({c.shape for c in combines}) == 1
    return {"weights": torch.stack(weights), "combine": torch.stack(combines) if same else None,
            "aux": torch.stack(auxes).mean()}


def nllb_top2(logits, paddings, config, settings):
    """transformers' NllbMoeTop2Router.route_tokens (training mode) with an NllbMoeConfig; the aux loss
    is transformers' load_balancing_loss_func on the same logits, as NLLB-MoE's model computes it."""
    e = config["num_experts"]
    nllb = NllbMoeConfig(num_experts=e, d_model=e, expert_capacity=settings["expert_capacity"],
                         second_expert_policy=settings["second_expert_policy"],
                         normalize_router_prob_before_dropping=settings["normalize_before_dropping"],
                         batch_prioritized_routing=settings["batch_prioritized_routing"])
    router = NllbMoeTop2Router(nllb).train()
    logits = capped(logits, config, settings)
    weights, auxes = [], []
    for g in range(logits.shape[0]):
        mask = None
        if paddings is not None and settings["pass_paddings"]:
            mask = paddings[g].bool()
        _, probs = router.route_tokens(logits[g].clone(), torch.float32, mask)
        weights.append(probs)
        attention = None if mask is None else (~mask).long()[None]
        auxes.append(load_balancing_loss_func((logits[g],), e, 2, attention))
    return {"weights": torch.stack(weights), "combine": None, "aux": torch.stack(auxes).mean()}


def lucidrains_top2(logits, paddings, config, settings):
    """mixture_of_experts.Top2Gating (lucidrains, a port of Mesh TensorFlow's _top_2_gating) on input
    x = logits with w_gating = I, so that its raw logits are exactly the fixture's; paddings enter as
    its `importance` (1 = real token)."""
    e = config["num_experts"]
    gate = lucidrains_moe.Top2Gating(e, e, second_policy_train=settings["second_policy"],
                                     capacity_factor_train=settings["capacity_factor"]).train()
    with torch.no_grad():
        gate.w_gating.copy_(torch.eye(e))
    saved = lucidrains_moe.MIN_EXPERT_CAPACITY
    lucidrains_moe.MIN_EXPERT_CAPACITY = settings["min_expert_capacity"]
    try:
        importance = None if paddings is None else 1.0 - paddings
        _, combine, aux = gate(capped(logits, config, settings), importance=importance)
    finally:
        lucidrains_moe.MIN_EXPERT_CAPACITY = saved
    return {"weights": combine.sum(-1), "combine": combine, "aux": aux}
