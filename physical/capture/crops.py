"""Cutting a registered slot out of the photo at its digital image's size.

Each slot's rect, shrunk by INSET (2 % of the image side on each side, so that
neither the white gap nor a neighbour can bleed in even if registration is off
by a little), is warped with bilinear sampling to k times the digital image's
size (k = the smallest integer at which the warp is at least at the photo's
own resolution) and then box-averaged (``cv2.INTER_AREA``, an exact k x k
mean) to the digital size: antialiased even when a 32 px image covers 400
photo px. A crop is therefore the slot magnified by 1 / (1 - 2 INSET) about
its centre.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..photo_io import PhotoError, read_photo
from ..sheets.layout import Rect
from .codes import transform_points
from .register import inside

# Share of the image side trimmed off each side of a slot before resampling.
INSET = 0.02
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class Target:
    """A digital image a slot should match."""

    image_id: str
    variant: str
    size: tuple[int, int]        # (width, height) px
    digital: str                 # path for the index, relative to out (or absolute)
    path: Path | None = None     # the digital PNG; None when it is missing or unreadable


def crop_slot(rgb: np.ndarray, h: np.ndarray, rect: Rect, size: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """The slot ``rect`` (inset) resampled to ``size``; None if it is not wholly in the photo. Also native px."""
    dw, dh = size
    ix, iy = INSET * rect.w, INSET * rect.h
    inner = Rect(rect.x + ix, rect.y + iy, rect.w - 2 * ix, rect.h - 2 * iy)
    quad = transform_points(h, np.array(inner.corners()))
    if not inside(quad, rgb.shape):
        return None
    native = max(np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4))
    k = max(1, math.ceil(native / max(dw, dh) - 1e-6))
    w, hh = dw * k, dh * k
    # Crop px (pixel centres) -> page mm.
    a = np.array([[inner.w / w, 0, inner.x + 0.5 * inner.w / w],
                  [0, inner.h / hh, inner.y + 0.5 * inner.h / hh], [0, 0, 1.0]])
    big = cv2.warpPerspective(rgb, h @ a, (w, hh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    out = big if k == 1 else cv2.resize(big, (dw, dh), interpolation=cv2.INTER_AREA)
    return out, float(native)


def digital_as_cropped(img: np.ndarray) -> np.ndarray:
    """A digital image magnified exactly as its crops are: the inner (1 - 2 INSET) square resampled to full size.

    img: (H, W) or (H, W, C) array. Returns float32 of the same shape, for
    comparing a crop with the digital image it shows, pixel for pixel.
    """
    n = img.shape[1]
    s = 1 - 2 * INSET
    a = np.array([[s, 0, INSET * n + 0.5 * s - 0.5], [0, s, INSET * n + 0.5 * s - 0.5]])
    return cv2.warpAffine(img.astype(np.float32), a, (n, img.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def safe_name(name: str) -> str:
    s = _SAFE_NAME.sub("_", name).lstrip(".")
    return s or "_"


def digital_targets(manifest: dict[str, Any], printouts: Path, out: Path, warn: Callable[[str], None]
             ) -> dict[tuple[str, str], Target]:
    """Digital image (path, size) of every (image id, variant) in the manifest."""
    fallback = manifest.get("model", {}).get("input_size") or [32, 32]
    images_dir = (printouts / "images").resolve()
    targets: dict[tuple[str, str], Target] = {}
    missing = 0
    from PIL import Image

    for rec in manifest.get("images", []):
        for v in rec.get("variants", []):
            key = (str(rec.get("id")), str(v.get("name")))
            listed = (printouts / str(v.get("file", ""))).resolve()
            # The manifest is editable text: only ever point at our own images folder.
            path = listed if listed.parent == images_dir else images_dir / f"{safe_name(key[0])}_{safe_name(key[1])}.png"
            found: Path | None = path
            try:
                with Image.open(path) as im:
                    size = im.size
            except Exception:  # noqa: BLE001 - missing or unreadable: the model's input size
                size = (int(fallback[1]), int(fallback[0]))
                missing += 1
                found = None
            targets[key] = Target(key[0], key[1], size, _relpath(path, out), found)
    if missing:
        warn(f"{missing} digital images listed in {printouts / 'manifest.json'} are missing or unreadable; "
             f"their crops use the model's input size")
    return targets


def _relpath(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def clean_pictures(targets: dict[tuple[str, str], Target]) -> Callable[[str], np.ndarray | None]:
    """image id -> its digital clean image, magnified as crops are, in :func:`verify.grey` form (cached);
    None when that image is missing or unreadable."""
    from .verify import grey

    cache: dict[str, np.ndarray | None] = {}

    def get(image_id: str) -> np.ndarray | None:
        if image_id not in cache:
            target = targets.get((image_id, "clean"))
            img = None
            if target is not None and target.path is not None:
                try:
                    img = grey(digital_as_cropped(read_photo(target.path)[1]))
                except PhotoError:
                    img = None
            cache[image_id] = img
        return cache[image_id]

    return get
