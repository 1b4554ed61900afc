"""The paper's three attacks (Kurakin, Goodfellow, Bengio 2016, section 2).

Images are tensors in [0, 1], NCHW; ``eps`` and ``alpha`` are in the same
units (the paper's eps = 8 intensity levels is ``8 / 255`` here). Every
function is pure: the model is used as it is (put it in eval mode), only the
gradient with respect to the input is computed, and no parameter ``.grad`` is
touched.

- :func:`fast`: ``clip01(x + eps * sign(grad J(x, y)))`` (FGSM).
- :func:`basic_iterative`: ``x_{n+1} = Clip_{x,eps}(x_n + alpha * sign(grad J(x_n, y)))``.
- :func:`least_likely`: ``x_{n+1} = Clip_{x,eps}(x_n - alpha * sign(grad J(x_n, y_LL)))``
  with ``y_LL = argmin p(y | x)`` taken once from the clean image.

:func:`attack_grid` computes every (method, eps) pair at once, with the same
results as calling the functions one eps at a time but far fewer gradients.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("fast", "bim", "ll")
# The paper's order and names, for every table, plot and label.
METHOD_TITLES = {"fast": "fast (FGSM)", "bim": "basic iterative", "ll": "iterative least-likely"}
METHOD_SHORT = {"fast": "fast", "bim": "basic iter.", "ll": "least-likely"}


def method_rank(method: str) -> int:
    """Position in the paper's order (fast, basic iterative, least-likely); unknown names last."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def eps_steps(eps: float) -> int:
    """The paper's number of iterations: ``floor(min(eps*255 + 4, 1.25 * eps*255))``.

    ``eps`` is in [0, 1]; eps 2, 4, 8, 16 (/255) give 2, 5, 10, 20 steps.
    """
    # Round first: 4/255*255 is 3.9999999999999996 in floating point.
    levels = round(eps * 255, 6)
    return math.floor(min(levels + 4, 1.25 * levels))


def clip_eps(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """``Clip_{X,eps}``: ``min(1, x + eps, max(0, x - eps, x_adv))``, per pixel."""
    return torch.minimum(torch.clamp(x + eps, max=1.0), torch.maximum(torch.clamp(x - eps, min=0.0), x_adv))


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                   direction: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at ``x`` and the gradient of ``sum_i direction_i * CE(model(x_i), target_i)``.

    x: (N, 3, H, W); target: (N,) class indices; direction: (N,) of +1/-1 or None.
    The per-image sum (not the mean) makes each image's gradient independent of
    the batch it is in. Returns logits (N, C) and the gradient (N, 3, H, W).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x)
        losses = F.cross_entropy(logits, target, reduction="none")
        if direction is not None:
            losses = losses * direction
        (grad,) = torch.autograd.grad(losses.sum(), x)
    return logits.detach(), grad


def fast(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method. x: (N, 3, H, W) in [0, 1]; y: (N,). Returns (N, 3, H, W)."""
    _, grad = input_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp(0.0, 1.0)


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
                 alpha: float = 1 / 255, steps: int | None = None) -> torch.Tensor:
    """Iterative least-likely class method; the target is fixed from the clean x."""
    y_ll = least_likely_class(model, x)
    return _iterate(model, x, y_ll, eps, alpha, eps_steps(eps) if steps is None else steps, -1.0)


def attack_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: Iterable[float],
                methods: Sequence[str] = METHODS, alpha: float = 1 / 255,
                steps: int | None = None) -> dict[tuple[str, float], torch.Tensor]:
    """Every (method, eps) adversarial batch, sharing all the work that can be shared.

    x: (N, 3, H, W) in [0, 1]; y: (N,) true labels. Returns {(method, eps): (N, 3, H, W)}.
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
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown attack method(s) {unknown}; choose from {METHODS}")
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
        n_steps = {e: eps_steps(e) if steps is None else steps for e in eps_list}
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


EPS_MIN, EPS_MAX = 1, 64


def parse_eps_levels(values: str | Iterable[int | float | str]) -> list[int]:
    """Eps in 0-255 levels from ``"2,4,8,16"`` or a sequence; each a whole number in 1..64.

    Raises ValueError naming the bad value. Returns sorted unique levels.
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    levels: list[int] = []
    for item in items:
        text = str(item).strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value == value and value.is_integer() and EPS_MIN <= value <= EPS_MAX):
            raise ValueError(f"eps '{text}' is not a whole number of intensity levels in "
                             f"{EPS_MIN}..{EPS_MAX} (the paper uses 2,4,8,16)")
        levels.append(int(value))
    if not levels:
        raise ValueError("no eps given; e.g. --eps 2,4,8,16")
    return sorted(set(levels))
