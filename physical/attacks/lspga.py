"""Logit-space projected gradient ascent (LS-PGA, Buckman et al. 2018): thermometer encoding's own attack.

The thermometer encoding has no gradient; its authors attacked it in the space of codes.
Each pixel value may move to any quantisation level it can reach within eps; LS-PGA keeps
logits z over those levels (the others at -inf), and the network sees the relaxed code
``e_k = sum_{b > k} softmax(z / T)_b`` (the probability that the level is above k). Each of
``steps`` steps moves z by ``step_size * sign(grad)`` of the loss and divides the temperature
T by ``anneal``; at the end each pixel takes its most likely level, at the 8-bit value within
eps of the original that is nearest to it (so the saved image has exactly that code).

It needs a model with the encoding inside: a module with ``levels`` (l) and ``net`` (the
network after the encoding) and ``thresholds`` (l values, where bit k turns on), as
:class:`physical.models.thermometer.ThermometerNet` has; found by duck typing, so that attacks
never import models. Adaptive attacks on such a model are the gradient attacks themselves,
through its BPDA backward pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .options import Option
from .seeds import Seed, uniform_like

LSPGA_STEPS = 7
LSPGA_STEP_SIZE = 1.0
LSPGA_ANNEAL = 1.2

OPTIONS = (
    Option("steps", LSPGA_STEPS, "steps of logit-space ascent", low=1),
    Option("step_size", LSPGA_STEP_SIZE, "how far each step moves the logits (times the sign of the gradient)",
           kind=float, low=0),
    Option("anneal", LSPGA_ANNEAL, "the temperature's divisor after each step", kind=float, low=1),
)


def thermometer_module(model: nn.Module) -> nn.Module:
    """The module of ``model`` that holds the encoding (``levels``, ``net``, ``thresholds``); ValueError if none."""
    for m in model.modules():
        if isinstance(getattr(m, "levels", None), int) and isinstance(getattr(m, "net", None), nn.Module) \
                and hasattr(m, "thresholds"):
            return m
    raise ValueError("lspga attacks a thermometer-encoded model (such as demo-thermometer); this one has no encoding")


def reachable(x: torch.Tensor, eps: float, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per value, which of the l + 1 levels an 8-bit value within eps reaches, and the nearest such value.

    Shape: x (N, C, H, W) in [0, 1] -> mask (N, C, H, W, l + 1) bool, values (N, C, H, W, l + 1) in [0, 1].
    """
    t = thresholds.flatten().to(x.device)
    base = (x * 255).round()
    e = int(round(eps * 255))
    mask = torch.zeros(*x.shape, t.numel() + 1, dtype=torch.bool, device=x.device)
    value = torch.zeros(*x.shape, t.numel() + 1, device=x.device)
    for d in sorted(range(-e, e + 1), key=abs):              # nearest first: the first value found stays
        v = (base + d).clamp(0, 255)
        level = (v[..., None] / 255 >= t).sum(-1, keepdim=True)
        fresh = ~mask.gather(-1, level)
        mask.scatter_(-1, level, True)
        value.scatter_(-1, level, torch.where(fresh, v[..., None] / 255, value.gather(-1, level)))
    return mask, value


def relaxed_code(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """``e_k = sum_{b > k} softmax(z / T)_b``: (N, C, H, W, l + 1) logits -> (N, C * l, H, W) code."""
    pi = torch.softmax(z / temperature, dim=-1)
    above = pi.flip(-1).cumsum(-1).flip(-1)[..., 1:]          # P(level > k), k = 0 .. l-1
    n, c, h, w, l = above.shape
    return above.permute(0, 1, 4, 2, 3).reshape(n, c * l, h, w)


def lspga(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = LSPGA_STEPS,
          step_size: float = LSPGA_STEP_SIZE, temperature: float = 1.0, anneal: float = LSPGA_ANNEAL,
          seed: Seed = 0) -> torch.Tensor:
    """LS-PGA (module docstring), untargeted. ``seed`` draws the logits' random start (one per image allowed).

    Shape:
        - x: (N, 3, H, W) in [0, 1] on the 8-bit grid; y: (N,) true labels.
        - Output: (N, 3, H, W) on the 8-bit grid, within eps of x.
    """
    if steps < 1 or anneal < 1 or temperature <= 0:
        raise ValueError(f"steps must be at least 1, anneal at least 1 and temperature positive, got "
                         f"{steps}, {anneal}, {temperature}")
    enc = thermometer_module(model)
    mask, value = reachable(x.detach(), eps, enc.thresholds)
    start = uniform_like(mask.float(), 0.0, 1.0, seed)
    z = torch.where(mask, start, torch.full_like(start, -torch.inf))
    t = temperature
    for _ in range(steps):
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            loss = F.cross_entropy(enc.net(relaxed_code(zz, t)), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, zz)
        z = torch.where(mask, z + step_size * grad.sign(), z)
        t /= anneal
    best = z.argmax(-1, keepdim=True)
    return value.gather(-1, best)[..., 0]
