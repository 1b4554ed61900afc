"""Projected gradient descent with a random start and restarts (Madry et al. 2018), L-infinity.

``x_0 = Clip_{x,eps}(x + U(-eps, eps))``, then ``steps`` times
``x_{n+1} = Clip_{x,eps}(x_n + alpha sign(grad J(x_n, y)))`` with ``alpha = 2.5 eps / steps``
(the paper's choice: enough to cross the ball and back). With ``restarts > 1``
the attack runs from that many random starts and keeps, per image, the result
with the highest loss. The basic iterative method is PGD without the random start.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gradient import clip_eps, input_gradient
from .seeds import Seed, offset, uniform_like

PGD_STEPS = 40
PGD_RESTARTS = 1


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = PGD_STEPS,
        restarts: int = PGD_RESTARTS, alpha: float | None = None, seed: Seed = 0) -> torch.Tensor:
    """L-infinity PGD (module docstring); ``alpha=None`` is ``2.5 eps / steps``.

    The random start of restart r is drawn from ``torch.Generator().manual_seed(seed + r)``
    as ``uniform_(-eps, eps)`` over x's shape: restart 0 starts where torchattacks' PGD
    starts after ``torch.manual_seed(seed)`` (on the CPU). With one seed per image
    (:mod:`.seeds`), image i's start is drawn alone from ``seed[i] + r``.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels.
        - Output: (N, 3, H, W) in [0, 1], within eps of x.
    """
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be at least 1, got {steps}, {restarts}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    best, best_loss = x.clone(), torch.full((x.shape[0],), -torch.inf, device=x.device)
    for r in range(restarts):
        start = uniform_like(x, -eps, eps, offset(seed, r))
        x_adv = (x + start).clamp(0, 1)
        for _ in range(steps):
            _, grad = input_gradient(model, x_adv, y)
            x_adv = clip_eps(x_adv + alpha * grad.sign(), x, eps)
        with torch.no_grad():
            loss = F.cross_entropy(model(x_adv), y, reduction="none")
        better = loss > best_loss
        best[better], best_loss[better] = x_adv[better], loss[better]
    return best
