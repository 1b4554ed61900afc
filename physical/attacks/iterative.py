"""The paper's iterative methods (Kurakin, Goodfellow, Bengio 2016, section 2.2-2.3).

- :func:`basic_iterative`: ``x_{n+1} = Clip_{x,eps}(x_n + alpha * sign(grad J(x_n, y)))``.
- :func:`least_likely`: ``x_{n+1} = Clip_{x,eps}(x_n - alpha * sign(grad J(x_n, y_LL)))``
  with ``y_LL = argmin p(y | x)`` taken once from the clean image.

``alpha`` is one intensity level and the number of steps follows the paper's
rule (:func:`physical.attacks.methods.eps_steps`) unless given.
"""
from __future__ import annotations

import torch
from torch import nn

from .gradient import clip_eps, input_gradient
from .methods import eps_steps
from .options import Option

# bim and ll (make-sheets makes them with attack_grid, which takes the same steps); ll may aim at every class.
OPTIONS = (Option("step_factor", 1, "F times the paper's number of steps (alpha stays one level)", low=1),)
LL_OPTIONS = (*OPTIONS, Option("target", "ll", "the class it aims at: ll, the least-likely class of the clean "
                                                "image (the paper's), or all (one variant per class)", kind=str,
                               choices=("ll", "all")))


def _iterate(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float,
             alpha: float, steps: int, sign: float) -> torch.Tensor:
    x_adv = x.detach().clone()
    for _ in range(steps):
        _, grad = input_gradient(model, x_adv, target)
        x_adv = clip_eps(x_adv + sign * alpha * grad.sign(), x, eps)
    return x_adv


def basic_iterative(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                    alpha: float = 1 / 255, steps: int | None = None) -> torch.Tensor:
    """Basic iterative method; ``steps=None`` uses :func:`eps_steps`. Returns (N, 3, H, W)."""
    return _iterate(model, x, y, eps, alpha, eps_steps(eps) if steps is None else steps, +1.0)


@torch.no_grad()
def least_likely_class(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``argmin_y p(y | x)`` for each image: (N,) class indices."""
    return model(x).argmin(dim=1)


def least_likely(model: nn.Module, x: torch.Tensor, eps: float,
                 alpha: float = 1 / 255, steps: int | None = None, target: torch.Tensor | None = None) -> torch.Tensor:
    """Iterative least-likely class method; the target is fixed from the clean x, or given (N,) to aim
    the same iteration at other classes (``--targets all``)."""
    target = least_likely_class(model, x) if target is None else target
    return _iterate(model, x, target, eps, alpha, eps_steps(eps) if steps is None else steps, -1.0)
