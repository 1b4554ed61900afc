"""The last check before a crop is written: does it show the picture the index will say it shows?

Geometry can be wrong in ways its own residual does not show (a mark found in
the right place of the wrong sheet, a corner code read from a reprint). So the
crop is compared with the digital clean image of its picture, magnified as
crops are (:func:`physical.capture.crops.digital_as_cropped`), both in grey at
WORK x WORK px:

1. **Which picture.** The crop's correlation (NCC) with its own picture must be
   higher than with every other picture of the page: a crop that looks more
   like another picture is not written.
2. **Where.** The crop is aligned to its picture (``cv2.findTransformECC``,
   translation); the shift is the registration error seen in the content, in
   % of the image width. Above MAX_CONTENT_SHIFT_PCT the crop is not written.
   Measured on the demo's 260 crops (CIFAR-10 pictures and their adversarial
   variants, photographed by the virtual camera) shifted on purpose:
   correctly registered crops read at most 1.2 %; shifted by 3 %, a median of
   3.0 % (at most 3.7 %); shifted by 5 %, a median of 5.0 %, all above 3.5 %.
   A rotation or scale error of the crop is not measured here: the geometric
   checks (marks near every corner, the fit residual) bound those.
3. **Enough match.** After alignment the correlation must reach MIN_ECC_CC: the
   photo of a print of the picture (its adversarial variants included) and
   not something else.

A picture too flat to align (grey-level std below MIN_TEXTURE) cannot be
checked this way: the crop is kept on its geometric verification alone, with
a note saying so.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

WORK = 64
MAX_CONTENT_SHIFT_PCT = 4.0
MIN_ECC_CC = 0.5
MIN_TEXTURE = 3.0   # grey levels (0-255), std of the digital image


@dataclass(frozen=True)
class Verdict:
    """``ok`` and, when not, ``reason``; ``shift_pct``: the registration error the content shows (nan if unchecked)."""

    ok: bool
    reason: str = ""
    shift_pct: float = float("nan")
    note: str = ""


def grey(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W), 0-255 -> (WORK, WORK) float32 grey, antialiased."""
    g = np.asarray(img, np.float32)
    if g.ndim == 3:
        g = cv2.cvtColor(g, cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if g.shape[0] > WORK else cv2.INTER_LINEAR
    return cv2.resize(g, (WORK, WORK), interpolation=interp)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


def check_crop(crop: np.ndarray, own: str, pictures: Mapping[str, np.ndarray]) -> Verdict:
    """Check ``crop`` (RGB uint8) against ``pictures[own]``; ``pictures``: image id -> :func:`grey` of each clean
    picture of the page, magnified as crops are."""
    c = grey(crop)
    ref = pictures[own]
    if float(ref.std()) < MIN_TEXTURE:
        return Verdict(True, note="picture too flat to check the crop's content")
    mine = _ncc(c, ref)
    for other, img in pictures.items():
        if other != own and float(img.std()) >= MIN_TEXTURE and _ncc(c, img) >= mine:
            return Verdict(False, f"its content looks more like {other} than like {own}")
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        cc, warp = cv2.findTransformECC(ref, c, warp, cv2.MOTION_TRANSLATION,
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5), None, 5)
    except cv2.error:
        return Verdict(False, "its content does not match its picture (no alignment)")
    pts = np.array([[0, 0, 1], [WORK, 0, 1], [WORK, WORK, 1], [0, WORK, 1]], np.float32)
    shift = float(np.linalg.norm(pts @ warp.T - pts[:, :2], axis=1).max()) / WORK * 100
    if cc < MIN_ECC_CC:
        return Verdict(False, "its content does not match its picture", shift)
    if shift > MAX_CONTENT_SHIFT_PCT:
        return Verdict(False, f"its content is more than {MAX_CONTENT_SHIFT_PCT:g}% of the image width off "
                              "its registration", shift)
    return Verdict(True, shift_pct=shift)
