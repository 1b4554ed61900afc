"""Every (method, eps) of the paper's three attacks at once, sharing all the work that can be shared.

:func:`attack_grid` gives the same tensors as calling :func:`~physical.attacks.fast`,
:func:`~physical.attacks.basic_iterative` and :func:`~physical.attacks.least_likely`
one eps at a time, with far fewer gradients (43 instead of 78 for the default grid).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .gradient import clip_eps, input_gradient
from .methods import PAPER_METHODS, eps_steps


def attack_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: Iterable[float],
                methods: Sequence[str] = PAPER_METHODS, alpha: float = 1 / 255,
                steps: int | None = None, step_factor: int = 1) -> dict[tuple[str, float], torch.Tensor]:
    """Every (method, eps) adversarial batch, sharing all the work that can be shared.

    x: (N, 3, H, W) in [0, 1]; y: (N,) true labels. Returns {(method, eps): (N, 3, H, W)}.
    The iterative methods take ``steps`` at every eps, or ``step_factor`` times the paper's rule.
    Equal, to float tolerance, to calling :func:`fast`, :func:`basic_iterative`
    and :func:`least_likely` once per eps, because:

    - the fast method's gradient does not depend on eps: one serves them all;
    - an iterative trajectory moves at most ``alpha`` per step, so its eps clip
      cannot bind before step ``eps / alpha``: until then the trajectories of
      every eps coincide and one gradient per step serves them all; each eps
      branches off the shared trajectory only when its clip may first bind;
    - the basic iterative and least-likely trajectories go through the model
      as one batch (their loss signs differ per image), halving the calls.
    """
    eps_list = sorted(set(float(e) for e in eps_list))
    unknown = [m for m in methods if m not in PAPER_METHODS]
    if unknown:
        raise ValueError(f"unknown attack method(s) {unknown}; choose from {PAPER_METHODS}")
    x = x.detach()
    out: dict[tuple[str, float], torch.Tensor] = {}
    if "fast" in methods:
        logits, grad = input_gradient(model, x, y)
        for e in eps_list:
            out[("fast", e)] = (x + e * grad.sign()).clamp(0.0, 1.0)
    else:
        with torch.no_grad():
            logits = model(x)
    iterative = [m for m in ("bim", "ll") if m in methods]
    if iterative:
        n = x.shape[0]
        targets = {"bim": y, "ll": logits.argmin(dim=1)}
        signs = {"bim": 1.0, "ll": -1.0}
        x_all = torch.cat([x] * len(iterative))
        target = torch.cat([targets[m] for m in iterative])
        direction = torch.cat([torch.full((n,), signs[m], device=x.device) for m in iterative])
        n_steps = {e: step_factor * eps_steps(e) if steps is None else steps for e in eps_list}
        for e, adv in _shared_trajectories(model, x_all, target, direction, n_steps, alpha).items():
            for m, chunk in zip(iterative, adv.split(n)):
                out[(m, e)] = chunk
    return out


def _shared_trajectories(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                         direction: torch.Tensor, n_steps: dict[float, int],
                         alpha: float) -> dict[float, torch.Tensor]:
    """Iterate ``x + alpha * sign(grad)`` for every eps in ``n_steps`` at once.

    One model call per step on the concatenation of the distinct points: the
    shared trajectory (while any unfinished eps cannot yet feel its clip) and
    each eps that has branched off. Returns {eps: (N, 3, H, W)}.
    """
    n = x.shape[0]
    result = {e: x.clone() for e, k in n_steps.items() if k == 0}
    shared, shared_eps = x.clone(), [e for e, k in n_steps.items() if k > 0]
    branches: dict[float, torch.Tensor] = {}
    for k in range(1, max(n_steps.values(), default=0) + 1):
        live_branches = [e for e in branches if n_steps[e] >= k]
        live_shared = [e for e in shared_eps if n_steps[e] >= k]
        points = [branches[e] for e in live_branches] + ([shared] if live_shared else [])
        _, grad = input_gradient(model, torch.cat(points), target.repeat(len(points)),
                                 direction.repeat(len(points)))
        step = (alpha * grad.sign()).split(n)
        for e, s in zip(live_branches, step):
            branches[e] = clip_eps(branches[e] + s, x, e)
        if live_shared:
            moved = shared + step[-1]
            # A trajectory that has moved k*alpha cannot have been clipped by any eps >= k*alpha.
            free = [e for e in live_shared if k * alpha <= e + 1e-9]
            for e in live_shared:
                if e not in free:
                    branches[e] = clip_eps(moved, x, e)
            shared, shared_eps = moved.clamp(0.0, 1.0), free
        for e in n_steps:
            if n_steps[e] == k:
                result[e] = shared if e in shared_eps else branches[e]
    return result
