"""Per-image seeds: what a randomised attack draws for one image depends on that image's seed alone.

Every randomised attack (PGD's random starts, EoT's channel draws, the one-pixel
attack's evolution) takes ``seed`` as one int (the batch draws together, from one
generator: the draws of an image depend on its place in the batch) or as a sequence
of N ints, one per image (each image from its own generators: the same image and seed
give the same draws in any batch, on any process). make-sheets passes per-picture
seeds, so that an experiment split across processes or batches makes the same images.
"""
from __future__ import annotations

from typing import Sequence

import torch

Seed = int | Sequence[int]


def image_seeds(seed: Seed, n: int) -> list[int] | None:
    """The per-image seeds of ``seed`` (a list of n ints), or None when ``seed`` is one int."""
    if isinstance(seed, int):
        return None
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} images")
    return seeds


def offset(seed: Seed, by: int) -> Seed:
    """``seed + by``, per image when ``seed`` is a sequence."""
    return seed + by if isinstance(seed, int) else [int(s) + by for s in seed]


def uniform_like(x: torch.Tensor, lo: float, hi: float, seed: Seed) -> torch.Tensor:
    """U(lo, hi) noise shaped like x (N, ...): from one generator, or image i from its own seed."""
    seeds = image_seeds(seed, x.shape[0])
    if seeds is None:
        return torch.empty_like(x).uniform_(lo, hi, generator=torch.Generator(device=x.device).manual_seed(seed))
    return torch.stack([torch.empty_like(x[0]).uniform_(lo, hi, generator=torch.Generator(device=x.device)
                                                        .manual_seed(s)) for s in seeds])


def normal_like(x: torch.Tensor, seed: Seed) -> torch.Tensor:
    """N(0, 1) noise shaped like x (N, ...): from one generator, or image i from its own seed."""
    seeds = image_seeds(seed, x.shape[0])
    if seeds is None:
        return torch.empty_like(x).normal_(generator=torch.Generator(device=x.device).manual_seed(seed))
    return torch.stack([torch.empty_like(x[0]).normal_(generator=torch.Generator(device=x.device).manual_seed(s))
                        for s in seeds])
