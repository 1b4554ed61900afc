"""Registration: where every printed image of every page in view lies in the photo.

Identity first: a page is in view when at least one of its corner QR codes is
read and validated (:mod:`.codes`).

Pages with registration marks (manifest format 2) are registered locally,
one image at a time, because a sheet that curls or waves is not one plane:
one homography per page leaves the middle of a curled page several percent
of an image off (measured: up to 85 % of the image width on hard photos, with
two markers on one edge). For each image, a homography is fitted to the
corners of the marks (and corner codes) nearest to it, taken in order of
distance until their convex hull, in page millimetres, covers the whole
image: a fit is never extrapolated outside the region its marks span. Over
the ~35 mm that the marks around one 25 mm image span, a curled sheet is
close to a plane (a homography per cell is the piecewise-projective model of
document dewarping), and the fit's residual at the marks measures how close.
An image is dropped, with its reason, when the marks around it are too few to
cover it, or when they disagree (RMS residual above MAX_RESIDUAL_PCT of the
image's width in the photo). A smooth warp over
all marks of the page was the alternative; the local homography was chosen
because its failure is local and measurable: a mark that is missed or wrong
affects only the images next to it, and each image carries its own residual.

Marks the detector cannot read (3 px modules, blur) are looked for by their
known pattern where their nearest known neighbours put them
(:func:`_grow_marks`): around images that lack marks, and, when too few marks
were read to fit the page at all, outwards from the corner codes.

Marks are accepted by id (each id is printed once on a page) and by position:
a global homography of the page, fitted robustly (RANSAC) to all marks and
codes of the page, must put the mark within MARK_ACCEPT_PITCH image pitches of
where it was found; that rejects false detections and marks of another page
that shares the id block, while tolerating the curl that the local fits then
follow.

Pages without marks (format 1) are registered as before: one homography
fitted to the corners of all corner codes of the page (RANSAC, then least
squares on the codes whose corners all agree); two codes (8 points) suffice.

In both cases corner codes that were not detected are looked for where the
others predict them, and used only if they decode to exactly the expected
payload. :func:`scan_photo` runs the whole search on one photo.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..sheets import payload
from ..sheets.layout import Page, Slot, slot_gap_mm
from .marks import FoundMark, align_mark, find_marks
from .codes import (DETECT_SIDE, DETECT_SIDE_RETRY, Code, Decoders, classify_codes, detect_quads, marker_of_any,
                    patch_homography, qr_modules, quad_side, read_code, rectify, refine, square, transform_points,
                    zxing_codes)


# A mark is accepted when the page's global fit puts it within this share of the image pitch.
MARK_ACCEPT_PITCH = 0.35
NO_MARKS = "too few registration marks found around it"


def count_reasons(dropped: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """(reason, how many images) of dropped images (dicts with a ``reason``), most frequent first."""
    counts: dict[str, int] = {}
    for d in dropped:
        counts[d["reason"]] = counts.get(d["reason"], 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
# Every corner of an image must have a mark or code corner within this share of the image pitch.
CORNER_REACH_PITCH = 0.6
# A local fit whose RMS residual at its marks exceeds this share of the image width is not used.
MAX_RESIDUAL_PCT = 1.5
# Marks farther than this many image pitches from an image's centre are never used for it.
NEIGHBOUR_PITCHES = 2.2


@dataclass
class SlotFit:
    """Where one printed image lies in the photo, or why that is not known (``reason``)."""

    slot: Slot
    h: np.ndarray | None = None         # page mm -> photo px, for this image
    quad: np.ndarray | None = None      # the slot rect's corners TL, TR, BR, BL in photo px
    residual_pct: float = float("nan")  # RMS residual of the fit at its points, % of the image width
    marks_used: int = 0                 # marks and codes the fit used
    reason: str = ""                    # why it was dropped; empty if it was not


@dataclass
class PageFit:
    page: Page
    h: np.ndarray                   # page mm -> photo px (the whole page; exact only for a flat sheet)
    markers: dict[str, Code]       # corner -> code used
    reprojection_px: float
    module_px: float
    slots: list[SlotFit] = field(default_factory=list)
    marks: list[FoundMark] = field(default_factory=list)   # registration marks accepted
    marks_rejected: int = 0         # marks with this page's ids that disagree with the page


@dataclass(frozen=True)
class _Group:
    """Four page points (mm) and where they were found in the photo (px): a mark or a corner code."""

    kind: str            # "mark" or "code"
    key: int | str       # the mark's id, or the code's corner
    page_pts: np.ndarray
    photo_pts: np.ndarray
    found: FoundMark | None = None   # the mark as found (marks only)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.key}"

    @property
    def centre(self) -> np.ndarray:
        return self.page_pts.mean(axis=0)


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
        sides.append(quad_side(q) / qr_modules(m.payload).shape[0])
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


def _add_missing_codes(gray: np.ndarray, page: Page, h: np.ndarray, codes: dict[str, Code], guess: float,
                       dec: Decoders) -> bool:
    """Look for each missing corner code where ``h`` puts it; accept only its exact payload. True if any was added."""
    added = False
    for m in page.markers:
        if m.corner in codes:
            continue
        quad = transform_points(h, np.array(m.rect.corners()))
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
    return added


def _one_code_homography(page: Page, found: dict[str, Code]) -> np.ndarray:
    corner, code = next(iter(found.items()))
    rect = {m.corner: m.rect for m in page.markers}[corner]
    h1 = cv2.getPerspectiveTransform(np.array(rect.corners(), np.float32), code.quad.astype(np.float32))
    return h1.astype(np.float64)


def _register_page(gray: np.ndarray, page: Page, found: dict[str, Code], dec: Decoders
                   ) -> tuple[PageFit | None, str]:
    """Fit one page from its found markers, after looking for missing ones where they must be."""
    n = qr_modules(page.markers[0].payload).shape[0]
    guess = _module_px_from_codes(found.values(), n)
    fit = _fit_homography(page, found, guess) if len(found) >= 2 else None
    if len(found) == 1:
        fit = (_one_code_homography(page, found), dict(found), 0.0)
    if fit is None:
        return None, "markers disagree"
    codes = dict(fit[1])
    added = _add_missing_codes(gray, page, fit[0], codes, guess, dec)
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
    sides = [quad_side(c.quad) / n for c in codes]
    return float(np.mean(sides)) if sides else 4.0


def inside(quad: np.ndarray, shape: tuple[int, ...], margin: float = 0.0) -> bool:
    h, w = shape[:2]
    return bool(np.all(quad[:, 0] >= -0.5 + margin) and np.all(quad[:, 0] <= w - 0.5 - margin)
                and np.all(quad[:, 1] >= -0.5 + margin) and np.all(quad[:, 1] <= h - 0.5 - margin))


def _pages_roi(shape: tuple[int, ...], pages: dict[int, Page], by_page: dict[int, list[Code]]
               ) -> tuple[int, int, int, int] | None:
    """The part of the photo that holds the pages in view: their outline as their corner codes
    predict it, grown by a tenth of its size (curl, perspective); None (the whole photo) when a
    page has fewer than two codes to predict it from."""
    h, w = shape[:2]
    boxes = []
    for number, found in by_page.items():
        page = pages[number]
        codes = {c.marker.corner: c for c in found if c.marker}
        if len(codes) < 2:
            return None
        fit = _fit_homography(page, codes, _module_px_from_codes(codes.values(), qr_modules(
            page.markers[0].payload).shape[0]))
        if fit is None:
            return None
        pw, ph = page.size_mm
        q = transform_points(fit[0], np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float64))
        if not np.all(np.isfinite(q)):
            return None
        lo, hi = q.min(axis=0), q.max(axis=0)
        grow = 0.1 * (hi - lo)
        boxes.append(np.concatenate([lo - grow, hi + grow]))
    if not boxes:
        return None
    b = np.array(boxes)
    x0, y0 = (max(0, int(v)) for v in b[:, :2].min(axis=0))
    x1, y1 = int(min(w, b[:, 2].max() + 1)), int(min(h, b[:, 3].max() + 1))
    return (x0, y0, x1, y1) if x1 - x0 > 16 and y1 - y0 > 16 else None


def _page_slot_fit(fit: PageFit, slot: Slot) -> SlotFit:
    """A format-1 page: every image through the page's one homography; its residual is the page's."""
    quad = transform_points(fit.h, np.array(slot.rect.corners(), np.float64))
    return SlotFit(slot, h=fit.h, quad=quad, residual_pct=100 * fit.reprojection_px / quad_side(quad),
                   marks_used=len(fit.markers))


# --------------------------------------------------------------------------- local registration (format 2)


def _pitch_mm(page: Page) -> float:
    return page.image_size_mm + slot_gap_mm(page.image_size_mm)


def _groups(page: Page, codes: dict[str, Code], marks: Sequence[FoundMark]) -> list[_Group]:
    """The corner codes and the marks with this page's ids, as point groups (every candidate of a repeated id)."""
    rects = {m.corner: m.rect for m in page.markers}
    out = [_Group("code", c, np.array(rects[c].corners(), np.float64), np.asarray(code.quad, np.float64))
           for c, code in codes.items() if c in rects]
    by_id = {m.id: m.rect for m in page.marks}
    out += [_Group("mark", f.id, np.array(by_id[f.id].corners(), np.float64), f.quad, f)
            for f in marks if f.id in by_id]
    return out


def _accept_groups(page: Page, groups: list[_Group]) -> tuple[np.ndarray, list[_Group], int] | None:
    """Global robust fit; the groups it agrees with (one per name), and how many were rejected."""
    if len({g.name for g in groups}) < 2:
        return None
    px_per_mm = float(np.median([quad_side(g.photo_pts) / quad_side(g.page_pts) for g in groups]))
    thr = MARK_ACCEPT_PITCH * _pitch_mm(page) * px_per_mm
    src = np.concatenate([g.page_pts for g in groups])
    dst = np.concatenate([g.photo_pts for g in groups])
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, thr, maxIters=3000, confidence=0.999)
    if h is None or not np.all(np.isfinite(h)):
        return None
    best: dict[str, tuple[float, _Group]] = {}
    for g in groups:
        err = float(np.linalg.norm(transform_points(h, g.page_pts) - g.photo_pts, axis=1).max())
        if err <= thr and (g.name not in best or err < best[g.name][0]):
            best[g.name] = (err, g)
    kept = [g for _, g in best.values()]
    if len(kept) < 2:
        return None
    h, _ = cv2.findHomography(np.concatenate([g.page_pts for g in kept]),
                              np.concatenate([g.photo_pts for g in kept]), 0)
    if h is None or not np.all(np.isfinite(h)):
        return None
    return h, kept, len({g.name for g in groups}) - len(kept)


def _covers(groups: Sequence[_Group], corners: np.ndarray) -> bool:
    hull = cv2.convexHull(np.concatenate([g.page_pts for g in groups]).astype(np.float32))
    return all(cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -1e-3 for x, y in corners)


def _fit(groups: Sequence[_Group], corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Least-squares homography of the groups' points: (h, the corners mapped, RMS residual in px)."""
    src = np.concatenate([g.page_pts for g in groups])
    dst = np.concatenate([g.photo_pts for g in groups])
    h, _ = cv2.findHomography(src, dst, 0)
    if h is None or not np.all(np.isfinite(h)):
        return None
    # The denominator keeps one sign over the points and the image: no horizon in between.
    den = np.column_stack([np.concatenate([src, corners]), np.ones(len(src) + 4)]) @ h[2]
    if not (np.all(den > 0) or np.all(den < 0)):
        return None
    quad = transform_points(h, corners)
    if not cv2.isContourConvex(quad.astype(np.float32).reshape(-1, 1, 2)):
        return None
    rms = float(np.sqrt(np.mean(np.sum((transform_points(h, src) - dst) ** 2, axis=1))))
    return h, quad, rms


def fit_slot(slot: Slot, groups: Sequence[_Group], pitch_mm: float) -> SlotFit:
    """The local homography of one image from the marks and codes around it (module docstring)."""
    corners = np.array(slot.rect.corners(), np.float64)
    centre = corners.mean(axis=0)
    near = sorted((g for g in groups if np.linalg.norm(g.centre - centre) <= NEIGHBOUR_PITCHES * pitch_mm),
                  key=lambda g: float(np.linalg.norm(g.centre - centre)))
    used: list[_Group] = []
    for g in near:
        used.append(g)
        if len(used) >= 3 and _covers(used, corners):
            break
    else:
        return SlotFit(slot, marks_used=len(near), reason=NO_MARKS)
    # Every mark as close as the farthest one used also takes part: more points, the same locality.
    reach = float(np.linalg.norm(used[-1].centre - centre)) + 1e-6
    used = [g for g in near if np.linalg.norm(g.centre - centre) <= reach]
    # Each corner of the image needs a mark near it: between distant marks a wavy sheet is not a
    # plane, and the fit can be several percent off at a corner while it fits its marks well.
    pts = np.concatenate([g.page_pts for g in used])
    if max(float(np.linalg.norm(pts - c, axis=1).min()) for c in corners) > CORNER_REACH_PITCH * pitch_mm:
        return SlotFit(slot, marks_used=len(used), reason=NO_MARKS)
    fit = _fit(used, corners)
    if fit is None:
        return SlotFit(slot, marks_used=len(used), reason="the marks around it give no plausible fit")
    h, quad, rms = fit
    pct = 100 * rms / quad_side(quad)
    # No mark is left out to make the rest agree: where marks disagree, the sheet bends more than
    # one plane can follow (measured: leaving out the worst mark gave fits of 1.1 % residual whose
    # crop was 6 % off on a curled sheet). Gross outliers were rejected by the page's global fit.
    if pct > MAX_RESIDUAL_PCT:
        return SlotFit(slot, marks_used=len(used), residual_pct=pct,
                       reason="the marks around it disagree (the sheet bends too much there)")
    return SlotFit(slot, h=h, quad=quad, residual_pct=pct, marks_used=len(used))


# Guided search: a missing mark is looked for when a known mark or code lies within this many
# image pitches of it (farther, the prediction from its neighbours is too rough to search).
GROW_REACH_PITCHES = 1.5


def _grow_marks(gray: np.ndarray, known: Sequence[_Group], wanted: Sequence[Any], pitch_mm: float
                ) -> list[FoundMark]:
    """Marks of ``wanted`` (the page's ``Mark`` entries) found by aligning their known pattern
    (:func:`align_mark`) where the nearest known groups put them, nearest first; each mark found
    becomes a neighbour for the next, so the search spreads outwards from what is known. A mark
    is tried again only when its nearest neighbours have changed."""
    groups = list(known)
    todo = {m.id: m for m in wanted}
    tried: dict[int, tuple[str, ...]] = {}
    found: list[FoundMark] = []
    while todo:
        progress = False
        centres = np.array([g.centre for g in groups]) if groups else np.zeros((0, 2))
        order = []
        for m in todo.values():
            rect = np.array(m.rect.corners(), np.float64)
            d = np.linalg.norm(centres - rect.mean(0), axis=1) if len(centres) else np.array([np.inf])
            if d.min() <= GROW_REACH_PITCHES * pitch_mm:
                order.append((float(d.min()), m.id))
        for _, mid in sorted(order):
            m = todo[mid]
            rect = np.array(m.rect.corners(), np.float64)
            nearest = sorted(groups, key=lambda g: float(np.linalg.norm(g.centre - rect.mean(0))))[:4]
            names = tuple(g.name for g in nearest)
            if tried.get(mid) == names:
                continue
            tried[mid] = names
            local = _fit(nearest, rect)
            aligned = align_mark(gray, mid, local[1]) if local is not None else None
            if aligned is None:
                continue
            found.append(aligned)
            groups.append(_Group("mark", mid, rect, aligned.quad, aligned))
            del todo[mid]
            progress = True
        if not progress:
            break
    return found


def _register_marked(gray: np.ndarray, page: Page, found: dict[str, Code], marks: Sequence[FoundMark],
                     dec: Decoders) -> tuple[PageFit | None, str]:
    """Register a format-2 page: global fit for identity and the code search, then a local fit per image."""
    n = qr_modules(page.markers[0].payload).shape[0]
    codes = dict(found)
    pitch = _pitch_mm(page)
    accepted = _accept_groups(page, _groups(page, codes, marks))
    if accepted is None and codes:
        # Too few marks read (blur, small modules): look for them by their known pattern, outwards
        # from the codes and marks that are known, each predicted by its nearest known neighbours.
        extra = _grow_marks(gray, _groups(page, codes, marks), list(page.marks), pitch)
        marks = list(marks) + extra
        accepted = _accept_groups(page, _groups(page, codes, marks))
    if accepted is None:
        if not any(f.id in {m.id for m in page.marks} for f in marks):
            return None, "no registration marks found"
        return None, "too few registration marks agree"
    guess = _module_px_from_codes(codes.values(), n) if codes else _module_px(accepted[0], page)
    if _add_missing_codes(gray, page, accepted[0], codes, guess, dec):
        accepted = _accept_groups(page, _groups(page, codes, marks)) or accepted
    h, kept, rejected = accepted
    if not _plausible(h, page, gray.shape):
        return None, "registration marks disagree"
    used_codes = {str(g.key): codes[str(g.key)] for g in kept if g.kind == "code"}
    src = np.concatenate([g.page_pts for g in kept])
    dst = np.concatenate([g.photo_pts for g in kept])
    rms = float(np.sqrt(np.mean(np.sum((transform_points(h, src) - dst) ** 2, axis=1))))
    fit = PageFit(page=page, h=h, markers=used_codes, reprojection_px=rms, module_px=_module_px(h, page),
                  marks=[g.found for g in kept if g.found is not None], marks_rejected=rejected)
    fit.slots = [fit_slot(slot, kept, pitch) for slot in page.slots]
    # Guided search: the marks missing around images that lack them (too blurred or small to decode).
    have = {g.key for g in kept if g.kind == "mark"}
    short = [np.array(sf.slot.rect.corners()).mean(0) for sf in fit.slots if sf.reason == NO_MARKS]
    wanted = [m for m in page.marks if m.id not in have
              and any(np.linalg.norm(np.array(m.rect.corners()).mean(0) - c) <= pitch for c in short)]
    extra = _grow_marks(gray, kept, wanted, pitch)
    again = _accept_groups(page, _groups(page, codes, list(marks) + extra)) if extra else None
    if again is not None and len(again[1]) > len(kept):
        _, kept, fit.marks_rejected = again
        fit.marks = [g.found for g in kept if g.found is not None]
        fit.slots = [fit_slot(sf.slot, kept, pitch) if sf.reason == NO_MARKS else sf for sf in fit.slots]
    return fit, ""


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

    # Coarse to fine: small codes (3-5 photo px per module) vanish in a downscaled copy, so while
    # no page has two codes, look again at a finer scale, up to the full resolution.
    longest = max(gray.shape)
    by_page: dict[int, list[Code]] = {}
    for side in sorted({min(side, longest) for side in (DETECT_SIDE, DETECT_SIDE_RETRY, longest)}):
        read_all(detect_quads(gray, side, dec))
        by_page = classify_codes(codes, experiment_id, len(pages))
        if max((len(v) for v in by_page.values()), default=0) >= 2:
            break
    if not by_page:
        def identifies(found: list[Code]) -> bool:
            return bool(classify_codes(found, experiment_id, len(pages)))

        for code in zxing_codes(gray, identifies):
            near = [c for c in codes
                    if np.linalg.norm(c.quad.mean(axis=0) - code.quad.mean(axis=0)) < 0.5 * quad_side(code.quad)]
            if not any(c.text for c in near):
                # ZXing read what OpenCV located but could not read: one code, not an unread one beside it.
                codes = [c for c in codes if c not in near] + [code]
        by_page = classify_codes(codes, experiment_id, len(pages))

    marks: list[FoundMark] | None = None

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
        page = pages[number]
        found_codes = {c.marker.corner: c for c in found if c.marker}
        if page.marks:
            if marks is None:   # once per photo, for every page in view
                marks = find_marks(gray, {m.id for n in by_page for m in pages[n].marks},
                                   _pages_roi(gray.shape, pages, by_page))
            fit, why = _register_marked(gray, page, found_codes, marks, dec)
        else:
            fit, why = _register_page(gray, page, found_codes, dec)
            if fit is not None:
                fit.slots = [_page_slot_fit(fit, slot) for slot in page.slots]
        if fit is None:
            failed[number] = why
        else:
            fits.append(fit)
    return Scan(fits=fits, codes=codes, other_experiments=others, other_codes=n_other, failed_pages=failed,
                 out_of_range=out_of_range)
