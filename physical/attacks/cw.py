"""Carlini and Wagner's L2 attack (2017), with a binary search over c per image.

Optimises ``w`` with ``x' = (tanh(w) + 1) / 2`` (always in the box) by Adam on

    ||x' - x||_2^2 + c f(x'),   f(x') = max(Z_y - max_{i != y} Z_i, -kappa)        (untargeted)
                                 f(x') = max(max_{i != t} Z_i - Z_t, -kappa)        (targeted at t)

``Z`` the logits. Each of ``search_steps`` rounds restarts Adam from x and
keeps, per image, the smallest-L2 success seen; then c moves by binary search
(ten times larger while no success bounds it from above).

Printed images are 8-bit: a perturbation that just crosses the decision
boundary often falls back across it when rounded. With ``grid8`` (the default)
success is judged on the image rounded to 8 bits, and that rounded image is
what is kept, so the returned image is adversarial exactly as it is saved.
Images never attacked successfully are returned unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from ..photo_io import quantize_8bit

CW_STEPS = 100
CW_SEARCH_STEPS = 5
CW_CONFIDENCE = 0.0
CW_C0 = 0.1          # c of the first round; Carlini and Wagner start at 1e-3 with 9 rounds
CW_LR = 0.01


def margin(logits: torch.Tensor, label: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far past the boundary each image is: ``max_{i != y} Z_i - Z_y`` (untargeted) or
    ``Z_t - max_{i != t} Z_i`` (targeted). Positive means adversarial. (N, C), (N,) -> (N,)."""
    own = logits.gather(1, label[:, None])[:, 0]
    other = logits.scatter(1, label[:, None], -torch.inf).amax(dim=1)
    return own - other if targeted else other - own


def cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, confidence: float = CW_CONFIDENCE,
       steps: int = CW_STEPS, search_steps: int = CW_SEARCH_STEPS, c: float = CW_C0, lr: float = CW_LR,
       target: torch.Tensor | None = None, grid8: bool = True) -> torch.Tensor:
    """Carlini-Wagner L2 (module docstring); ``target`` (N,) makes it targeted at those classes.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels.
        - Output: (N, 3, H, W) in [0, 1]; on the 8-bit grid where an attack succeeded and ``grid8``.
    """
    if steps < 1 or search_steps < 1:
        raise ValueError(f"steps and search_steps must be at least 1, got {steps}, {search_steps}")
    if confidence < 0:
        raise ValueError(f"confidence must be at least 0, got {confidence}")
    x = x.detach()
    n = x.shape[0]
    label, targeted = (y, False) if target is None else (target, True)
    w0 = torch.atanh((2 * x - 1) * (1 - 1e-6))
    const = torch.full((n,), float(c), device=x.device)
    lower = torch.zeros(n, device=x.device)
    upper = torch.full((n,), torch.inf, device=x.device)
    best, best_l2 = x.clone(), torch.full((n,), torch.inf, device=x.device)

    for _ in range(search_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            with torch.enable_grad():
                x_adv = (torch.tanh(w) + 1) / 2
                l2 = (x_adv - x).flatten(1).pow(2).sum(1)
                logits = model(x_adv)
                f = (-margin(logits, label, targeted)).clamp(min=-confidence)
                opt.zero_grad()
                (l2 + const * f).sum().backward()
            with torch.no_grad():
                # Judge the image as it will be saved: rounded to 8 bits, or as it is.
                cand = quantize_8bit(x_adv) if grid8 else x_adv.detach()
                cand_l2 = (cand - x).flatten(1).pow(2).sum(1)
                # The float image's logits are at hand; only the rounded one needs a pass of its own.
                past = margin(model(cand) if grid8 else logits.detach(), label, targeted)
                ok = (past > 0) & (past >= confidence)
                better = ok & (cand_l2 < best_l2)
                best[better], best_l2[better] = cand[better], cand_l2[better]
                found |= ok
            opt.step()
        with torch.no_grad():
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
    return best
