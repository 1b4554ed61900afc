"""Stage 2, ``physical ingest``: phone photos of the printed sheets -> registered crops.

For every photo in PHOTOS_DIR (recursively; hidden files and folders are
ignored, files without an image suffix are counted as "not images"):

1. **Read** it (``photo_io``): any common format incl. HEIC, EXIF orientation
   applied, 8-bit RGB. The SHA-256 of the file bytes names the photo: a photo
   already ingested into ``out`` is not ingested again.
2. **Find the corner markers.** OpenCV's ``QRCodeDetectorAruco`` locates QR
   codes on a copy scaled to DETECT_SIDE px: fast, and it locates codes far
   more reliably than it decodes them (on 40 hard synthetic 12 MP photos it
   located 78 % of the codes at 1600 px, 43 % at 1000 px, 86 % at 2600 px;
   the classic ``QRCodeDetector`` located 0.6 % at 1600 px). If fewer than
   two markers of any page turn up, a second pass runs at DETECT_SIDE_RETRY
   px. Each code is then read at full
   resolution: the code is rectified from the full-resolution photo to an
   upright patch of PATCH_PPM px per module and decoded there (OpenCV's
   decoders, then a sharpened patch, then after aligning the patch to the QR
   structure that every code shares: finder, timing and alignment patterns).
   Every text found is validated strictly by :func:`payload.decode` against
   this experiment's id and page count; anything else is ignored (codes of
   another experiment are reported by id). The payload is data: it only
   selects a page and a corner of the manifest, never a path.
3. **Refine.** A marker's four corners (the code's own TL, TR, BR, BL, which
   is the order OpenCV reports whatever the rotation of the photo) are refined
   at full resolution by aligning the rectified code to the exact module
   pattern printed for its payload (``cv2.findTransformECC``, homography
   motion); this is sub-pixel even for blurred codes, where a corner detector
   (``cornerSubPix``) has no corner to find at the code's BR corner, which
   is not a finder pattern. Markers of the page that were not detected are
   looked for where the others predict them, and used only if they decode to
   exactly the expected payload.
4. **Register.** The page-mm -> photo-px homography is fitted to the corners
   of all markers of a page (RANSAC, then least squares on the markers whose
   corners all agree); two markers (8 points) suffice. ``markers_used`` and
   the RMS reprojection error in photo px are recorded. A photo that shows
   several pages has each page with at least two markers ingested.
5. **Crop.** Each slot's rect, shrunk by INSET (2 % of the image side on each
   side, so that neither the white gap nor a neighbour can bleed in even if
   registration is off by a little), is warped with bilinear sampling to k
   times the digital image's size (k = the smallest integer at which the
   warp is at least at the photo's own resolution) and then box-averaged
   (``cv2.INTER_AREA``, an exact k x k mean) to the digital size: antialiased
   even when a 32 px image covers 400 photo px. A crop is therefore the slot
   magnified by 1 / (1 - 2 INSET) about its centre.

Output (``out``, default ``captures/``): see :func:`ingest` and the README.
Every file is written atomically, the index and state last for each photo,
so an interrupted run is simply run again.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import __version__, payload
from .errors import PhysicalError
from .layout import Page, Rect
from .manifest import manifest_pages, read_manifest, write_atomic
from .photo_io import PHOTO_SUFFIXES, PhotoError, decode_photo, encode_jpeg, encode_png, is_photo_name

STATE_NAME = "ingest.json"
INDEX_NAME = "index.csv"
CROPS_DIR = "crops"
OVERLAYS_DIR = "overlays"
STATE_FORMAT = "physical-captures"
STATE_FORMAT_VERSION = 1
INDEX_COLUMNS = ("photo", "photo_sha256", "page", "slot", "image_id", "variant", "crop", "digital",
                 "markers_used", "reprojection_px", "warnings")

# Codes are located on a copy whose longest side is DETECT_SIDE px (measured
# in bench/ingest.py: at 1600 px the detector finds the 20 mm codes of a
# whole A4 page even in blurred 12 MP photos, and takes ~20 ms).
DETECT_SIDE = 1600
# A second, finer search when the first finds fewer than two markers of a page.
DETECT_SIDE_RETRY = 2600
# Rectified code patches: px per QR module, and white modules kept around
# the code (the sheet prints 5 modules of quiet zone).
PATCH_PPM = 6
PATCH_QUIET = 3
# Alignment of a patch to its template must reach this correlation.
MIN_ECC = 0.6
# Share of the image side trimmed off each side of a slot before resampling.
INSET = 0.02
# Registration quality, relative to the size of a QR module in the photo.
WARN_REPROJ_MODULES = 0.35
MAX_REPROJ_MODULES = 1.0
OVERLAY_SIDE = 1200
# Photos smaller than this (longest side) cannot show 20 mm codes readably.
MIN_PHOTO_SIDE = 200

Progress = Callable[[str, int, int], None]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.+-]")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PhotoOutcome:
    """What happened to one photo file.

    ``status`` is ``"ingested"``, ``"already ingested"`` or ``"skipped"``;
    ``reason`` says why for the latter two. ``pages`` lists the pages cropped
    from it; ``markers_used``, ``reprojection_px`` and ``homographies`` are per
    page, in the same order. A homography is 9 numbers, row-major, mapping
    page mm (origin top-left, y down) to pixel centres of the upright photo
    (after its EXIF orientation). ``overlay`` is relative to the output folder.
    """

    photo: str
    status: str
    reason: str = ""
    sha256: str = ""
    pages: tuple[int, ...] = ()
    crops: int = 0
    markers_used: tuple[int, ...] = ()
    reprojection_px: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()
    overlay: str = ""
    homographies: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class IngestResult:
    """Summary of one ``ingest`` run; ``pages_*`` count every photo in ``out``, earlier runs too."""

    out: Path
    experiment_id: str
    n_pages: int
    outcomes: tuple[PhotoOutcome, ...]
    not_images: int
    pages_seen: tuple[int, ...]
    pages_missing: tuple[int, ...]
    crops_total: int
    photos_before: int
    strict: bool = False

    def _with(self, status: str) -> tuple[PhotoOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == status)

    @property
    def ingested(self) -> tuple[PhotoOutcome, ...]:
        return self._with("ingested")

    @property
    def skipped(self) -> tuple[PhotoOutcome, ...]:
        return self._with("skipped")

    @property
    def already(self) -> tuple[PhotoOutcome, ...]:
        return self._with("already ingested")

    @property
    def crops_new(self) -> int:
        return sum(o.crops for o in self.ingested)

    @property
    def exit_code(self) -> int:
        """0, or 1 when nothing is ingested (now or before), or when ``strict`` and a photo was skipped."""
        if not self.ingested and self.photos_before == 0 and not self.already:
            return 1
        if self.strict and self.skipped:
            return 1
        return 0


# --------------------------------------------------------------------------- QR geometry


@functools.lru_cache(maxsize=4096)
def _modules(text: str) -> np.ndarray:
    """The module matrix (True = dark) that the PDF prints for ``text`` (same encoder and level)."""
    from reportlab.graphics.barcode.qr import QrCodeWidget

    from .pdf import QR_ERROR_LEVEL

    qr = QrCodeWidget(text, barLevel=QR_ERROR_LEVEL, barBorder=0).qr
    qr.make()
    m = np.array(qr.modules, dtype=bool)
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=16)
def _structure(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark, known): the modules every QR code of side n shares (finders, separators, timing, alignment)."""
    dark = np.zeros((n, n), bool)
    known = np.zeros((n, n), bool)
    for r0, c0 in ((0, 0), (0, n - 7), (n - 7, 0)):
        f = np.ones((7, 7), bool)
        f[1:6, 1:6] = False
        f[2:5, 2:5] = True
        dark[r0:r0 + 7, c0:c0 + 7] = f
        known[max(r0 - 1, 0):min(r0 + 8, n), max(c0 - 1, 0):min(c0 + 8, n)] = True
    for i in range(8, n - 8):
        dark[6, i] = dark[i, 6] = i % 2 == 0
        known[6, i] = known[i, 6] = True
    version = (n - 17) // 4
    if 2 <= version <= 6:  # one alignment pattern, centred 7 modules from the bottom-right corner
        a = np.ones((5, 5), bool)
        a[1:4, 1:4] = False
        a[2, 2] = True
        c = n - 7
        dark[c - 2:c + 3, c - 2:c + 3] = a
        known[c - 2:c + 3, c - 2:c + 3] = True
    return dark, known


def _module_to_patch(ppm: int = PATCH_PPM, quiet: int = PATCH_QUIET) -> np.ndarray:
    """Module coordinates (0..n, corners of modules) -> patch pixel coordinates (pixel centres)."""
    return np.array([[ppm, 0, quiet * ppm - 0.5], [0, ppm, quiet * ppm - 0.5], [0, 0, 1.0]])


def _template(dark: np.ndarray, known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    n = dark.shape[0]
    side = n + 2 * PATCH_QUIET
    t = np.full((side, side), 255, np.uint8)
    t[PATCH_QUIET:PATCH_QUIET + n, PATCH_QUIET:PATCH_QUIET + n][dark] = 0
    t = cv2.resize(t, None, fx=PATCH_PPM, fy=PATCH_PPM, interpolation=cv2.INTER_NEAREST)
    if known is None:
        return t, None
    m = np.ones((side, side), np.uint8)
    m[PATCH_QUIET:PATCH_QUIET + n, PATCH_QUIET:PATCH_QUIET + n][~known] = 0
    return t, cv2.resize(m, None, fx=PATCH_PPM, fy=PATCH_PPM, interpolation=cv2.INTER_NEAREST)


@functools.lru_cache(maxsize=4096)
def _code_template(text: str) -> np.ndarray:
    return _template(_modules(text))[0]


@functools.lru_cache(maxsize=16)
def _structure_template(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, m = _template(*_structure(n))
    assert m is not None
    return t, m


def _square(n: float) -> np.ndarray:
    return np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float64)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(1, -1, 2), h)[0]


def _patch_to_photo(quad: np.ndarray, n: int) -> np.ndarray:
    """Homography from patch px to photo px for a code of side ``n`` modules whose corners are ``quad``."""
    to_photo = cv2.getPerspectiveTransform(_square(n).astype(np.float32), np.asarray(quad, np.float32))
    return to_photo.astype(np.float64) @ np.linalg.inv(_module_to_patch())


def _patch(gray: np.ndarray, patch_to_photo: np.ndarray, n: int) -> np.ndarray:
    side = (n + 2 * PATCH_QUIET) * PATCH_PPM
    return cv2.warpPerspective(gray, patch_to_photo, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def _ecc(template: np.ndarray, patch: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, float] | None:
    """Homography W with patch(W(x)) ~ template(x), and its correlation; None if it did not converge."""
    warp = np.eye(3, dtype=np.float32)
    try:
        cc, warp = cv2.findTransformECC(template, patch, warp, cv2.MOTION_HOMOGRAPHY,
                                        (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-4), mask, 5)
    except cv2.error:
        return None
    if not np.all(np.isfinite(warp)) or cc < MIN_ECC:
        return None
    return warp.astype(np.float64), float(cc)


class _Decoders:
    """OpenCV's two QR decoders, made once per run (they are not cheap to construct)."""

    def __init__(self) -> None:
        self.aruco = cv2.QRCodeDetectorAruco()
        self.classic = cv2.QRCodeDetector()

    def read(self, patch: np.ndarray) -> str:
        """Decode an upright rectified code patch; '' if nothing could be read."""
        for img in (patch, _sharpen(patch, 1.5), _sharpen(patch, 3.0)):
            for det in (self.classic, self.aruco):
                try:
                    text = det.detectAndDecode(img)[0]
                except cv2.error:
                    text = ""
                if text:
                    return text
        return ""


def _sharpen(img: np.ndarray, amount: float) -> np.ndarray:
    f = img.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), PATCH_PPM / 2)
    return np.clip(f + amount * (f - blur), 0, 255).astype(np.uint8)


@dataclass
class _Code:
    """A QR code found in a photo, read at full resolution."""

    quad: np.ndarray          # (4, 2) photo px, the code's own TL, TR, BR, BL
    text: str = ""
    refined: bool = False     # corners aligned to the printed module pattern
    ecc: float = 0.0
    marker: payload.MarkerPayload | None = None
    predicted: bool = False   # found where other markers said it must be


def _read_code(gray: np.ndarray, quad: np.ndarray, sizes: Sequence[int], dec: _Decoders) -> _Code:
    """Read the code whose coarse corners are ``quad``; refine its geometry on the shared QR structure."""
    code = _Code(quad=quad)
    n0 = sizes[0]
    code.text = dec.read(_patch(gray, _patch_to_photo(quad, n0), n0))
    if code.text:
        return code
    for n in sizes:
        patch_to_photo = _patch_to_photo(quad, n)
        t, m = _structure_template(n)
        fit = _ecc(t, _patch(gray, patch_to_photo, n), m)
        if fit is None:
            continue
        patch_to_photo = patch_to_photo @ fit[0]
        text = dec.read(_patch(gray, patch_to_photo, n))
        if text:
            code.text = text
            code.quad = _apply(patch_to_photo @ _module_to_patch(), _square(n))
            return code
    return code


def _refine(gray: np.ndarray, quad: np.ndarray, text: str) -> tuple[np.ndarray, float] | None:
    """Align the exact printed pattern of ``text`` to the code near ``quad``: sub-pixel corners and correlation."""
    n = _modules(text).shape[0]
    patch_to_photo = _patch_to_photo(quad, n)
    fit = _ecc(_code_template(text), _patch(gray, patch_to_photo, n), None)
    if fit is None:
        return None
    return _apply(patch_to_photo @ fit[0] @ _module_to_patch(), _square(n)), fit[1]


def _detect_quads(gray: np.ndarray, side: int, dec: _Decoders) -> list[np.ndarray]:
    """Corner quads (full-resolution px) of the QR codes OpenCV locates on a copy scaled to ``side``."""
    h, w = gray.shape
    s = min(1.0, side / max(h, w))
    if s < 1.0:
        small = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    else:
        small = gray
    sx, sy = small.shape[1] / w, small.shape[0] / h
    try:
        ok, pts = dec.aruco.detectMulti(small)
    except cv2.error:
        ok, pts = False, None
    quads = []
    if ok and pts is not None:
        for q in np.asarray(pts, np.float64).reshape(-1, 4, 2):
            full = np.column_stack([(q[:, 0] + 0.5) / sx - 0.5, (q[:, 1] + 0.5) / sy - 0.5])
            if np.all(np.isfinite(full)) and cv2.contourArea(full.astype(np.float32)) > 16:
                quads.append(full)
    return quads


# --------------------------------------------------------------------------- registration


@dataclass
class _PageFit:
    page: Page
    h: np.ndarray                   # page mm -> photo px
    markers: dict[str, _Code]       # corner -> code used
    reprojection_px: float
    module_px: float


def _marker_points(page: Page, codes: dict[str, _Code]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rects = {m.corner: m.rect for m in page.markers}
    corners = [c for c in payload.CORNERS if c in codes and c in rects]
    src = np.array([p for c in corners for p in rects[c].corners()], np.float64)
    dst = np.array([p for c in corners for p in codes[c].quad], np.float64)
    return src, dst, corners


def _module_px(h: np.ndarray, page: Page) -> float:
    """Mean side of one QR module in photo px, from the markers' mapped size."""
    sides = []
    for m in page.markers:
        q = _apply(h, np.array(m.rect.corners()))
        side = np.mean([np.linalg.norm(q[i] - q[(i + 1) % 4]) for i in range(4)])
        sides.append(side / _modules(m.payload).shape[0])
    return float(np.mean(sides))


def _fit_homography(page: Page, codes: dict[str, _Code], module_px_guess: float
                    ) -> tuple[np.ndarray, dict[str, _Code], float] | None:
    """Robust page->photo homography from the markers' corners; drops markers that disagree."""
    src, dst, corners = _marker_points(page, codes)
    if len(corners) < 2:
        return None
    thr = float(np.clip(0.5 * module_px_guess, 1.0, 8.0))
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, thr, maxIters=2000, confidence=0.999)
    if h is None or not np.all(np.isfinite(h)):
        return None
    err = np.linalg.norm(_apply(h, src) - dst, axis=1).reshape(-1, 4)
    keep = {c: codes[c] for c, e in zip(corners, err) if e.max() <= 2 * thr}
    if len(keep) < 2:
        return None
    src, dst, corners = _marker_points(page, keep)
    h, _ = cv2.findHomography(src, dst, 0)
    if h is None or not np.all(np.isfinite(h)):
        return None
    rms = float(np.sqrt(np.mean(np.sum((_apply(h, src) - dst) ** 2, axis=1))))
    return h, keep, rms


def _plausible(h: np.ndarray, page: Page, shape: tuple[int, int]) -> bool:
    """The page maps to a convex quad of sensible size (not folded, not at infinity)."""
    w, hh = page.size_mm
    q = _apply(h, _square(1.0) * [w, hh])
    if not np.all(np.isfinite(q)):
        return False
    # The homography's denominator must keep one sign over the page (no point at infinity).
    den = (np.array([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]], float) @ h[2])
    if not (np.all(den > 0) or np.all(den < 0)):
        return False
    if not cv2.isContourConvex(q.astype(np.float32).reshape(-1, 1, 2)):
        return False
    area = abs(cv2.contourArea(q.astype(np.float32)))
    return 1e2 < area < 1e4 * shape[0] * shape[1]


def _register_page(gray: np.ndarray, page: Page, found: dict[str, _Code], dec: _Decoders
                   ) -> tuple[_PageFit | None, str]:
    """Fit one page from its found markers, after looking for missing ones where they must be."""
    n = _modules(page.markers[0].payload).shape[0]
    guess = _module_px_from_codes(found.values(), n)
    fit = _fit_homography(page, found, guess) if len(found) >= 2 else None
    if len(found) == 1:
        code = next(iter(found.values()))
        corner = next(iter(found))
        rect = {m.corner: m.rect for m in page.markers}[corner]
        h1 = cv2.getPerspectiveTransform(np.array(rect.corners(), np.float32), code.quad.astype(np.float32))
        fit = (h1.astype(np.float64), dict(found), 0.0)
    if fit is None:
        return None, "markers disagree"
    codes = dict(fit[1])
    # Look for each missing marker where the fit puts it; accept only its exact payload.
    added = False
    for m in page.markers:
        if m.corner in codes:
            continue
        quad = _apply(fit[0], np.array(m.rect.corners()))
        if not _inside(quad, gray.shape, margin=-2 * guess):
            continue
        ref = _refine(gray, quad, m.payload)
        if ref is None:
            continue
        nm = _modules(m.payload).shape[0]
        if dec.read(_patch(gray, _patch_to_photo(ref[0], nm), nm)) != m.payload:
            continue
        codes[m.corner] = _Code(quad=ref[0], text=m.payload, refined=True, ecc=ref[1], predicted=True,
                                marker=payload.decode(m.payload))
        added = True
    if len(codes) < 2:
        return None, "one marker"
    if added or len(found) == 1:
        fit = _fit_homography(page, codes, guess)
        if fit is None:
            return None, "markers disagree"
    h, used, rms = fit
    if not _plausible(h, page, gray.shape):
        return None, "markers disagree"
    return _PageFit(page=page, h=h, markers=used, reprojection_px=rms, module_px=_module_px(h, page)), ""


def _module_px_from_codes(codes: Iterable[_Code], n: int) -> float:
    sides = [np.mean([np.linalg.norm(c.quad[i] - c.quad[(i + 1) % 4]) for i in range(4)]) / n for c in codes]
    return float(np.mean(sides)) if sides else 4.0


def _inside(quad: np.ndarray, shape: tuple[int, ...], margin: float = 0.0) -> bool:
    h, w = shape[:2]
    return bool(np.all(quad[:, 0] >= -0.5 + margin) and np.all(quad[:, 0] <= w - 0.5 - margin)
                and np.all(quad[:, 1] >= -0.5 + margin) and np.all(quad[:, 1] <= h - 0.5 - margin))


@dataclass
class _Scan:
    """Everything found in one photo."""

    fits: list[_PageFit]
    codes: list[_Code]
    other_experiments: list[str]
    other_codes: int
    failed_pages: dict[int, str]
    out_of_range: list[int] = field(default_factory=list)   # pages this experiment does not have


def _scan(gray: np.ndarray, experiment_id: str, pages: dict[int, Page], dec: _Decoders) -> _Scan:
    sizes = sorted({_modules(p.markers[0].payload).shape[0] for p in pages.values()})
    codes: list[_Code] = []

    def read_all(quads: list[np.ndarray]) -> None:
        for quad in quads:
            centre = quad.mean(axis=0)
            side = np.linalg.norm(quad[0] - quad[1])
            # The same code found twice (second search): keep the first.
            if any(np.linalg.norm(c.quad.mean(axis=0) - centre) < 0.5 * side for c in codes):
                continue
            codes.append(_read_code(gray, quad, sizes, dec))

    read_all(_detect_quads(gray, DETECT_SIDE, dec))
    by_page = _classify(codes, experiment_id, len(pages))
    if max((len(v) for v in by_page.values()), default=0) < 2 and max(gray.shape) > DETECT_SIDE:
        read_all(_detect_quads(gray, DETECT_SIDE_RETRY, dec))
        by_page = _classify(codes, experiment_id, len(pages))

    foreign = [_marker_of_any(c.text) for c in codes if c.marker is None and c.text]
    others = sorted({m.experiment_id for m in foreign if m is not None and m.experiment_id != experiment_id})
    out_of_range = sorted({m.page for m in foreign if m is not None and m.experiment_id == experiment_id})
    n_other = sum(1 for m in foreign if m is None)
    fits, failed = [], {}
    for number, found in sorted(by_page.items()):
        corners = [c.marker.corner for c in found if c.marker]
        if len(set(corners)) != len(corners):
            failed[number] = "appears twice in the photo"
            continue
        for c in found:
            ref = _refine(gray, c.quad, c.text)
            if ref is not None:
                c.quad, c.ecc, c.refined = ref[0], ref[1], True
        fit, why = _register_page(gray, pages[number], {c.marker.corner: c for c in found if c.marker}, dec)
        if fit is None:
            failed[number] = why
        else:
            fits.append(fit)
    return _Scan(fits=fits, codes=codes, other_experiments=others, other_codes=n_other, failed_pages=failed,
                 out_of_range=out_of_range)


def _marker_of_any(text: str) -> payload.MarkerPayload | None:
    """The marker a text encodes, of any experiment; None for other content."""
    try:
        return payload.decode(text)
    except payload.PayloadError:
        return None


def _classify(codes: list[_Code], experiment_id: str, n_pages: int) -> dict[int, list[_Code]]:
    by_page: dict[int, list[_Code]] = {}
    for c in codes:
        c.marker = None
        if not c.text:
            continue
        try:
            c.marker = payload.decode(c.text, experiment_id=experiment_id, n_pages=n_pages)
        except payload.PayloadError:
            continue
        by_page.setdefault(c.marker.page, []).append(c)
    return by_page


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class _Target:
    """A digital image a slot should match."""

    image_id: str
    variant: str
    size: tuple[int, int]        # (width, height) px
    digital: str                 # path for the index, relative to out (or absolute)


def _crop(rgb: np.ndarray, h: np.ndarray, rect: Rect, size: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """The slot ``rect`` (inset) resampled to ``size``; None if it is not wholly in the photo. Also native px."""
    dw, dh = size
    ix, iy = INSET * rect.w, INSET * rect.h
    inner = Rect(rect.x + ix, rect.y + iy, rect.w - 2 * ix, rect.h - 2 * iy)
    quad = _apply(h, np.array(inner.corners()))
    if not _inside(quad, rgb.shape):
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


def _write_file(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, like ``write_atomic`` but without fsync.

    Crops and overlays are many small files that a re-run rewrites
    identically; only the index and the state, written after them, are synced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _safe(name: str) -> str:
    s = _SAFE_NAME.sub("_", name).lstrip(".")
    return s or "_"


def _targets(manifest: dict[str, Any], printouts: Path, out: Path, warn: Callable[[str], None]
             ) -> dict[tuple[str, str], _Target]:
    """Digital image (path, size) of every (image id, variant) in the manifest."""
    fallback = manifest.get("model", {}).get("input_size") or [32, 32]
    images_dir = (printouts / "images").resolve()
    targets: dict[tuple[str, str], _Target] = {}
    missing = 0
    from PIL import Image

    for rec in manifest.get("images", []):
        for v in rec.get("variants", []):
            key = (str(rec.get("id")), str(v.get("name")))
            listed = (printouts / str(v.get("file", ""))).resolve()
            # The manifest is editable text: only ever point at our own images folder.
            path = listed if listed.parent == images_dir else images_dir / f"{_safe(key[0])}_{_safe(key[1])}.png"
            try:
                with Image.open(path) as im:
                    size = im.size
            except Exception:  # noqa: BLE001 - missing or unreadable: the model's input size
                size = (int(fallback[1]), int(fallback[0]))
                missing += 1
            targets[key] = _Target(key[0], key[1], size, _relpath(path, out))
    if missing:
        warn(f"{missing} digital images listed in {printouts / 'manifest.json'} are missing or unreadable; "
             f"their crops use the model's input size")
    return targets


def _relpath(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


# --------------------------------------------------------------------------- overlay


def _overlay(rgb: np.ndarray, scan: _Scan | None, title: str, ok: bool) -> bytes:
    """A small JPEG of the photo with what ingest found drawn on it, for the user to check.

    Green: markers used (labelled page and corner); red: codes ignored or
    markers of the page not found (where they should be); orange: codes that
    could not be read; blue: the image slots cut out, labelled image id and
    variant; the title bar says what happened.
    """
    h, w = rgb.shape[:2]
    s = min(1.0, OVERLAY_SIDE / max(h, w))
    small = rgb
    while max(small.shape[:2]) >= 2 * OVERLAY_SIDE:  # Gaussian halving first: 3x faster than one INTER_AREA
        small = cv2.pyrDown(small)
    img = cv2.resize(small, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    green, red, orange, blue = (0, 170, 0), (0, 0, 220), (0, 140, 255), (200, 90, 0)

    def pts(p: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(p) + 0.5) * s - 0.5).astype(np.int32).reshape(-1, 1, 2)

    def label(t: str, x: int, y: int, scale: float, fg: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
        """Text in a filled box whose top-left is (x, y), kept inside the image."""
        t = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in t)
        (tw, th), base = cv2.getTextSize(t, font, scale, 1)
        x = int(np.clip(x, 0, max(0, img.shape[1] - tw - 4)))
        y = int(np.clip(y, 0, max(0, img.shape[0] - th - base - 4)))
        cv2.rectangle(img, (x, y), (x + tw + 4, y + th + base + 3), bg, -1)
        cv2.putText(img, t, (x + 2, y + th + 2), font, scale, fg, 1, cv2.LINE_AA)

    if scan is not None:
        used = {id(c) for f in scan.fits for c in f.markers.values()}
        for f in scan.fits:
            for slot in f.page.slots:
                q = pts(_apply(f.h, np.array(slot.rect.corners())))
                cv2.polylines(img, [q], True, blue, 1, cv2.LINE_AA)
                side = float(np.linalg.norm(q[1, 0] - q[0, 0]))
                fs = float(np.clip(side / 190, 0.28, 0.5))
                x, y = q[:, 0, 0].min() + 2, q[:, 0, 1].min() + 2
                label(slot.image_id, x, y, fs, (255, 255, 255), blue)
                label(slot.variant, x, y + int(30 * fs) + 2, fs, (255, 255, 255), blue)
            for m in f.page.markers:
                if m.corner not in f.markers:
                    q = pts(_apply(f.h, np.array(m.rect.corners())))
                    cv2.polylines(img, [q], True, red, 1, cv2.LINE_AA)
                    label(f"{m.corner} not found", q[:, 0, 0].min(), q[:, 0, 1].min() - 16, 0.4, (255, 255, 255), red)
        codes = list(scan.codes) + [c for f in scan.fits for c in f.markers.values() if c.predicted]
        for c in codes:
            if id(c) in used:
                color, text = green, f"page {c.marker.page} {c.marker.corner}" if c.marker else "marker"
            elif c.marker is not None:
                color, text = red, f"page {c.marker.page} {c.marker.corner} (not used)"
            elif c.text:
                other = _marker_of_any(c.text)
                color, text = red, (f"experiment {other.experiment_id}" if other else f"other QR: {c.text[:20]}")
            else:
                color, text = orange, "unreadable QR"
            q = pts(c.quad)
            cv2.polylines(img, [q], True, color, 2, cv2.LINE_AA)
            tl = q[0, 0]  # the code's own top-left corner: shows how the page lies
            cv2.circle(img, (int(tl[0]), int(tl[1])), 4, color, -1, cv2.LINE_AA)
            label(text, q[:, 0, 0].min(), q[:, 0, 1].min() - 18, 0.45, (255, 255, 255), color)
    lines = title.split("\n")
    bar = 10 + 22 * len(lines)
    cv2.rectangle(img, (0, 0), (img.shape[1], bar), (255, 255, 255), -1)
    for i, line in enumerate(lines):
        cv2.putText(img, "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in line), (8, 24 + 22 * i), font, 0.55,
                    green if ok else red, 1, cv2.LINE_AA)
    return encode_jpeg(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), 85)


# --------------------------------------------------------------------------- state


def _read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE_NAME
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PhysicalError(f"{path}: unreadable ({type(exc).__name__}); move the folder away "
                            "or use --out DIR") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not isinstance(state.get("photos"), list):
        raise PhysicalError(f"{path}: not a physical captures state file; use --out DIR for another folder")
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise PhysicalError(f"{path}: captures format version {state.get('format_version')} is not supported "
                            f"(this physical reads version {STATE_FORMAT_VERSION}); use --out DIR")
    return state


def _read_index(out: Path, done: set[str]) -> list[dict[str, str]]:
    """Rows of earlier runs, for photos the state lists (rows of an interrupted photo are dropped)."""
    path = out / INDEX_NAME
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PhysicalError(f"{path}: unreadable ({type(exc).__name__}); move the folder away "
                            "or use --out DIR") from None
    return [{k: r.get(k) or "" for k in INDEX_COLUMNS} for r in rows if r.get("photo_sha256") in done]


def _write_index(out: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / INDEX_NAME, buf.getvalue().encode("utf-8"))


def _write_state(out: Path, state: dict[str, Any]) -> None:
    state["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_atomic(out / STATE_NAME, (json.dumps(state, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def _list_photos(photos: Path, skip: Sequence[Path]) -> tuple[list[Path], int]:
    """Photo files under ``photos`` (sorted), and the number of other (non-hidden) files."""
    skip_resolved = [p.resolve() for p in skip]
    found, others = [], 0
    for root, dirs, files in os.walk(photos):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (rootp / d).resolve() not in skip_resolved)
        for name in sorted(files):
            p = rootp / name
            if name.startswith("."):
                continue
            if p.suffix.lower() in PHOTO_SUFFIXES and is_photo_name(p):
                found.append(p)
            else:
                others += 1
    return sorted(found, key=lambda p: p.relative_to(photos).as_posix()), others


# --------------------------------------------------------------------------- main


def ingest(
    photos: Path,
    *,
    printouts: Path = Path("printouts"),
    out: Path = Path("captures"),
    strict: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> IngestResult:
    """Find the printed sheets in the photos under ``photos`` and cut out every image.

    Writes into ``out``:

    - ``crops/<first 12 hex of the photo's SHA-256>/<image id>_<variant>.png``:
      each slot, registered and resampled to its digital image's size (8-bit
      RGB, lossless);
    - ``index.csv``: one row per crop, columns INDEX_COLUMNS; ``crop`` is
      relative to ``out``, ``digital`` is the digital PNG relative to ``out``
      (absolute if no relative path exists);
    - ``overlays/<checksum12>.jpg``: the photo with the markers and slots found;
    - ``ingest.json``: the experiment id and the photos ingested.

    ``progress(stage, done, total)`` is called per photo, ``warn(message)`` for
    problems that do not stop a photo. Photos that cannot be used are skipped
    and listed in the result with a one-line reason; only problems with the
    folders or the manifest raise :class:`PhysicalError`.
    """
    photos, printouts, out = Path(photos), Path(printouts), Path(out)
    progress = progress or (lambda stage, done, total: None)
    warn = warn or (lambda message: None)
    manifest = read_manifest(printouts)
    experiment_id = str(manifest.get("experiment_id", ""))
    try:
        payload.check_experiment_id(experiment_id)
        pages = {p.number: p for p in manifest_pages(manifest)}
    except (payload.PayloadError, ValueError, KeyError, TypeError) as exc:
        raise PhysicalError(f"{printouts / 'manifest.json'}: {exc}; re-run `physical make-sheets --force`") from None
    if not photos.exists():
        raise PhysicalError(f"{photos}: no such folder; give the folder holding the photos of the printed sheets")
    if not photos.is_dir():
        raise PhysicalError(f"{photos}: not a folder; give the folder holding the photos of the printed sheets")
    if out.exists() and not out.is_dir():
        raise PhysicalError(f"--out {out}: exists and is not a folder")
    state = _read_state(out)
    if state is not None and state.get("experiment_id") != experiment_id:
        raise PhysicalError(f"{out} holds captures of experiment {state.get('experiment_id')}, but {printouts} "
                            f"is experiment {experiment_id}; use --out DIR for a new captures folder")
    if state is None:
        state = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "experiment_id": experiment_id,
                 "tool_version": __version__, "printouts": str(printouts.resolve()), "photos": []}
    done: dict[str, dict[str, Any]] = {str(p.get("sha256")): p for p in state["photos"] if isinstance(p, dict)}
    rows = _read_index(out, set(done))
    photos_before = len(done)

    files, not_images = _list_photos(photos, [out, printouts])
    targets = _targets(manifest, printouts, out, warn)
    dec = _Decoders()
    outcomes: list[PhotoOutcome] = []
    progress("photos", 0, len(files))
    for i, path in enumerate(files):
        name = path.relative_to(photos).as_posix()
        try:
            outcome, new_rows = _ingest_one(path, name, experiment_id, pages, targets, out, done, dec)
        except OSError as exc:  # reading is handled inside: this is a write into out
            raise PhysicalError(f"--out {out}: cannot write ({type(exc).__name__}: {exc})") from None
        except MemoryError:
            outcome, new_rows = _skip(name, "not enough memory to process this photo"), []
        except Exception as exc:  # noqa: BLE001 - one odd photo must not stop the run
            outcome, new_rows = _skip(name, f"could not be processed ({type(exc).__name__}: "
                                            f"{' '.join(str(exc).split())[:120]}); please report this"), []
        outcomes.append(outcome)
        for w in outcome.warnings:
            warn(f"{name}: {w}")
        if outcome.status == "ingested":
            rows.extend(new_rows)
            entry = {"sha256": outcome.sha256, "photo": name, "pages": list(outcome.pages), "crops": outcome.crops,
                     "markers_used": list(outcome.markers_used),
                     "reprojection_px": list(outcome.reprojection_px),
                     "homographies": [list(h) for h in outcome.homographies],
                     "ingested": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            done[outcome.sha256] = entry
            state["photos"].append(entry)
            # Index first, state second: rows of a photo the state does not list are dropped on the next run.
            try:
                _write_index(out, rows)
                _write_state(out, state)
            except OSError as exc:
                raise PhysicalError(f"--out {out}: cannot write ({type(exc).__name__}: {exc})") from None
        progress("photos", i + 1, len(files))
    seen = sorted({int(p) for e in done.values() for p in e.get("pages", []) if str(p).isdigit()})
    return IngestResult(out=out, experiment_id=experiment_id, n_pages=len(pages), outcomes=tuple(outcomes),
                        not_images=not_images, pages_seen=tuple(seen),
                        pages_missing=tuple(n for n in sorted(pages) if n not in seen),
                        crops_total=len(rows), photos_before=photos_before, strict=strict)


def _skip(name: str, reason: str, sha: str = "", overlay: str = "", warnings: Sequence[str] = ()) -> PhotoOutcome:
    return PhotoOutcome(photo=name, status="skipped", reason=reason, sha256=sha, overlay=overlay,
                        warnings=tuple(warnings))


def _ingest_one(path: Path, name: str, experiment_id: str, pages: dict[int, Page],
                targets: dict[tuple[str, str], _Target], out: Path, done: dict[str, dict[str, Any]],
                dec: _Decoders) -> tuple[PhotoOutcome, list[dict[str, str]]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _skip(name, f"cannot read the file ({type(exc).__name__})"), []
    sha = hashlib.sha256(data).hexdigest()
    if sha in done:
        first = done[sha].get("photo", "")
        why = "already ingested" + (f" (same content as {first})" if first and first != name else "")
        return PhotoOutcome(photo=name, status="already ingested", reason=why, sha256=sha), []
    try:
        rgb = decode_photo(data)
    except PhotoError as exc:
        return _skip(name, str(exc), sha), []
    del data
    h, w = rgb.shape[:2]
    if max(h, w) < MIN_PHOTO_SIDE:
        return _skip(name, f"too small ({w}x{h} pixels) to read the corner codes", sha), []
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scan = _scan(gray, experiment_id, pages, dec)
    key = sha[:12]
    overlay_rel = f"{OVERLAYS_DIR}/{key}.jpg"

    def skipped(reason: str) -> tuple[PhotoOutcome, list[dict[str, str]]]:
        try:
            _write_file(out / overlay_rel, _overlay(rgb, scan, f"{name}: skipped\n{reason}", ok=False))
        except OSError:
            return _skip(name, reason, sha), []
        return _skip(name, reason, sha, overlay_rel), []

    if not scan.fits:
        return skipped(_why_nothing(scan, experiment_id, pages))

    warnings: list[str] = []
    if scan.other_experiments:
        warnings.append(f"also shows markers of another experiment ({', '.join(scan.other_experiments)}); ignored")
    for number, why in sorted(scan.failed_pages.items()):
        warnings.append(f"page {number} also in view but not used: {why}")
    rows: list[dict[str, str]] = []
    crop_dir = f"{CROPS_DIR}/{key}"
    used_pages, used_markers, reproj, homs = [], [], [], []
    for fit in scan.fits:
        page_warn: list[str] = []
        if len(fit.markers) < 4:
            missing = [c for c in payload.CORNERS if c not in fit.markers]
            page_warn.append(f"{len(fit.markers)} markers ({'/'.join(missing)} not found)")
        if fit.reprojection_px > MAX_REPROJ_MODULES * fit.module_px:
            warnings.append(f"page {fit.page.number}: markers disagree (reprojection error "
                            f"{fit.reprojection_px:.1f} px); not used")
            continue
        coarse = [c for c in payload.CORNERS if c in fit.markers and not fit.markers[c].refined]
        if coarse:
            page_warn.append(f"corners of marker {'/'.join(coarse)} only roughly located (blurred?)")
        if fit.reprojection_px > WARN_REPROJ_MODULES * fit.module_px:
            page_warn.append(f"registration uncertain (reprojection error {fit.reprojection_px:.1f} px)")
        outside, lowres, n_rows = 0, [], len(rows)
        for slot in fit.page.slots:
            target = targets.get((slot.image_id, slot.variant))
            if target is None:
                continue
            got = _crop(rgb, fit.h, slot.rect, target.size)
            if got is None:
                outside += 1
                continue
            crop, native = got
            crop_warn = list(page_warn)
            if native < 0.75 * max(target.size):
                crop_warn.append(f"low resolution ({native:.0f} photo px for a {max(target.size)} px image)")
                lowres.append((native, max(target.size)))
            rel = f"{crop_dir}/{_safe(slot.image_id)}_{_safe(slot.variant)}.png"
            _write_file(out / rel, encode_png(crop))
            rows.append({"photo": name, "photo_sha256": sha, "page": str(fit.page.number), "slot": str(slot.index),
                         "image_id": slot.image_id, "variant": slot.variant, "crop": rel,
                         "digital": target.digital, "markers_used": str(len(fit.markers)),
                         "reprojection_px": f"{fit.reprojection_px:.3f}", "warnings": "; ".join(crop_warn)})
        if outside:
            page_warn.append(f"{outside} of {len(fit.page.slots)} images outside the photo, not cropped")
        if lowres:
            page_warn.append(f"{len(lowres)} images covered by fewer photo pixels than their own (about "
                             f"{np.median([a for a, _ in lowres]):.0f} for {lowres[0][1]}); photograph closer")
        if page_warn:
            warnings.append(f"page {fit.page.number}: " + "; ".join(page_warn))
        if len(rows) == n_rows:
            continue
        used_pages.append(fit.page.number)
        used_markers.append(len(fit.markers))
        reproj.append(round(fit.reprojection_px, 3))
        homs.append(tuple(float(v) for v in (fit.h / fit.h[2, 2]).ravel()))
    if not rows:
        return skipped("no image of the page is wholly inside the photo" if used_pages else
                       "; ".join(warnings) or "registration failed")
    pages_text = ", ".join(f"page {p} ({m} markers, {r:.2f} px)" for p, m, r in zip(used_pages, used_markers, reproj))
    _write_file(out / overlay_rel, _overlay(rgb, scan, f"{name}: {pages_text}", ok=True))
    return PhotoOutcome(photo=name, status="ingested", sha256=sha, pages=tuple(used_pages), crops=len(rows),
                        markers_used=tuple(used_markers), reprojection_px=tuple(reproj),
                        warnings=tuple(warnings), overlay=overlay_rel, homographies=tuple(homs)), rows


def _why_nothing(scan: _Scan, experiment_id: str, pages: dict[int, Page]) -> str:
    """One-line reason for a photo where no page could be registered."""
    if scan.other_experiments:
        ids = ", ".join(scan.other_experiments)
        return (f"sheet of another experiment ({ids}), not {experiment_id}; ingest it with --printouts "
                f"pointing at that experiment's folder")
    for number, why in sorted(scan.failed_pages.items()):
        if why == "one marker":
            found = [c.marker.corner for c in scan.codes if c.marker and c.marker.page == number]
            return (f"only 1 marker of page {number} found ({'/'.join(found)}); at least 2 of the 4 corner "
                    f"codes must be readable")
        return f"page {number}: {why}"
    readable = [c for c in scan.codes if c.text]
    if scan.out_of_range:
        return (f"markers of page {', '.join(map(str, scan.out_of_range))} found, but experiment {experiment_id} "
                f"has {len(pages)} pages")
    if scan.other_codes:
        return f"no marker of experiment {experiment_id} found ({scan.other_codes} other QR code(s) ignored)"
    if scan.codes and not readable:
        return f"{len(scan.codes)} QR code(s) found but none could be read (blurred, too small or glare?)"
    return "no QR markers found (is a whole printed page in view, sharp and evenly lit?)"
