"""Expectation over Transformation through the print-and-photo channel (Athalye et al. 2018).

The paper's iterative methods, with every step following the sign of the
*mean* gradient over ``samples`` draws of the simulated channel
(:mod:`physical.channel`) applied to the current image:

- :func:`eot`: ``x_{n+1} = Clip_{x,eps}(x_n + alpha sign(E_t grad J(t(x_n), y)))``;
- :func:`eot_ll`: ``x_{n+1} = Clip_{x,eps}(x_n - alpha sign(E_t grad J(t(x_n), y_LL)))``,
  ``y_LL`` the least-likely class of the clean image.

The expectation is over a mixture: with weight ``digital`` the image itself (the
identity transformation), with ``1 - digital`` the channel. The user wants an
example that is adversarial both as a file and as a photo; without the identity
term the sign of the channel mean alone left eot_ll 12 points less successful
digitally than ll at the paper's step count (18 vs 6 %, docs/findings.md).

``t`` is drawn afresh at every step (seeded: the same call gives the same
images) from a preset name or a calibrated profile
(:func:`physical.channel.profile.load_profile`). The channel's JPEG is
straight through (its value is the codec's, its gradient the identity). The
K samples of every image go through the channel and the model as one batch,
split into chunks of at most ``batch`` images to bound memory; gradients of
the chunks add up, so the chunking does not change the result.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..channel.pipeline import apply_channel
from ..channel.profile import draw_params
from .gradient import clip_eps, input_gradient
from .iterative import least_likely_class
from .methods import eps_steps
from .options import Option
from .seeds import Seed, image_seeds

EOT_SAMPLES = 16        # K, the default number of channel draws per image and step
EOT_BATCH = 512         # images through channel and model at once
EOT_DIGITAL = 0.2       # weight of the untransformed image in the expectation (docs/findings.md)

# eot and eot_ll (what they attack through is make-sheets' --channel, one for the experiment).
OPTIONS = (
    Option("samples", EOT_SAMPLES, "channel draws per image and step (K images through channel and model "
           "per image and step: about K times the time of bim)", low=1, flag=True),
    Option("step_factor", 1, "F times the paper's number of steps", low=1, flag=True),
    Option("digital", EOT_DIGITAL, "weight of the untransformed image in the expectation, 0 to below 1 (0: the "
           "channel alone; the examples are then a weaker file: see docs/findings.md)", kind=float, low=0, high=1,
           high_open=True, flag=True),
)


def eot_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor, direction: float,
                 channel: str | Mapping[str, Any], samples: int, seed: Seed,
                 batch: int = EOT_BATCH) -> torch.Tensor:
    """``sum_k grad_x direction * CE(model(t_k(x)), target)`` over ``samples`` channel draws t_k.

    x: (N, 3, H, W) in [0, 1]; target: (N,). Returns (N, 3, H, W): K times the mean
    gradient (its sign is the mean's). Draws are per image and sample, from ``seed``
    (one int, or one per image: image i's K draws from ``seed[i]`` alone).
    """
    n = x.shape[0]
    seeds = image_seeds(seed, n)
    if seeds is None:
        params = draw_params(n * samples, channel, seed, device=x.device)
    else:
        each = [draw_params(samples, channel, s, device=x.device) for s in seeds]
        params = {k: torch.cat([p[k] for p in each]) for k in each[0]}
    grad = torch.zeros_like(x)
    per_chunk = max(1, batch // samples) if samples <= batch else 1
    with torch.enable_grad():
        for i in range(0, n, per_chunk):
            xi = x[i:i + per_chunk].detach().requires_grad_(True)
            m = xi.shape[0]
            # Sample-major within the chunk: rows k*m + j are image j under draw (i + j) * samples + k.
            rows = (torch.arange(m, device=x.device)[None, :] + i) * samples + torch.arange(samples, device=x.device)[:, None]
            p = {k: v[rows.flatten()] for k, v in params.items()}
            for s in range(0, m * samples, batch):
                part = slice(s, min(s + batch, m * samples))
                imgs = xi.repeat(samples, 1, 1, 1)[part]
                y = apply_channel(imgs, {k: v[part] for k, v in p.items()}, differentiable=True)
                loss = F.cross_entropy(model(y), target[i:i + m].repeat(samples)[part], reduction="sum")
                (g,) = torch.autograd.grad(direction * loss, xi)
                grad[i:i + m] += g
    return grad


def _iterate(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float, direction: float,
             channel: str | Mapping[str, Any], samples: int, alpha: float, steps: int, seed: Seed,
             batch: int, digital: float) -> torch.Tensor:
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if not 0.0 <= digital < 1.0:
        raise ValueError(f"digital must be in [0, 1), got {digital}")
    x = x.detach()
    x_adv = x.clone()
    for step in range(steps):
        step_seed = seed * 1_000_003 + step if isinstance(seed, int) else [s * 1_000_003 + step for s in seed]
        g = eot_gradient(model, x_adv, target, direction, channel, samples, step_seed, batch)
        g = (1.0 - digital) / samples * g
        if digital > 0:
            g = g + digital * direction * input_gradient(model, x_adv, target)[1]
        x_adv = clip_eps(x_adv + alpha * g.sign(), x, eps)
    return x_adv


def eot(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, channel: str | Mapping[str, Any] = "typical",
        samples: int = EOT_SAMPLES, alpha: float = 1 / 255, steps: int | None = None, seed: Seed = 0,
        batch: int = EOT_BATCH, digital: float = EOT_DIGITAL) -> torch.Tensor:
    """Basic iterative method through the channel (module docstring).

    ``steps=None`` is the paper's rule; ``digital`` the identity's weight in the expectation.

    Shape:
        - x: (N, 3, H, W) in [0, 1]; y: (N,) true labels.
        - Output: (N, 3, H, W) in [0, 1], within eps of x.
    """
    return _iterate(model, x, y, eps, +1.0, channel, samples, alpha, eps_steps(eps) if steps is None else steps,
                    seed, batch, digital)


def eot_ll(model: nn.Module, x: torch.Tensor, eps: float, channel: str | Mapping[str, Any] = "typical",
           samples: int = EOT_SAMPLES, alpha: float = 1 / 255, steps: int | None = None, seed: Seed = 0,
           batch: int = EOT_BATCH, digital: float = EOT_DIGITAL) -> torch.Tensor:
    """Iterative least-likely class method through the channel; the target is fixed from the clean x.

    Shape: as :func:`eot`.
    """
    return _iterate(model, x, least_likely_class(model, x), eps, -1.0, channel, samples, alpha,
                    eps_steps(eps) if steps is None else steps, seed, batch, digital)
