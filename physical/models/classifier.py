"""Classifiers as the attacks and the evaluation see them.

Every model is wrapped in a :class:`Classifier`: it takes images in [0, 1],
NCHW, at the model's own input size, normalises inside, and returns logits.
It carries its class names, input size, preprocessing sizes, an id and the
SHA-256 of its weights file, so the manifest can say exactly what was used.
This is the one place that owns normalisation: attacks, the channel and the
report all work on [0, 1] images.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from torch import nn


class Classifier(nn.Module):
    """A model that maps images in [0, 1] to logits.

    Input: (N, 3, H, W) with (H, W) == ``input_size``. Output: (N, C) logits.
    Parameters are frozen (``requires_grad=False``) and the module is in eval
    mode: attacks need gradients with respect to the input only, and skipping
    weight gradients makes each backward pass cheaper.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        model_id: str,
        class_names: Sequence[str],
        input_size: tuple[int, int],
        resize_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        weights_sha256: str,
        interpolation: str = "bilinear",
        wnids: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.model_id = model_id
        self.class_names = list(class_names)
        self.wnids = list(wnids) if wnids is not None else None
        self.input_size = tuple(input_size)
        self.resize_size = int(resize_size)
        self.interpolation = interpolation
        self.weights_sha256 = weights_sha256
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def describe(self) -> dict:
        """JSON-ready identity of the model, as written in the manifest."""
        return {
            "id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "input_size": list(self.input_size),
            "resize_size": self.resize_size,
            "interpolation": self.interpolation,
            "num_classes": len(self.class_names),
            "class_names": self.class_names,
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
