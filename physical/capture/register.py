"""Registration: the page-mm -> photo-px homography of every page in view, from its corner markers.

The homography is fitted to the corners of all markers of a page (RANSAC,
then least squares on the markers whose corners all agree); two markers (8
points) suffice. Markers of the page that were not detected are looked for
where the others predict them, and used only if they decode to exactly the
expected payload. :func:`scan_photo` runs the whole search on one photo.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..sheets import payload
from ..sheets.layout import Page
from .codes import (DETECT_SIDE, DETECT_SIDE_RETRY, transform_points, Code, classify_codes, Decoders, detect_quads,
                    marker_of_any, qr_modules, rectify, patch_homography, read_code, refine, square)


@dataclass
class PageFit:
    page: Page
    h: np.ndarray                   # page mm -> photo px
    markers: dict[str, Code]       # corner -> code used
    reprojection_px: float
    module_px: float


def _marker_points(page: Page, codes: dict[str, Code]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rects = {m.corner: m.rect for m in page.markers}
    corners = [c for c in payload.CORNERS if c in codes and c in rects]
    src = np.array([p for c in corners for p in rects[c].corners()], np.float64)
    dst = np.array([p for c in corners for p in codes[c].quad], np.float64)
    return src, dst, corners


def _module_px(h: np.ndarray, page: Page) -> float:
    """Mean side of one QR module in photo px, from the markers' mapped size."""
    sides = []
    for m in page.markers:
        q = transform_points(h, np.array(m.rect.corners()))
        side = np.mean([np.linalg.norm(q[i] - q[(i + 1) % 4]) for i in range(4)])
        sides.append(side / qr_modules(m.payload).shape[0])
    return float(np.mean(sides))


def _fit_homography(page: Page, codes: dict[str, Code], module_px_guess: float
                    ) -> tuple[np.ndarray, dict[str, Code], float] | None:
    """Robust page->photo homography from the markers' corners; drops markers that disagree."""
    src, dst, corners = _marker_points(page, codes)
    if len(corners) < 2:
        return None
    thr = float(np.clip(0.5 * module_px_guess, 1.0, 8.0))
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, thr, maxIters=2000, confidence=0.999)
    if h is None or not np.all(np.isfinite(h)):
        return None
    err = np.linalg.norm(transform_points(h, src) - dst, axis=1).reshape(-1, 4)
    keep = {c: codes[c] for c, e in zip(corners, err) if e.max() <= 2 * thr}
    if len(keep) < 2:
        return None
    src, dst, corners = _marker_points(page, keep)
    h, _ = cv2.findHomography(src, dst, 0)
    if h is None or not np.all(np.isfinite(h)):
        return None
    rms = float(np.sqrt(np.mean(np.sum((transform_points(h, src) - dst) ** 2, axis=1))))
    return h, keep, rms


def _plausible(h: np.ndarray, page: Page, shape: tuple[int, int]) -> bool:
    """The page maps to a convex quad of sensible size (not folded, not at infinity)."""
    w, hh = page.size_mm
    q = transform_points(h, square(1.0) * [w, hh])
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


def _register_page(gray: np.ndarray, page: Page, found: dict[str, Code], dec: Decoders
                   ) -> tuple[PageFit | None, str]:
    """Fit one page from its found markers, after looking for missing ones where they must be."""
    n = qr_modules(page.markers[0].payload).shape[0]
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
        quad = transform_points(fit[0], np.array(m.rect.corners()))
        if not inside(quad, gray.shape, margin=-2 * guess):
            continue
        ref = refine(gray, quad, m.payload)
        if ref is None:
            continue
        nm = qr_modules(m.payload).shape[0]
        if dec.read(rectify(gray, patch_homography(ref[0], nm), nm)) != m.payload:
            continue
        codes[m.corner] = Code(quad=ref[0], text=m.payload, refined=True, ecc=ref[1], predicted=True,
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
    return PageFit(page=page, h=h, markers=used, reprojection_px=rms, module_px=_module_px(h, page)), ""


def _module_px_from_codes(codes: Iterable[Code], n: int) -> float:
    sides = [np.mean([np.linalg.norm(c.quad[i] - c.quad[(i + 1) % 4]) for i in range(4)]) / n for c in codes]
    return float(np.mean(sides)) if sides else 4.0


def inside(quad: np.ndarray, shape: tuple[int, ...], margin: float = 0.0) -> bool:
    h, w = shape[:2]
    return bool(np.all(quad[:, 0] >= -0.5 + margin) and np.all(quad[:, 0] <= w - 0.5 - margin)
                and np.all(quad[:, 1] >= -0.5 + margin) and np.all(quad[:, 1] <= h - 0.5 - margin))


@dataclass
class Scan:
    """Everything found in one photo."""

    fits: list[PageFit]
    codes: list[Code]
    other_experiments: list[str]
    other_codes: int
    failed_pages: dict[int, str]
    out_of_range: list[int] = field(default_factory=list)   # pages this experiment does not have


def scan_photo(gray: np.ndarray, experiment_id: str, pages: dict[int, Page], dec: Decoders) -> Scan:
    sizes = sorted({qr_modules(p.markers[0].payload).shape[0] for p in pages.values()})
    codes: list[Code] = []

    def read_all(quads: list[np.ndarray]) -> None:
        for quad in quads:
            centre = quad.mean(axis=0)
            side = np.linalg.norm(quad[0] - quad[1])
            # The same code found twice (second search): keep the first.
            if any(np.linalg.norm(c.quad.mean(axis=0) - centre) < 0.5 * side for c in codes):
                continue
            codes.append(read_code(gray, quad, sizes, dec))

    read_all(detect_quads(gray, DETECT_SIDE, dec))
    by_page = classify_codes(codes, experiment_id, len(pages))
    if max((len(v) for v in by_page.values()), default=0) < 2 and max(gray.shape) > DETECT_SIDE:
        read_all(detect_quads(gray, DETECT_SIDE_RETRY, dec))
        by_page = classify_codes(codes, experiment_id, len(pages))

    foreign = [marker_of_any(c.text) for c in codes if c.marker is None and c.text]
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
            ref = refine(gray, c.quad, c.text)
            if ref is not None:
                c.quad, c.ecc, c.refined = ref[0], ref[1], True
        fit, why = _register_page(gray, pages[number], {c.marker.corner: c for c in found if c.marker}, dec)
        if fit is None:
            failed[number] = why
        else:
            fits.append(fit)
    return Scan(fits=fits, codes=codes, other_experiments=others, other_codes=n_other, failed_pages=failed,
                 out_of_range=out_of_range)
