"""What every gradient attack shares: the input gradient of the loss and the paper's eps clip.

Pure functions: the model is used as it is (in eval mode), only the gradient
with respect to the input is computed, and no parameter ``.grad`` is touched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
