"""The registration marks around every image (manifest format 2): finding them in a photo.

OpenCV's ArUco detector (``cv2.aruco.ArucoDetector``) finds the marks and
reads their ids; its dictionary's error correction rejects most false
candidates, and ingest accepts a mark only if its id belongs to the page and
its position agrees with the page's other marks and codes (see
:mod:`.register`). Corners come back in the mark's own TL, TR, BR, BL order
(the order of ``Rect.corners()``), refined to sub-pixel accuracy.

Marks that the whole-photo pass misses (small, blurred, in shadow: their bits
cannot be read) are then looked for where the marks and codes around them
predict them (:func:`align_mark`, driven by ``register._grow_marks``): the
known pattern of the expected id is aligned to the photo there, and accepted
only if it matches closely. When the detector reads too few marks to fit the
page at all, that search starts from the corner codes and spreads outwards,
each mark found helping to predict the next. Measured on 10 hard and
8 extreme virtual photos: pages with crops 9 -> 10 and 8 -> 8, crops 180 ->
235 and 78 -> 164, with the largest corner error unchanged (under 2 %).

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

from ..sheets.layout import MARK_DICTIONARY, MARK_MODULES, mark_modules
from .codes import sharpen

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
        for i, quads in _detect(sharpen(gray, 1.5, sigma=2.0)).items():
            have = found.setdefault(i, [])
            for q in quads:
                # The same mark found in both passes: keep the first.
                if all(np.abs(q.mean(0) - h.mean(0)).max() > 2.0 for h in have):
                    have.append(q)
    offset = np.array([x0, y0], np.float64)
    return [FoundMark(i, q + offset) for i, quads in sorted(found.items()) for q in quads]


# Alignment of a mark's known pattern (guided search for marks too blurred to decode): px per
# module of the rectified patch, the search radius in modules, and the correlation it must reach.
ALIGN_PPM = 8
ALIGN_SEARCH_MODULES = 3
MIN_ALIGN_CC = 0.75


@functools.lru_cache(maxsize=1024)
def _mark_template(mark_id: int) -> np.ndarray:
    """The mark's pattern with one module of white around it, ALIGN_PPM px per module (float32)."""
    bits = mark_modules(mark_id)
    t = np.full((bits.shape[0] + 2, bits.shape[1] + 2), 255, np.uint8)
    t[1:-1, 1:-1][bits] = 0
    return cv2.resize(t, None, fx=ALIGN_PPM, fy=ALIGN_PPM, interpolation=cv2.INTER_NEAREST).astype(np.float32)


def align_mark(gray: np.ndarray, mark_id: int, predicted: np.ndarray) -> FoundMark | None:
    """Find a mark by its known pattern near ``predicted`` (its quad (4, 2) in photo px, as the marks
    around it put it), when the detector could not read it (blur, small modules): the patch around
    the prediction is rectified, searched (template matching) within ALIGN_SEARCH_MODULES modules, and
    aligned to the pattern (ECC, affine); accepted only at correlation MIN_ALIGN_CC or more."""
    n = MARK_MODULES
    tmpl = _mark_template(mark_id)
    margin = ALIGN_SEARCH_MODULES + 1                       # modules of patch around the template
    side = (n + 2 + 2 * ALIGN_SEARCH_MODULES) * ALIGN_PPM
    # Module coordinates (0..n over the mark) -> patch px (pixel centres).
    to_patch = np.array([[ALIGN_PPM, 0, margin * ALIGN_PPM - 0.5], [0, ALIGN_PPM, margin * ALIGN_PPM - 0.5],
                         [0, 0, 1.0]])
    square = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
    mod_to_photo = cv2.getPerspectiveTransform(square, np.asarray(predicted, np.float32)).astype(np.float64)
    patch_to_photo = mod_to_photo @ np.linalg.inv(to_patch)
    patch = cv2.warpPerspective(gray, patch_to_photo, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    scores = cv2.matchTemplate(patch, tmpl, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if best < 0.5:
        return None
    # ECC from the best offset: warp maps template px to patch px.
    warp = np.array([[1, 0, bx], [0, 1, by]], np.float32)
    try:
        cc, warp = cv2.findTransformECC(tmpl, patch, warp, cv2.MOTION_AFFINE,
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 3)
    except cv2.error:
        return None
    if cc < MIN_ALIGN_CC:
        return None
    # Template px of the mark's corners (pixel-centre coordinates) -> patch -> photo.
    corners_t = (square.astype(np.float64) + 1) * ALIGN_PPM - 0.5
    in_patch = np.column_stack([corners_t, np.ones(4)]) @ np.vstack([warp, [0, 0, 1]]).T
    quad = cv2.perspectiveTransform(in_patch[:, :2].reshape(1, -1, 2), patch_to_photo)[0]
    return FoundMark(mark_id, quad.astype(np.float64))
