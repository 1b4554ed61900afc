"""Projected gradient descent with a random start and restarts (Madry et al. 2018), L-infinity.

``x_0 = Clip_{x,eps}(x + U(-eps, eps))``, then ``steps`` times
``x_{n+1} = Clip_{x,eps}(x_n + alpha sign(grad J(x_n, y)))`` with ``alpha = 2.5 eps / steps``
(the paper's choice: enough to cross the ball and back). With ``restarts > 1``
the attack runs from that many random starts and keeps, per image, the result
with the highest loss. The basic iterative method is PGD without the random start.

Madry et al.'s table also runs PGD on other objectives, each maximised the same way
(and the restart with the highest value kept):

- targeted (``target`` t): ``J = -CE(x, t)``, towards class t;
- ``loss="cw"``: Carlini and Wagner's margin, as Madry et al.'s code has it,
  ``J = -max(Z_y - max_{i != y} Z_i + kappa, 0)`` untargeted and
  ``J = -max(max_{i != t} Z_i - Z_t + kappa, 0)`` targeted (``Z`` the logits); their "CW" is
  kappa 0 and "CW+" a high confidence (kappa 50 on MNIST).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cw import margin
from .gradient import clip_eps, input_gradient
from .options import Option
from .seeds import Seed, offset, uniform_like

PGD_STEPS = 40
PGD_RESTARTS = 1

OPTIONS = (
    Option("steps", PGD_STEPS, "steps, each of 2.5 eps / steps", low=1, flag=True),
    Option("restarts", PGD_RESTARTS, "random starts per image; per image the result with the highest loss is kept",
           low=1, flag=True),
    Option("loss", "ce", "what it maximises: ce (cross-entropy) or cw (Carlini and Wagner's logit margin; with "
           "confidence, Madry et al.'s CW+)", kind=str, choices=("ce", "cw")),
    Option("confidence", 0.0, "kappa, the logit margin the cw loss asks for past the boundary", kind=float, low=0,
           symbol="κ"),
    Option("target", "none", "none (untargeted), ll (targeted at the least-likely class) or all (one variant per "
           "class, each picture attacked towards it)", kind=str, choices=("none", "ll", "all")),
)


def objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str,
              confidence: float) -> torch.Tensor:
    """What PGD maximises, per image (module docstring): (N, C) logits, (N,) labels -> (N,)."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none") if target is None else \
            -F.cross_entropy(logits, target, reduction="none")
    if loss == "cw":
        past = margin(logits, y if target is None else target, target is not None)
        return -(confidence - past).clamp(min=0)
    raise ValueError(f"unknown PGD loss {loss!r}; choose ce or cw")


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = PGD_STEPS,
        restarts: int = PGD_RESTARTS, alpha: float | None = None, seed: Seed = 0, loss: str = "ce",
        confidence: float = 0.0, target: torch.Tensor | None = None) -> torch.Tensor:
    """L-infinity PGD (module docstring); ``alpha=None`` is ``2.5 eps / steps``; ``loss`` ce or cw
    (with ``confidence``), ``target`` (N,) makes it targeted.

    The random start of restart r is drawn from ``torch.Generator().manual_seed(seed + r)``
    as ``uniform_(-eps, eps)`` over x's shape: restart 0 starts where torchattacks' PGD
    starts after ``torch.manual_seed(seed)`` (on the CPU). With one seed per image
    (:mod:`.seeds`), image i's start is drawn alone from ``seed[i] + r``.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y, target: (N,) true labels, target classes.
        - Output: (N, 3, H, W) in [0, 1], within eps of x.
    """
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be at least 1, got {steps}, {restarts}")
    if loss not in ("ce", "cw") or confidence < 0:
        raise ValueError(f"loss must be ce or cw and confidence at least 0, got {loss!r}, {confidence}")
    plain = loss == "ce" and target is None     # the cross-entropy gradient as torchattacks takes it
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    best, best_loss = x.clone(), torch.full((x.shape[0],), -torch.inf, device=x.device)
    for r in range(restarts):
        start = uniform_like(x, -eps, eps, offset(seed, r))
        x_adv = (x + start).clamp(0, 1)
        for _ in range(steps):
            if plain:
                _, grad = input_gradient(model, x_adv, y)
            else:
                with torch.enable_grad():
                    x_in = x_adv.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(objective(model(x_in), y, target, loss, confidence).sum(), x_in)
            x_adv = clip_eps(x_adv + alpha * grad.sign(), x, eps)
        with torch.no_grad():
            value = objective(model(x_adv), y, target, loss, confidence)
        better = value > best_loss
        best[better], best_loss[better] = x_adv[better], value[better]
    return best
