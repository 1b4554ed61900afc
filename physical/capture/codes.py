"""The corner QR codes: locating them, reading them at full resolution, and refining their corners.

OpenCV's ``QRCodeDetectorAruco`` locates codes on a downscaled copy; each code
is then rectified from the full-resolution photo to an upright patch and
decoded there (OpenCV's two decoders, a sharpened patch, then after aligning
the patch to the structure every QR code shares). When that finds no code of
any page, ZXing (``zxing-cpp``) searches an enlarged, then sharpened copy of
the photo (:func:`zxing_codes`): blurred codes of 3-4 px modules, which
OpenCV neither locates nor reads, are often read there. Corners are refined to
sub-pixel accuracy by aligning the exact module pattern printed for the
code's payload (``cv2.findTransformECC``). Every text is validated strictly
by :func:`physical.sheets.payload.decode`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..sheets import payload

# Codes are located on a copy whose longest side is DETECT_SIDE px (measured
# in bench/ingest.py: at 1600 px the detector finds the 20 mm codes of a
# whole A4 page even in blurred 12 MP photos, and takes ~20 ms).
DETECT_SIDE = 1600
# A second, finer search when the first finds fewer than two markers of a page.
DETECT_SIDE_RETRY = 2600
# Finer passes look for finder patterns down to this side in px (2.1 px modules).
FINE_FINDER_PX = 15
# Rectified code patches: px per QR module, and white modules kept around
# the code (the sheet prints 5 modules of quiet zone).
PATCH_PPM = 6
PATCH_QUIET = 3
# Alignment of a patch to its template must reach this correlation.
MIN_ECC = 0.6
# ZXing's last resort, tried in order until a code is read: (scale, unsharp amount).
# Enlarging first lets its binarizer separate modules of 3-4 px blurred by 2-3 px;
# the sharpened copies help with defocus (bench/ingest.py, hard: 4 of 4 photos
# OpenCV read nothing in gave a code). Enlarged copies stay below ZXING_MAX_PIXELS.
ZXING_LADDER = ((1.5, 0.0), (1.5, 1.0), (2.0, 0.0), (2.0, 2.0), (3.0, 1.0))
ZXING_MAX_PIXELS = 60_000_000


@functools.lru_cache(maxsize=4096)
def qr_modules(text: str) -> np.ndarray:
    """The module matrix (True = dark) that the PDF prints for ``text`` (same encoder and level)."""
    from reportlab.graphics.barcode.qr import QrCodeWidget

    from ..sheets.pdf import QR_ERROR_LEVEL

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
    return _template(qr_modules(text))[0]


@functools.lru_cache(maxsize=16)
def _structure_template(n: int) -> tuple[np.ndarray, np.ndarray]:
    t, m = _template(*_structure(n))
    assert m is not None
    return t, m


def square(n: float) -> np.ndarray:
    return np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float64)


def quad_side(quad: np.ndarray) -> float:
    """Mean side length of a quad (4, 2)."""
    q = np.asarray(quad, np.float64)
    return float(np.mean(np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1)))


def transform_points(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(1, -1, 2), h)[0]


def patch_homography(quad: np.ndarray, n: int) -> np.ndarray:
    """Homography from patch px to photo px for a code of side ``n`` modules whose corners are ``quad``."""
    to_photo = cv2.getPerspectiveTransform(square(n).astype(np.float32), np.asarray(quad, np.float32))
    return to_photo.astype(np.float64) @ np.linalg.inv(_module_to_patch())


def rectify(gray: np.ndarray, patch_to_photo: np.ndarray, n: int) -> np.ndarray:
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


class Decoders:
    """OpenCV's two QR decoders, made once per run (they are not cheap to construct)."""

    def __init__(self) -> None:
        self.aruco = cv2.QRCodeDetectorAruco()
        self.classic = cv2.QRCodeDetector()
        # For the finer passes: its finder-pattern search allows squares down to FINE_FINDER_PX
        # (the default's 2 % of the image's longest side is 20 px in a 12 MP photo: 3 px modules
        # make 21 px finder patterns). On 5 hard virtual photos no code was located by the
        # default; this located codes in 2.
        self.aruco_fine = cv2.QRCodeDetectorAruco()
        self._fine_side = 0

    def fine(self, side: int) -> cv2.QRCodeDetectorAruco:
        if side != self._fine_side:
            params = self.aruco_fine.getArucoParameters()
            params.minMarkerPerimeterRate = min(params.minMarkerPerimeterRate, 4 * FINE_FINDER_PX / side)
            self.aruco_fine.setArucoParameters(params)
            self._fine_side = side
        return self.aruco_fine

    def read(self, patch: np.ndarray) -> str:
        """Decode an upright rectified code patch; '' if nothing could be read."""
        for img in (patch, sharpen(patch, 1.5), sharpen(patch, 3.0)):
            for det in (self.classic, self.aruco):
                try:
                    text = det.detectAndDecode(img)[0]
                except cv2.error:
                    text = ""
                if text:
                    return text
        return ""


def sharpen(img: np.ndarray, amount: float, sigma: float = PATCH_PPM / 2) -> np.ndarray:
    """Unsharp mask of a uint8 image: ``img + amount * (img - blur_sigma(img))``, clipped."""
    f = img.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), sigma)
    return np.clip(f + amount * (f - blur), 0, 255).astype(np.uint8)


@dataclass
class Code:
    """A QR code found in a photo, read at full resolution."""

    quad: np.ndarray          # (4, 2) photo px, the code's own TL, TR, BR, BL
    text: str = ""
    refined: bool = False     # corners aligned to the printed module pattern
    ecc: float = 0.0
    marker: payload.MarkerPayload | None = None
    predicted: bool = False   # found where other markers said it must be


def read_code(gray: np.ndarray, quad: np.ndarray, sizes: Sequence[int], dec: Decoders) -> Code:
    """Read the code whose coarse corners are ``quad``; refine its geometry on the shared QR structure."""
    code = Code(quad=quad)
    n0 = sizes[0]
    code.text = dec.read(rectify(gray, patch_homography(quad, n0), n0))
    if code.text:
        return code
    for n in sizes:
        patch_to_photo = patch_homography(quad, n)
        t, m = _structure_template(n)
        fit = _ecc(t, rectify(gray, patch_to_photo, n), m)
        if fit is None:
            continue
        patch_to_photo = patch_to_photo @ fit[0]
        text = dec.read(rectify(gray, patch_to_photo, n))
        if text:
            code.text = text
            code.quad = transform_points(patch_to_photo @ _module_to_patch(), square(n))
            return code
    return code


def refine(gray: np.ndarray, quad: np.ndarray, text: str) -> tuple[np.ndarray, float] | None:
    """Align the exact printed pattern of ``text`` to the code near ``quad``: sub-pixel corners and correlation."""
    n = qr_modules(text).shape[0]
    patch_to_photo = patch_homography(quad, n)
    fit = _ecc(_code_template(text), rectify(gray, patch_to_photo, n), None)
    if fit is None:
        return None
    return transform_points(patch_to_photo @ fit[0] @ _module_to_patch(), square(n)), fit[1]


def detect_quads(gray: np.ndarray, side: int, dec: Decoders) -> list[np.ndarray]:
    """Corner quads (full-resolution px) of the QR codes OpenCV locates on a copy scaled to ``side``."""
    h, w = gray.shape
    s = min(1.0, side / max(h, w))
    if s < 1.0:
        small = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    else:
        small = gray
    sx, sy = small.shape[1] / w, small.shape[0] / h
    detector = dec.aruco if max(small.shape) <= DETECT_SIDE else dec.fine(max(small.shape))
    try:
        ok, pts = detector.detectMulti(small)
    except cv2.error:
        ok, pts = False, None
    quads = []
    if ok and pts is not None:
        for q in np.asarray(pts, np.float64).reshape(-1, 4, 2):
            full = np.column_stack([(q[:, 0] + 0.5) / sx - 0.5, (q[:, 1] + 0.5) / sy - 0.5])
            if np.all(np.isfinite(full)) and cv2.contourArea(full.astype(np.float32)) > 16:
                quads.append(full)
    return quads


def zxing_codes(gray: np.ndarray, accept: Callable[[list[Code]], bool]) -> list[Code]:
    """Codes ZXing reads in enlarged (and sharpened) copies of ``gray``; stops once ``accept(codes)``.

    Each code's quad is ZXing's corner estimate in full-resolution px (the
    caller refines it on the printed pattern); its text is not validated here.
    """
    import zxingcpp

    found: list[Code] = []
    h, w = gray.shape
    limit = (ZXING_MAX_PIXELS / (h * w)) ** 0.5
    done: set[tuple[float, float]] = set()
    for scale, amount in ZXING_LADDER:
        s = round(min(scale, limit), 3)
        if s <= 1.0 or (s, amount) in done:
            continue
        done.add((s, amount))
        big = cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        if amount:   # unsharp mask in uint8 (saturating): no float copy of a large image
            big = cv2.addWeighted(big, 1 + amount, cv2.GaussianBlur(big, (0, 0), 2 * s), -amount, 0)
        sx, sy = big.shape[1] / w, big.shape[0] / h
        for r in zxingcpp.read_barcodes(big, formats=zxingcpp.BarcodeFormat.QRCode, try_downscale=False):
            p = r.position
            q = np.array([[c.x, c.y] for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)], np.float64)
            quad = np.column_stack([(q[:, 0] + 0.5) / sx - 0.5, (q[:, 1] + 0.5) / sy - 0.5])
            if not r.text or any(np.linalg.norm(c.quad.mean(0) - quad.mean(0)) < 0.5 * quad_side(quad)
                                 for c in found):
                continue
            found.append(Code(quad=quad, text=r.text))
        if accept(found):
            break
    return found


def marker_of_any(text: str) -> payload.MarkerPayload | None:
    """The marker a text encodes, of any experiment; None for other content."""
    try:
        return payload.decode(text)
    except payload.PayloadError:
        return None


def classify_codes(codes: list[Code], experiment_id: str, n_pages: int) -> dict[int, list[Code]]:
    by_page: dict[int, list[Code]] = {}
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
