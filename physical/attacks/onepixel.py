"""The one-pixel attack by differential evolution (Su, Vargas and Sakurai 2019).

A candidate sets ``pixels`` (d) pixels of the image to new colours: d rows of
``(row, column, r, g, b)``. A population of ``population`` candidates per image
evolves by DE/rand/1 without crossover, as in the paper: each candidate's child
is ``a + F (b - c)`` of three other random members (F = 0.5), and replaces it
if the model gives the true class no more probability. Only the model's
probabilities are used (a black-box attack). The first population draws
positions uniformly and colours from N(128, 127) in 0-255 levels, clipped. An
image stops evolving once its best candidate leaves the true class less than
``stop`` probability (the paper's early stop, 5 %), or after ``generations``.

Colours are on the 8-bit grid and a candidate whose pixels share a position or
leave a pixel as it was is never chosen, so exactly d pixels of each returned
image differ from x. Every image of the batch and every candidate of its
population go through the model together, in chunks of ``batch`` images.
"""
from __future__ import annotations

import torch
from torch import nn

from .options import Option
from .seeds import Seed, image_seeds

ONEPIXEL_POPULATION = 400
ONEPIXEL_GENERATIONS = 100
ONEPIXEL_F = 0.5
ONEPIXEL_STOP = 0.05

OPTIONS = (
    Option("pixels", 1, "pixels changed (d); the flag takes a list, one variant per value (the paper's 1, 3, 5: "
           "1,3,5)", low=1, high=64, flag=True, axis="d"),
    Option("population", ONEPIXEL_POPULATION, "candidates per image (the paper's 400)", low=4, flag=True),
    Option("generations", ONEPIXEL_GENERATIONS, "generations at most (the paper's 100); fewer is quicker and weaker",
           low=0, flag=True),
)


def apply_pixels(x: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """x with the candidates' pixels set: x (M, C, H, W), cand (M, d, 2 + C) -> (M, C, H, W).

    Positions are floored to whole pixels, colours rounded to the 8-bit grid.
    """
    out = x.clone()
    m, _, h, w = x.shape
    rows = cand[..., 0].floor().long().clamp(0, h - 1)
    cols = cand[..., 1].floor().long().clamp(0, w - 1)
    colour = (cand[..., 2:].clamp(0, 1) * 255).round() / 255
    idx = torch.arange(m, device=x.device)
    for j in range(cand.shape[1]):
        out[idx, :, rows[:, j], cols[:, j]] = colour[:, j]
    return out


def _valid(x: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """(M,) True where the d pixels are at d different places and each one changes."""
    _, _, h, w = x.shape
    flat = cand[..., 0].floor().long().clamp(0, h - 1) * w + cand[..., 1].floor().long().clamp(0, w - 1)
    distinct = (flat[:, :, None] != flat[:, None, :]).sum(dim=(1, 2)) == flat.shape[1] * (flat.shape[1] - 1)
    old = x.flatten(2).gather(2, flat[:, None, :].expand(-1, x.shape[1], -1)).transpose(1, 2)   # (M, d, C)
    new = (cand[..., 2:].clamp(0, 1) * 255).round() / 255
    changed = ((new - old).abs() > 0.5 / 255).any(dim=2).all(dim=1)
    return distinct & changed


@torch.no_grad()
def _fitness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cand: torch.Tensor, batch: int) -> torch.Tensor:
    """Probability of the true class for each (image, candidate); inf for an invalid candidate.
    x (N, C, H, W), y (N,), cand (N, P, d, 2 + C) -> (N, P)."""
    n, p = cand.shape[:2]
    flat = cand.reshape(n * p, *cand.shape[2:])
    owner = torch.arange(n, device=x.device).repeat_interleave(p)
    out = torch.empty(n * p, device=x.device)
    for s in range(0, n * p, batch):
        part = slice(s, min(s + batch, n * p))
        xs = x[owner[part]]
        probs = model(apply_pixels(xs, flat[part])).softmax(dim=1)
        fit = probs.gather(1, y[owner[part]][:, None])[:, 0]
        out[part] = torch.where(_valid(xs, flat[part]), fit, torch.inf)
    return out.view(n, p)


def onepixel(model: nn.Module, x: torch.Tensor, y: torch.Tensor, pixels: int = 1,
             population: int = ONEPIXEL_POPULATION, generations: int = ONEPIXEL_GENERATIONS,
             seed: Seed = 0, stop: float = ONEPIXEL_STOP, batch: int | None = None) -> torch.Tensor:
    """One-pixel (d-pixel) attack by differential evolution (module docstring).

    ``seed``: one int, or one per image (:mod:`.seeds`).

    Shape:
        - x: (N, C, H, W) in [0, 1] on the 8-bit grid; y: (N,) true labels.
        - Output: (N, C, H, W), x with exactly ``pixels`` pixels changed per image.
    """
    if pixels < 1 or population < 4 or generations < 0:
        raise ValueError(f"need pixels >= 1, population >= 4, generations >= 0; got {pixels}, {population}, "
                         f"{generations}")
    x = x.detach()
    n, ch, h, w = x.shape
    # Images per forward pass: on 2 CPU cores 128 at a time run 2.2x faster than 4096 (cache).
    batch = batch or (128 if x.device.type == "cpu" else 4096)
    if pixels > h * w:
        raise ValueError(f"cannot change {pixels} pixels of a {h}x{w} image")
    seeds = image_seeds(seed, n)
    # One generator for the batch, or one per image (each image's evolution from its own seed alone).
    gens = [torch.Generator(device=x.device).manual_seed(seed)] if seeds is None else \
        [torch.Generator(device=x.device).manual_seed(s) for s in seeds]

    def first(gen: torch.Generator, m: int) -> torch.Tensor:
        pos = torch.rand(m, population, pixels, 2, generator=gen, device=x.device) * \
            torch.tensor([h, w], device=x.device)
        colour = (128 + 127 * torch.randn(m, population, pixels, ch, generator=gen, device=x.device)).clamp(0, 255)
        return torch.cat([pos, colour / 255], dim=3)

    def offsets(rows: torch.Tensor) -> torch.Tensor:
        if seeds is None:
            return torch.rand(len(rows), population, population - 1, generator=gens[0], device=x.device)
        return torch.cat([torch.rand(1, population, population - 1, generator=gens[i], device=x.device)
                          for i in rows.tolist()])

    pop = first(gens[0], n) if seeds is None else torch.cat([first(g, 1) for g in gens])
    fit = _fitness(model, x, y, pop, batch)
    upper = torch.tensor([h - 1e-3, w - 1e-3] + [1.0] * ch, device=x.device)
    for _ in range(generations):
        active = (fit.min(dim=1).values >= stop).nonzero()[:, 0]
        if len(active) == 0:
            break
        parents = pop[active]
        # Three members other than the candidate itself, distinct from each other.
        offset = offsets(active).topk(3, dim=2).indices + 1
        r = (torch.arange(population, device=x.device)[None, :, None] + offset) % population
        pick = parents[torch.arange(len(active), device=x.device)[:, None, None], r]   # (A, P, 3, d, 2 + C)
        child = (pick[:, :, 0] + ONEPIXEL_F * (pick[:, :, 1] - pick[:, :, 2])).clamp(min=0)
        child = torch.minimum(child, upper)
        child_fit = _fitness(model, x[active], y[active], child, batch)
        better = child_fit <= fit[active]
        pop[active] = torch.where(better[..., None, None], child, parents)
        fit[active] = torch.where(better, child_fit, fit[active])
    best = pop[torch.arange(n, device=x.device), fit.argmin(dim=1)]
    return apply_pixels(x, best)
