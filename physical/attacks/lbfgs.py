"""Box-constrained L-BFGS (Szegedy et al. 2014, "Intriguing properties of neural networks").

Minimise ``c |r|_2^2 + CE(model(x + r), t)`` subject to ``x + r`` in [0, 1]^m with
scipy's L-BFGS-B and the model's gradient, for a target class ``t`` (the
least-likely class of the clean image unless given). A line search over ``c``
per image looks for the smallest ``r`` that still reaches the target: a larger
``c`` weighs the perturbation more, so ``c`` grows tenfold while the target is
reached and shrinks tenfold while it is not, then bisects (geometrically)
between the two. Of every ``r`` that reached the target, the smallest is kept.

Each image gets its own L-BFGS-B run (``max_iter`` iterations at most): one run
over the whole batch as one long vector would share its curvature pairs among
unrelated images and need about N times the iterations to reach the same
minima (measured: 4 images, 300 joint iterations against 100 each). The runs
go in lockstep, so that the model sees every image's point in one batch, and
the line search over c is batched too: every image takes its own c at once.

With ``grid8`` (the default) success is judged on the image rounded
to 8 bits, and that rounded image is kept, so the returned image reaches the
target exactly as it is saved. Images that never reach it are returned unchanged.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from ..photo_io import quantize_8bit
from .iterative import least_likely_class
from .options import Option

LBFGS_C0 = 1.0
LBFGS_SEARCH_STEPS = 6
LBFGS_STEPS = 100

OPTIONS = (
    Option("target", "ll", "the class it aims at (Szegedy et al.'s attack is targeted): ll, the least-likely class "
           "of the clean image, or all (one variant per class)", kind=str, choices=("ll", "all"), shown=True),
    Option("search_steps", LBFGS_SEARCH_STEPS, "values of c tried per image (line search)", low=1),
    Option("max_iter", LBFGS_STEPS, "L-BFGS-B iterations at most per value of c", low=1),
)


def batched_objective(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: torch.Tensor
                      ) -> Callable[[list[int], list[np.ndarray]], list[tuple[float, np.ndarray]]]:
    """``(images i, points v_i) -> [(f_i, grad f_i)]`` of ``c_i |x'_i - x_i|^2 + CE(model(x'_i), t_i)``,
    the points on float64 vectors (what scipy's L-BFGS-B takes), all through the model at once.

    Shape: x (N, 3, H, W); target, c (N,).
    """
    x = x.detach()

    def evaluate(idx: list[int], points: list[np.ndarray]) -> list[tuple[float, np.ndarray]]:
        xi = x[idx]
        xa = torch.from_numpy(np.stack(points)).view(xi.shape).to(device=x.device, dtype=x.dtype)
        with torch.enable_grad():
            xa.requires_grad_(True)
            losses = c[idx].to(x) * (xa - xi).flatten(1).pow(2).sum(1) + \
                F.cross_entropy(model(xa), target[idx], reduction="none")
            (grad,) = torch.autograd.grad(losses.sum(), xa)
        grad = grad.detach().cpu().double().numpy().reshape(len(idx), -1)
        return [(float(f), g) for f, g in zip(losses.detach().cpu().tolist(), grad)]

    return evaluate


def lbfgs_objective(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: float
                    ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``v -> (f, grad f)`` for one image (x: (1, 3, H, W), target: (1,)): the function scipy minimises."""
    evaluate = batched_objective(model, x, target, torch.tensor([c]))
    return lambda v: evaluate([0], [v])[0]


class _Lockstep:
    """Gathers the points that N concurrent L-BFGS-B runs ask about and answers them in one batch."""

    def __init__(self, n: int, evaluate: Callable[[list[int], list[np.ndarray]], list[Any]]) -> None:
        self.live, self.evaluate = n, evaluate
        self.asked: dict[int, np.ndarray] = {}
        self.answers: dict[int, Any] = {}
        self.cv = threading.Condition()

    def _answer_all(self) -> None:
        idx = sorted(self.asked)
        try:
            out = self.evaluate(idx, [self.asked[i] for i in idx])
        except BaseException as exc:         # every waiting run must wake up and fail
            out = [exc] * len(idx)
        self.answers.update(zip(idx, out))
        self.asked.clear()
        self.cv.notify_all()

    def ask(self, i: int, v: np.ndarray) -> Any:
        with self.cv:
            self.asked[i] = v
            if len(self.asked) == self.live:
                self._answer_all()
            self.cv.wait_for(lambda: i in self.answers)
            answer = self.answers.pop(i)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def finished(self) -> None:
        with self.cv:
            self.live -= 1
            if self.asked and len(self.asked) == self.live:
                self._answer_all()


def lbfgs_minimize(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: torch.Tensor,
                   max_iter: int = LBFGS_STEPS) -> torch.Tensor:
    """Per image, scipy's L-BFGS-B on ``c_i |x'_i - x_i|^2 + CE(model(x'_i), t_i)`` over x' in [0, 1], from x.

    The runs go in lockstep (one thread each): the points they ask about at the same time
    go through the model as one batch.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; target: (N,); c: (N,).
        - Output: (N, 3, H, W), the minimisers found.
    """
    x = x.detach()
    n = x.shape[0]
    x0 = x.cpu().double().numpy().reshape(n, -1)
    bounds = scipy.optimize.Bounds(np.zeros(x0.shape[1]), np.ones(x0.shape[1]))
    lockstep = _Lockstep(n, batched_objective(model, x, target, c))
    found: list[np.ndarray | BaseException] = [x0[i] for i in range(n)]

    def run(i: int) -> None:
        try:
            found[i] = scipy.optimize.minimize(lambda v: lockstep.ask(i, v), x0[i], jac=True, method="L-BFGS-B",
                                               bounds=bounds, options={"maxiter": max_iter}).x
        except BaseException as exc:
            found[i] = exc
        finally:
            lockstep.finished()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in found:
        if isinstance(r, BaseException):
            raise r
    return torch.from_numpy(np.stack(found)).view(x.shape).to(device=x.device, dtype=x.dtype)


def lbfgs(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None, c: float = LBFGS_C0,
          search_steps: int = LBFGS_SEARCH_STEPS, max_iter: int = LBFGS_STEPS, grid8: bool = True) -> torch.Tensor:
    """Szegedy's box-constrained L-BFGS with a line search over c (module docstring).

    Shape:
        - x: (N, 3, H, W) in [0, 1]; target: (N,) classes, or None for the least-likely class.
        - Output: (N, 3, H, W) in [0, 1]; on the 8-bit grid where the target was reached and ``grid8``.
    """
    if search_steps < 1 or max_iter < 1:
        raise ValueError(f"search_steps and max_iter must be at least 1, got {search_steps}, {max_iter}")
    x = x.detach()
    target = least_likely_class(model, x) if target is None else target
    n = x.shape[0]
    const = torch.full((n,), float(c), device=x.device)
    good = torch.zeros(n, device=x.device)                 # largest c that reached the target
    bad = torch.full((n,), torch.inf, device=x.device)     # smallest c that did not
    best, best_l2 = x.clone(), torch.full((n,), torch.inf, device=x.device)
    for _ in range(search_steps):
        x_adv = lbfgs_minimize(model, x, target, const, max_iter)
        with torch.no_grad():
            cand = quantize_8bit(x_adv) if grid8 else x_adv
            ok = model(cand).argmax(dim=1) == target
            l2 = (cand - x).flatten(1).pow(2).sum(1)
            better = ok & (l2 < best_l2)
            best[better], best_l2[better] = cand[better], l2[better]
            good = torch.where(ok, torch.maximum(good, const), good)
            bad = torch.where(ok, bad, torch.minimum(bad, const))
            const = torch.where(torch.isinf(bad), const * 10, torch.where(good == 0, const / 10, (good * bad).sqrt()))
    return best
