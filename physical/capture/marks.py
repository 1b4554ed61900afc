"""The registration marks around every image (manifest format 2): finding them in a photo.

OpenCV's ArUco detector (``cv2.aruco.ArucoDetector``) finds the marks and
reads their ids; its dictionary's error correction rejects most false
candidates, and ingest accepts a mark only if its id belongs to the page and
its position agrees with the page's other marks and codes (see
:mod:`.register`). Corners come back in the mark's own TL, TR, BR, BL order
(the order of ``Rect.corners()``), refined to sub-pixel accuracy.

The detector's default minimum size (a perimeter of 3 % of the photo's
longest side, a 30 px square in a 12 MP photo) would skip the 4 mm marks of
a whole page photographed from arm's length; MIN_PERIMETER_RATE allows marks
down to about 3 photo px per module. A second pass on a copy sharpened by
unsharp masking recovers blurred marks that the first pass missed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..sheets.layout import MARK_DICTIONARY

# A mark's perimeter in photo px, as a share of the photo's longest side: 4 sides of
# MARK_MODULES modules of 3 px in a 4032 px photo is 72 px, 0.018; allow a little less.
MIN_PERIMETER_RATE = 0.012


@dataclass(frozen=True)
class FoundMark:
    """A registration mark found in a photo: its id and its corners (4, 2) in photo px (TL, TR, BR, BL)."""

    id: int
    quad: np.ndarray


@functools.lru_cache(maxsize=1)
def _detector() -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.minMarkerPerimeterRate = MIN_PERIMETER_RATE
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.cornerRefinementWinSize = 3
    params.markerBorderBits = 1
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, MARK_DICTIONARY))
    return cv2.aruco.ArucoDetector(dictionary, params)


def _detect(gray: np.ndarray) -> dict[int, list[np.ndarray]]:
    corners, ids, _ = _detector().detectMarkers(gray)
    out: dict[int, list[np.ndarray]] = {}
    if ids is None:
        return out
    for c, i in zip(corners, ids.ravel()):
        quad = np.asarray(c, np.float64).reshape(4, 2)
        if np.all(np.isfinite(quad)):
            out.setdefault(int(i), []).append(quad)
    return out


def _sharpened(gray: np.ndarray) -> np.ndarray:
    f = gray.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), 2.0)
    return np.clip(f + 1.5 * (f - blur), 0, 255).astype(np.uint8)


def find_marks(gray: np.ndarray, wanted: set[int] | None = None) -> list[FoundMark]:
    """Every registration mark found in ``gray`` (the full-resolution photo, (H, W) uint8).

    ``wanted``: the ids that can be on the pages in view; with it, a second pass
    on a sharpened copy runs when some are missing. An id found twice (two
    pages of the same id block in one photo, or a false detection) is returned
    twice: the caller decides by position.
    """
    found = _detect(gray)
    if wanted is not None and not wanted <= set(found):
        for i, quads in _detect(_sharpened(gray)).items():
            have = found.setdefault(i, [])
            for q in quads:
                # The same mark found in both passes: keep the first.
                if all(np.abs(q.mean(0) - h.mean(0)).max() > 2.0 for h in have):
                    have.append(q)
    return [FoundMark(i, q) for i, quads in sorted(found.items()) for q in quads]
