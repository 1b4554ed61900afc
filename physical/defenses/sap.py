"""Stochastic activation pruning (Dhillon et al. 2018): after every activation, keep a random few units.

For one image's activation map h (all its units), draw r units with replacement with
probability ``p_i = |h_i| / sum_j |h_j|``; a unit drawn at least once is kept and scaled by
``1 / (1 - (1 - p_i)^r)`` (the inverse of its chance to be kept, so the layer is unbiased in
expectation), every other unit is set to 0. r is ``percent`` of the layer's units, per image.
The mask is a draw, not a function of the input's gradient: the pruned network is
differentiable as it is, and an adaptive attacker averages its gradient over draws (EoT,
:class:`~physical.defenses.model.DefendedNet` with ``samples`` > 1), as Athalye et al. did.

:func:`prune_activations` puts it after every ``nn.ReLU`` module of a network (forward
hooks); networks that call ``F.relu`` instead have no module to hook, and are refused.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


def sap(h: Tensor, percent: float, generator: torch.Generator) -> Tensor:
    """One draw of stochastic activation pruning of ``h`` (module docstring).

    Shape: h (N, ...) -> the same shape; each image's units are pruned on their own, r = ceil(percent% of
    the units of one image) draws each.
    """
    n = h.shape[0]
    flat = h.reshape(n, -1)
    mag = flat.detach().abs()
    total = mag.sum(dim=1, keepdim=True)
    r = max(1, int(-(-flat.shape[1] * percent // 100)))
    live = total[:, 0] > 0
    kept = torch.zeros_like(mag)
    if live.any():
        p = mag[live] / total[live]
        idx = torch.multinomial(p, r, replacement=True, generator=generator)
        kept[live] = kept[live].scatter(1, idx, 1.0)
    p_all = torch.where(total > 0, mag / total.clamp_min(1e-30), torch.zeros_like(mag))
    keep_prob = -torch.expm1(r * torch.log1p(-p_all.clamp(max=1 - 1e-7)))        # 1 - (1 - p)^r, stably
    scale = torch.where(kept > 0, 1.0 / keep_prob.clamp_min(1e-30), torch.zeros_like(mag))
    return (flat * scale).reshape(h.shape)


def activation_modules(net: nn.Module) -> list[nn.Module]:
    """The activation modules SAP can reach: every ``nn.ReLU`` of ``net``."""
    return [m for m in net.modules() if isinstance(m, nn.ReLU)]


def prune_activations(net: nn.Module, percent: float, generator: Callable[[Tensor], torch.Generator]) -> list:
    """Put :func:`sap` after every ``nn.ReLU`` of ``net`` (forward hooks; an in-place ReLU is made out of
    place, so that the pruned output is what the next layer sees); ``generator(h)`` gives the generator
    to draw with for a tensor on h's device. Returns the hook handles. ValueError when ``net`` has no
    ``nn.ReLU``."""
    modules = activation_modules(net)
    if not modules:
        raise ValueError("no nn.ReLU module to prune after")
    handles = []
    for m in modules:
        m.inplace = False
        handles.append(m.register_forward_hook(lambda mod, inp, out: sap(out, percent, generator(out))))
    return handles
