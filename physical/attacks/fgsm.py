"""The fast gradient sign method (Goodfellow et al. 2015; the paper's "fast" method).

``x_adv = clip01(x + eps * sign(grad_x J(x, y)))``: one gradient, one step.
"""
from __future__ import annotations

import torch
from torch import nn

from .gradient import input_gradient


def fast(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method. x: (N, 3, H, W) in [0, 1]; y: (N,). Returns (N, 3, H, W)."""
    _, grad = input_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp(0.0, 1.0)
