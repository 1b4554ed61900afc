"""What the model sees of an image file: upright 8-bit RGB, resized and centre-cropped
with the model's own preprocessing, on the 8-bit grid (what gets printed is 8-bit).

Shared by every stage that feeds files to a model: make-sheets (the pictures),
the report (digital images and crops) and its artificial transformations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..photo_io import quantize_8bit, read_photo
from .classifier import Classifier


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8 array."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def open_rgb(path: Path) -> Image.Image:
    """Open any still image as upright 8-bit RGB (the same reader as ingest's; raises PhotoError)."""
    return Image.fromarray(read_photo(path)[1])


def preprocess(im: Image.Image, model: Classifier) -> torch.Tensor:
    """PIL image -> (3, H, W) in [0, 1] at the model's input size, on the 8-bit grid."""
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    x = TF.to_dtype(TF.to_image(im), torch.float32, scale=True)
    h, w = model.input_size
    if x.shape[-2:] != (h, w):
        x = TF.resize(x, [model.resize_size], interpolation=InterpolationMode(model.interpolation),
                      antialias=True)
        x = TF.center_crop(x, [h, w])
    return quantize_8bit(x)
