"""Thermometer encoding (Buckman et al. 2018): the network sees each pixel value as l bits.

Channel c's value x becomes l bits ``tau(x)_k = 1 if x >= t_k`` with thresholds
``t_k = (k + 1/2) / l``, k = 0 .. l-1 (x quantised to l levels, written in unary): 16 levels
give 48 input channels. The thresholds sit between levels, never on an 8-bit value, so
rounding a printed or saved image cannot flip a bit by a hair.

The hard encoding has no useful gradient. Its backward pass here is BPDA (Athalye et al.
2018) through the soft encoding ``min(max(x - t_k, 0), 1)``: the forward value is the hard
code, the gradient the soft one's (1 for every bit already on, 0 for the others), which is
how Athalye et al. broke it.

Shape: x (N, C, H, W) in [0, 1] -> (N, C * l, H, W), channel c's bits at c * l + k.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

THERMOMETER_LEVELS = 16


def thresholds(levels: int, device: torch.device | None = None) -> Tensor:
    """``t_k = (k + 1/2) / l``, k = 0 .. l-1, shaped (1, 1, l, 1, 1)."""
    return ((torch.arange(levels, device=device, dtype=torch.float32) + 0.5) / levels).view(1, 1, levels, 1, 1)


def thermometer(x: Tensor, levels: int = THERMOMETER_LEVELS) -> Tensor:
    """The hard encoding, with the soft encoding's gradient (module docstring)."""
    if x.dim() != 4:
        raise ValueError(f"thermometer: expected (N, C, H, W) images, got shape {tuple(x.shape)}")
    t = thresholds(levels, x.device).to(x.dtype)
    v = x.unsqueeze(2)
    hard = (v >= t).to(x.dtype)
    soft = (v - t).clamp(0, 1)
    return (hard + (soft - soft.detach())).flatten(1, 2)


def soft_thermometer(x: Tensor, levels: int = THERMOMETER_LEVELS) -> Tensor:
    """The soft encoding itself, ``min(max(x - t_k, 0), 1)``: what BPDA differentiates."""
    return (x.unsqueeze(2) - thresholds(levels, x.device).to(x.dtype)).clamp(0, 1).flatten(1, 2)


class ThermometerNet(nn.Module):
    """A network behind the thermometer encoding. It takes what every demo network takes, images
    standardised with the CIFAR-10 mean and std, undoes that, and encodes the [0, 1] values.

    Shape: x (N, 3, H, W) standardised -> logits (N, classes).
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 levels: int = THERMOMETER_LEVELS) -> None:
        super().__init__()
        self.net, self.levels = net, int(levels)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        # Where bit k turns on: what an attack in code space (attacks.lspga) reads, by duck typing.
        # 1-D, so that .to(memory_format=torch.channels_last) (4-D tensors only) leaves it alone.
        self.register_buffer("thresholds", thresholds(self.levels).flatten(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(thermometer((x * self.std + self.mean).clamp(0, 1), self.levels))
