"""Carlini and Wagner's attacks (2017): L2 with a binary search over c per image, and L0 and L-infinity.

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

:func:`cw_l0` and :func:`cw_linf` are their attacks on the other two norms:
L0 runs :func:`cw` on a shrinking set of pixels, L-infinity penalises every change past a
threshold tau and lowers tau while it succeeds. Both are 8-bit aware in the same way.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..photo_io import quantize_8bit
from .options import Option

CW_STEPS = 100
CW_SEARCH_STEPS = 5
CW_CONFIDENCE = 0.0
CW_C0 = 0.1          # c of the first round; Carlini and Wagner start at 1e-3 with 9 rounds
CW_LR = 0.01

# The options make-sheets gives each of the three (the rest keep their defaults). ``target``: none
# (untargeted), ll (the least-likely class of the clean image) or all (a variant per class).
_CONFIDENCE = Option("confidence", CW_CONFIDENCE, "kappa, the logit margin past the boundary to reach", kind=float,
                     low=0, symbol="κ", shown=True)
_TARGET = Option("target", "none", "none (untargeted), ll (targeted at the least-likely class) or all (one "
                 "variant per class, each picture attacked towards it)", kind=str, choices=("none", "ll", "all"))
OPTIONS = (
    replace(_CONFIDENCE, flag=True),
    Option("steps", CW_STEPS, "Adam steps (learning rate 0.01) for each value of c", low=1, flag=True),
    Option("search_steps", CW_SEARCH_STEPS, "values of c tried per image, by binary search from c = 0.1", low=1,
           flag=True),
    _TARGET,
)


def margin(logits: torch.Tensor, label: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far past the boundary each image is: ``max_{i != y} Z_i - Z_y`` (untargeted) or
    ``Z_t - max_{i != t} Z_i`` (targeted). Positive means adversarial. (N, C), (N,) -> (N,)."""
    own = logits.gather(1, label[:, None])[:, 0]
    other = logits.scatter(1, label[:, None], -torch.inf).amax(dim=1)
    return own - other if targeted else other - own


def cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, confidence: float = CW_CONFIDENCE,
       steps: int = CW_STEPS, search_steps: int = CW_SEARCH_STEPS, c: float = CW_C0, lr: float = CW_LR,
       target: torch.Tensor | None = None, grid8: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Carlini-Wagner L2 (module docstring); ``target`` (N,) makes it targeted at those classes.

    ``mask`` (0 or 1 per pixel, or per value) restricts the attack to where it is 1: the image is
    ``x + mask * ((tanh(w) + 1) / 2 - x)``, so the rest stays exactly x, rounding included
    (the L0 attack, :func:`cw_l0`, runs this on a shrinking set of pixels).

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels; mask: (N, 1, H, W) or (N, 3, H, W).
        - Output: (N, 3, H, W) in [0, 1]; on the 8-bit grid where an attack succeeded and ``grid8``
          (where ``mask`` is 1, if x is not on it).
    """
    if steps < 1 or search_steps < 1:
        raise ValueError(f"steps and search_steps must be at least 1, got {steps}, {search_steps}")
    if confidence < 0:
        raise ValueError(f"confidence must be at least 0, got {confidence}")
    if mask is not None:
        _check_mask(mask, x)
        mask = mask.to(x.dtype)
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
                if mask is not None:
                    x_adv = x + mask * (x_adv - x)
                l2 = (x_adv - x).flatten(1).pow(2).sum(1)
                logits = model(x_adv)
                f = (-margin(logits, label, targeted)).clamp(min=-confidence)
                opt.zero_grad()
                (l2 + const * f).sum().backward()
            with torch.no_grad():
                # Judge the image as it will be saved: rounded to 8 bits, or as it is.
                cand = quantize_8bit(x_adv) if grid8 else x_adv.detach()
                if mask is not None and grid8:
                    # x off the grid: still untouched outside the mask (where, not arithmetic: exact values).
                    cand = torch.where(mask > 0, cand, x)
                cand_l2 = (cand - x).flatten(1).pow(2).sum(1)
                # The float image's logits are at hand; only the rounded one needs a pass of its own.
                past = margin(model(cand) if grid8 else logits.detach(), label, targeted)
                ok = _adversarial(past, confidence)
                better = ok & (cand_l2 < best_l2)
                best[better], best_l2[better] = cand[better], cand_l2[better]
                found |= ok
            opt.step()
        with torch.no_grad():
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
    return best


def _check_mask(mask: torch.Tensor, x: torch.Tensor) -> None:
    n, _, h, w = x.shape
    if mask.shape not in ((n, 1, h, w), tuple(x.shape)):
        raise ValueError(f"mask must be (N, 1, H, W) or x's shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask must hold 0 and 1 only")


def _check_batch(x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must be in [0, 1]")
    for name, t in (("y", y), ("target", target)):
        if t is not None and tuple(t.shape) != (x.shape[0],):
            raise ValueError(f"{name} must be ({x.shape[0]},), got shape {tuple(t.shape)}")


def _adversarial(past: torch.Tensor, confidence: float) -> torch.Tensor:
    """Past the boundary (strictly: a tie is not a misclassification) by at least ``confidence``."""
    return (past > 0) & (past >= confidence)


CW_LINF_STEPS = 100      # Adam steps at one c before c doubles (theirs: 1000)
CW_LINF_TAU0 = 1.0
CW_LINF_TAU_DECAY = 0.9
CW_LINF_C0 = 1.0         # theirs: 1e-5 doubling to 20 (MNIST, images in [-0.5, 0.5])
# A failed round costs log2(c_max / c) runs of `steps`, and every image ends with one. On the demo
# model c never had to grow past c0 (8 pictures: c_max 8 and 1000 gave the same L-infinity).
CW_LINF_C_MAX = 10.0
CW_LINF_LR = 0.005       # theirs: 5e-3

LINF_OPTIONS = (
    _CONFIDENCE,
    Option("steps", CW_LINF_STEPS, "Adam steps at one c before c doubles", low=1),
    Option("tau_decay", CW_LINF_TAU_DECAY, "tau's factor after each success", kind=float, low=0, high=1,
           high_open=True),
    _TARGET,
)


def cw_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
            confidence: float = CW_CONFIDENCE, steps: int = CW_LINF_STEPS, tau0: float = CW_LINF_TAU0,
            tau_decay: float = CW_LINF_TAU_DECAY, c0: float = CW_LINF_C0, c_max: float = CW_LINF_C_MAX,
            lr: float = CW_LINF_LR, grid8: bool = True) -> torch.Tensor:
    """Carlini and Wagner's L-infinity attack: the smallest largest change that is adversarial.

    The L-infinity norm's gradient moves one value at a time, so they minimise a
    penalty on every value past a threshold tau instead, by Adam on ``w`` with
    ``x' = (tanh(w) + 1) / 2`` (the box, as in the L2 attack):

        c f(x') + sum_i max(|x'_i - x_i| - tau, 0),   f as in :func:`cw` (the margin, floored at -kappa).

    A round solves this at one tau, from the last round's image (x at first)
    with Adam started afresh: an image not done after ``steps`` steps at one c
    has c doubled (Adam goes on), and fails once c passes ``c_max``. The round
    succeeds at the first step where the image as saved (rounded to 8 bits with
    ``grid8``) is adversarial and changes no value by more than tau (by more
    than ``tau + 0.5 / 255`` with ``grid8``: where rounding a change within tau
    can take it). Then ``tau = tau_decay * min(tau, that image's L-infinity)``
    and the next round keeps the c that worked (theirs never lowers c either).
    An image stops at its first failed round, or once tau is below any change
    left to make (1/256 as theirs; under ``grid8``, half a level). Per image the
    smallest-L-infinity adversarial image seen at any step is returned; images
    never adversarial come back unchanged. Untargeted, or targeted at ``target``
    (N,) classes, as :func:`cw`.

    Every image has its own round, c and Adam state (Adam is written out per
    image), so images that finish a round go on at once instead of waiting for
    the slowest of the batch: each step attacks the batch of images still going.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels; target: (N,) or None.
        - Output: (N, 3, H, W) in [0, 1]; on the 8-bit grid where an attack succeeded and ``grid8``.
    """
    _check_batch(x, y, target)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if confidence < 0:
        raise ValueError(f"confidence must be at least 0, got {confidence}")
    if not 0 < tau0 <= 1:
        raise ValueError(f"tau0 must be in (0, 1], got {tau0}")
    if not 0 < tau_decay < 1:
        raise ValueError(f"tau_decay must be in (0, 1), got {tau_decay}")
    if not 0 < c0 <= c_max:
        raise ValueError(f"need 0 < c0 <= c_max, got c0={c0}, c_max={c_max}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    x = x.detach()
    n, dev = x.shape[0], x.device
    label, targeted = (y, False) if target is None else (target, True)
    slack = 0.5 / 255 if grid8 else 0.0
    smallest = 0.5 / 255 if grid8 else 1 / 256      # no round can succeed with tau below it
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8       # torch.optim.Adam's defaults

    def tanh_space(img: torch.Tensor) -> torch.Tensor:
        return torch.atanh((2 * img - 1) * (1 - 1e-6))

    w = tanh_space(x)
    m1, m2 = torch.zeros_like(x), torch.zeros_like(x)       # Adam's moments, per image
    t = torch.zeros(n, device=dev)                          # Adam's step count, per image
    at_c = torch.zeros(n, dtype=torch.long, device=dev)     # steps taken at the current c
    tau = torch.full((n,), float(tau0), device=dev)
    const = torch.full((n,), float(c0), device=dev)
    best, best_linf = x.clone(), torch.full((n,), torch.inf, device=dev)
    live = torch.ones(n, dtype=torch.bool, device=dev)
    while live.any():
        idx = live.nonzero()[:, 0]
        xi, ti = x[idx], tau[idx]
        with torch.enable_grad():
            wi = w[idx].requires_grad_(True)
            x_adv = (torch.tanh(wi) + 1) / 2
            logits = model(x_adv)
            f = (-margin(logits, label[idx], targeted)).clamp(min=-confidence)
            penalty = ((x_adv - xi).abs() - ti[:, None, None, None]).clamp(min=0).flatten(1).sum(1)
            (g,) = torch.autograd.grad((const[idx] * f + penalty).sum(), wi)
        with torch.no_grad():
            cand = quantize_8bit(x_adv) if grid8 else x_adv.detach()
            # The float image's logits are at hand; only the rounded one needs a pass of its own.
            past = margin(model(cand) if grid8 else logits.detach(), label[idx], targeted)
            ok = _adversarial(past, confidence)
            linf = (cand - xi).abs().flatten(1).amax(1)
            # The smallest success at any step, whatever the round's tau.
            better = ok & (linf < best_linf[idx])
            best[idx[better]], best_linf[idx[better]] = cand[better], linf[better]
            won = ok & (linf <= ti + slack + 1e-7)
            # A won round: the next starts from its image, at a lower tau, with Adam afresh.
            wid = idx[won]
            tau[wid] = tau_decay * torch.minimum(ti[won], linf[won])
            w[wid], m1[wid], m2[wid], t[wid], at_c[wid] = tanh_space(cand[won]), 0.0, 0.0, 0.0, 0
            live[wid] = tau[wid] >= smallest
            # The others take an Adam step; after `steps` at one c, the margin term needs more weight.
            go, gi = idx[~won], g[~won]
            t[go] += 1
            m1[go] = beta1 * m1[go] + (1 - beta1) * gi
            m2[go] = beta2 * m2[go] + (1 - beta2) * gi * gi
            tb = t[go][:, None, None, None]
            w[go] -= lr * (m1[go] / (1 - beta1 ** tb)) / ((m2[go] / (1 - beta2 ** tb)).sqrt() + adam_eps)
            at_c[go] += 1
            grow = go[at_c[go] >= steps]
            const[grow], at_c[grow] = const[grow] * 2, 0
            live[grow] = const[grow] <= c_max
    return best


CW_L0_DROP = 0.1

L0_OPTIONS = (
    _CONFIDENCE,
    Option("steps", CW_STEPS, "Adam steps of each L2 solve, for each value of c", low=1),
    Option("search_steps", CW_SEARCH_STEPS, "values of c tried in each L2 solve", low=1),
    Option("drop", CW_L0_DROP, "share of the changed pixels dropped a round (0: one, as the paper)", kind=float,
           low=0, high=1, high_open=True),
    _TARGET,
)


def cw_l0(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
          confidence: float = CW_CONFIDENCE, steps: int = CW_STEPS, search_steps: int = CW_SEARCH_STEPS,
          c: float = CW_C0, lr: float = CW_LR, drop: float = CW_L0_DROP, grid8: bool = True) -> torch.Tensor:
    """Carlini and Wagner's L0 attack: few pixels changed, found by shrinking the set the L2 attack may use.

    A pixel is one location, all its channels. Starting from every pixel, each
    round runs :func:`cw` (L2; ``steps``, ``search_steps``, ``c``, ``lr``) with
    the allowed pixels as its ``mask``. After a success, the pixels it left
    unchanged leave the set (their ``g_i delta_i`` is 0), and so do the
    ``max(1, floor(drop * changed))`` least important of those it changed:
    smallest ``sum over channels |g delta|``, ``delta`` the change as saved and
    ``g`` the gradient of f at the adversarial image, as the paper has it, with
    f unclamped (``-margin``: clamped at -kappa, its gradient would vanish at
    every success). Absolute values as in their code, where a pixel that moves f
    much, either way, is one to keep; their code scores a pixel
    ``|sum_c delta_c| * sum_c |g_c|`` with g the whole objective's gradient in
    tanh space, which ranks a pixel whose channels move apart as unimportant.

    They fix one significant pixel a round (after up to ``0.3 sqrt(changed)``
    unimportant ones); ``drop=0`` does that. The default takes a tenth of the
    changed pixels a round, for speed: the L2 attack changes hundreds of a
    CIFAR-10 picture's 1024 pixels, so a pixel a round would take hundreds of
    rounds; with a tenth it takes tens, and one a round once fewer than 1 / drop
    are changed. When a round that dropped k > 1 pixels fails, the image goes
    back to its last success and drops k // 2 from it (and at most that many a
    round from then on), so it ends as theirs does: at a success whose least
    important pixel cannot be spared. Each round's set lies within the last
    success's changed pixels, so every success changes fewer; the last is
    returned (x unchanged if the first round failed). Each round is a fresh
    :func:`cw`, from x with its own search over c (theirs starts from the last
    success and goes on doubling the last round's c). Images finish at
    different rounds; each round attacks the batch of those still going.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels; target: (N,) or None.
        - Output: (N, 3, H, W) in [0, 1]; on the 8-bit grid where an attack succeeded and ``grid8``
          (where it changed the image, if x is not on it).
    """
    _check_batch(x, y, target)
    if steps < 1 or search_steps < 1:
        raise ValueError(f"steps and search_steps must be at least 1, got {steps}, {search_steps}")
    if confidence < 0:
        raise ValueError(f"confidence must be at least 0, got {confidence}")
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    x = x.detach()
    n, _, h, w = x.shape
    dev = x.device
    label, targeted = (y, False) if target is None else (target, True)
    allowed = torch.ones(n, h * w, dtype=torch.bool, device=dev)
    # The last success's changed pixels and their importance (the least important first), per image.
    kept = torch.zeros(n, h * w, dtype=torch.bool, device=dev)
    order = torch.zeros(n, h * w, dtype=torch.long, device=dev)
    dropped = torch.zeros(n, dtype=torch.long, device=dev)     # how many the last round's set left out
    cap = torch.full((n,), h * w, dtype=torch.long, device=dev)     # at most this many a round, halved at a failure
    best = x.clone()
    live = torch.ones(n, dtype=torch.bool, device=dev)

    def without_least(changed: torch.Tensor, rank: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return changed & (rank >= k[:, None])

    while live.any():
        idx = live.nonzero()[:, 0]
        xi = x[idx]
        adv = cw(model, xi, y[idx], confidence=confidence, steps=steps, search_steps=search_steps, c=c, lr=lr,
                 target=None if target is None else target[idx], grid8=grid8,
                 mask=allowed[idx].view(-1, 1, h, w).to(x.dtype))
        with torch.enable_grad():
            a = adv.detach().requires_grad_(True)
            past = margin(model(a), label[idx], targeted)
            (g,) = torch.autograd.grad(-past.sum(), a)
        with torch.no_grad():
            ok = _adversarial(past.detach(), confidence)
            delta = adv - xi
            changed = (delta != 0).any(dim=1).flatten(1)                   # (m, H*W)
            count = changed.sum(1)
            # Unchanged pixels rank last: they leave with the set anyway.
            score = (g * delta).abs().sum(dim=1).flatten(1).masked_fill(~changed, torch.inf)
            rank = score.argsort(dim=1).argsort(dim=1)
            k = torch.minimum(cap[idx], torch.clamp((drop * count).floor().long(), min=1))
            # A success: keep it, and shrink the set from its changed pixels.
            win = idx[ok]
            best[win] = adv[ok]
            kept[win], order[win], dropped[win] = changed[ok], rank[ok], k[ok]
            allowed[win] = without_least(changed[ok], rank[ok], k[ok])
            # One changed pixel (or none: x itself was adversarial) cannot be improved on.
            live[win] = count[ok] > 1
            # A failure after dropping several: back to the last success, dropping half as many.
            lost = idx[~ok]
            back = lost[dropped[lost] > 1]
            cap[back] = dropped[back] // 2
            allowed[back] = without_least(kept[back], order[back], cap[back])
            dropped[back] = cap[back]
            live[lost] = False
            live[back] = True
    return best
