"""The registration marks around every image (manifest format 2): finding them in a photo.

OpenCV's ArUco detector (``cv2.aruco.ArucoDetector``) finds the marks and
reads their ids; its dictionary's error correction rejects most false
candidates, and ingest accepts a mark only if its id belongs to the page and
its position agrees with the page's other marks and codes (see
:mod:`.register`). Corners come back in the mark's own TL, TR, BR, BL order
(the order of ``Rect.corners()``), refined to sub-pixel accuracy.

Marks that the whole-photo pass misses (small, blurred, in shadow) are then
looked for where the page's other marks and codes predict them
(:func:`find_marks_near`): a patch around the predicted place, enlarged so
that a module spans GUIDED_MODULE_PX px, where only the expected id counts.

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
# Guided search: patches are enlarged until a module spans this many px (at most GUIDED_MAX_ZOOM x).
GUIDED_MODULE_PX = 8.0
GUIDED_MAX_ZOOM = 4


@dataclass(frozen=True)
class FoundMark:
    """A registration mark found in a photo: its id and its corners (4, 2) in photo px (TL, TR, BR, BL)."""

    id: int
    quad: np.ndarray


@functools.lru_cache(maxsize=2)
def _detector(guided: bool = False) -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.minMarkerPerimeterRate = MIN_PERIMETER_RATE
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.cornerRefinementWinSize = 3
    params.markerBorderBits = 1
    # Two adaptive-threshold windows instead of the default three (3, 13, 23 px): 7 and 17 px span
    # the 3-10 px modules of the marks in a phone photo of a page; measured 30 % faster, no mark lost.
    params.adaptiveThreshWinSizeMin = 7
    params.adaptiveThreshWinSizeMax = 17
    params.adaptiveThreshWinSizeStep = 10
    # Reading the bits: 8 px per module in the rectified mark (default 4) and a quarter of each
    # module's border ignored (default 0.13): a blurred 3 px module is read from its centre.
    # On 8 hard and extreme virtual photos these found 10-45 % more marks, with no false id.
    params.perspectiveRemovePixelPerCell = 8
    params.perspectiveRemoveIgnoredMarginPerCell = 0.25
    if guided:
        # Enlarged patches: modules of ~GUIDED_MODULE_PX px want windows of a few modules.
        params.adaptiveThreshWinSizeMin = 13
        params.adaptiveThreshWinSizeMax = 33
        params.cornerRefinementWinSize = 5
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, MARK_DICTIONARY))
    return cv2.aruco.ArucoDetector(dictionary, params)


def _detect(gray: np.ndarray, guided: bool = False) -> dict[int, list[np.ndarray]]:
    corners, ids, _ = _detector(guided).detectMarkers(gray)
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


def find_marks(gray: np.ndarray, wanted: set[int] | None = None,
               roi: tuple[int, int, int, int] | None = None) -> list[FoundMark]:
    """Every registration mark found in ``gray`` (the photo, (H, W) uint8), in its pixel coordinates.

    ``wanted``: the ids that can be on the pages in view; with it, a second pass
    on a sharpened copy runs when some are missing. ``roi``: (x0, y0, x1, y1),
    the part of the photo where the pages are (the table around them only
    costs time). An id found twice (two pages of the same id block in one
    photo, or a false detection) is returned twice: the caller decides by position.
    """
    x0, y0 = 0, 0
    if roi is not None:
        x0, y0, x1, y1 = roi
        gray = gray[y0:y1, x0:x1]
    found = _detect(gray)
    if wanted is not None and not wanted <= set(found):
        for i, quads in _detect(_sharpened(gray)).items():
            have = found.setdefault(i, [])
            for q in quads:
                # The same mark found in both passes: keep the first.
                if all(np.abs(q.mean(0) - h.mean(0)).max() > 2.0 for h in have):
                    have.append(q)
    offset = np.array([x0, y0], np.float64)
    return [FoundMark(i, q + offset) for i, quads in sorted(found.items()) for q in quads]


def find_marks_near(gray: np.ndarray, expected: list[tuple[int, np.ndarray]], margin_px: float) -> list[FoundMark]:
    """Look for each expected mark ``(id, predicted quad (4, 2))`` in a patch around its prediction.

    ``margin_px``: how far from the prediction the mark may be. A detection counts only if it
    has the expected id; its corners come back in photo px.
    """
    h, w = gray.shape[:2]
    out = []
    for mark_id, quad in expected:
        side = float(np.mean([np.linalg.norm(quad[i] - quad[(i + 1) % 4]) for i in range(4)]))
        if not np.all(np.isfinite(quad)) or side < 4:
            continue
        lo = np.floor(quad.min(axis=0) - margin_px).astype(int)
        hi = np.ceil(quad.max(axis=0) + margin_px).astype(int)
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(w, hi[0] + 1), min(h, hi[1] + 1)
        if x1 - x0 < side or y1 - y0 < side:
            continue
        zoom = int(np.clip(np.ceil(GUIDED_MODULE_PX * 6 / side), 1, GUIDED_MAX_ZOOM))
        patch = gray[y0:y1, x0:x1]
        if zoom > 1:
            patch = cv2.resize(patch, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        hits = _detect(patch, guided=True)
        if mark_id not in hits:
            hits = _detect(_sharpened(patch), guided=True)
        for i, quads in hits.items():
            if i != mark_id:
                continue
            for q in quads:
                # Patch px (pixel centres) -> photo px.
                full = (q + 0.5) / zoom - 0.5 + np.array([x0, y0], np.float64)
                out.append(FoundMark(i, full))
    return out
