"""Geometry of the printed sheets: where the QR markers and the images go.

Coordinate convention (used by every length in this module, and in the JSON
manifest): millimetres, origin at the TOP-LEFT corner of the page, x pointing
right and y pointing DOWN, like image coordinates. A ``Rect`` is its top-left
corner plus width and height. Only the PDF writer converts to PDF's
bottom-left / y-up points, in one helper.

This module is the only place that holds the sheet's geometry constants.

Page anatomy (A4 at the default 25 mm image size)::

    +---------------------------------------------+
    |  margin                                     |
    |  [QR TL]    header text (band)    [QR TR]   |
    |                                             |
    |  [img][img][img][img][img][img]   <- picture 1, all its variants
    |   lbl  lbl  lbl  lbl  lbl  lbl              |
    |  [img] ...                                  |
    |  ...                                        |
    |  [QR BL]    footer text (band)    [QR BR]   |
    +---------------------------------------------+

A marker's rect is exactly the QR module grid WITHOUT its quiet zone: the
square whose four corners OpenCV reports for the code (the outer corners of
the finder patterns), because ingest maps those points to compute the
page-to-photo homography. Around it the layout keeps QR_QUIET_MM of white.

Registration marks (manifest format 2): small ArUco markers (OpenCV's
``cv2.aruco``, dictionary MARK_DICTIONARY) at the corners of every image's
cell, where the column gaps cross the bands between rows, so that every image
is surrounded by marks close to it. They let ingest register each image from
the marks around it (a curled sheet is not one plane), while the corner QR
codes identify experiment and page. A mark's ``rect`` is its black square
(the border included, no quiet zone); MARK_QUIET_MM of white is kept around
it. Ids are unique on a page, and consecutive pages use disjoint ranges
(:func:`mark_id`), so marks of two neighbouring pages in one photo cannot be
confused. A mark that would touch a QR code's quiet zone, the header or
footer, an image or a label is left out: near the page corners the QR codes'
own corners serve as marks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import payload

PAPER_SIZES_MM: dict[str, tuple[float, float]] = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}

# Office printers cannot print the outer ~5 mm of a sheet, and many drivers
# shift the page by a millimetre or two; 10 mm keeps every mark on paper.
MARGIN_MM = 10.0
# Side of the QR module grid (no quiet zone). The payload gives a 25 x 25
# module code (version 2, level M), so one module is 0.8 mm: several pixels
# even in a phone photo of the whole sheet.
QR_SIZE_MM = 20.0
# White kept around each module grid. The QR standard asks for 4 modules
# (3.2 mm here); the extra helps detection on a grey photographed page.
QR_QUIET_MM = 4.0
DEFAULT_IMAGE_SIZE_MM = 25.0
# The default print size follows the model's input size (default_image_size_mm): a 12 MP
# phone photo of a whole page (4032 px along the page's 297 mm, the page filling about 3/4 of
# the frame) has ~10 photo px per mm, and each digital pixel should get at least 1.5 of them.
PHOTO_PX_PER_MM = 10.0
MIN_PHOTO_PX_PER_PIXEL = 1.5
# White space between neighbouring image squares: at least MIN_GAP_MM and at
# least GAP_FRACTION of the image side, so a crop that is off by a few percent
# of the image size never bleeds into a neighbour.
MIN_GAP_MM = 5.0
GAP_FRACTION = 0.2
# Height of the text band under each image (the label is 6 pt, ~2.1 mm).
LABEL_HEIGHT_MM = 3.0
# White between an image and its own label, as a fraction of the slot gap.
LABEL_OFFSET_FRACTION = 0.5
# Extra white between header/footer text and a QR quiet zone.
TEXT_CLEARANCE_MM = 1.0
# Registration marks: ArUco 4x4 (6 x 6 modules with the black border; the
# smallest dictionary that has ids enough for the densest page), their side a
# share of the slot gap, at most MARK_MAX_MM, with MARK_QUIET_MM of white kept
# around. At the default 25 mm images a mark is 4 mm (0.67 mm modules: 6-7
# photo px in a 12 MP photo of the whole page).
MARK_DICTIONARY = "DICT_4X4_1000"
MARK_IDS = 1000
MARK_MODULES = 6
MARK_FRACTION = 0.8
MARK_MAX_MM = 8.0
MARK_QUIET_MM = 0.5
# Pages cycle through MARK_ID_BLOCKS disjoint id ranges of MARK_IDS // MARK_ID_BLOCKS ids.
MARK_ID_BLOCKS = 4


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in page millimetres (top-left origin, y down)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def as_list(self) -> list[float]:
        """Return ``[x, y, w, h]``, the manifest's JSON form."""
        return [self.x, self.y, self.w, self.h]

    def corners(self) -> tuple[tuple[float, float], ...]:
        """Return the corners in TL, TR, BR, BL order (the order of ``payload.CORNERS``)."""
        return ((self.x, self.y), (self.right, self.y), (self.right, self.bottom), (self.x, self.bottom))

    def expanded(self, d: float) -> Rect:
        """Return this rect grown by ``d`` on every side."""
        return Rect(self.x - d, self.y - d, self.w + 2 * d, self.h + 2 * d)


@dataclass(frozen=True)
class Marker:
    """A corner QR code; ``rect`` is its module grid without quiet zone."""

    corner: str
    payload: str
    rect: Rect


@dataclass(frozen=True)
class Slot:
    """One printed image. ``index`` is its position on the page in reading order, from 0."""

    index: int
    image_id: str
    variant: str
    label: str
    rect: Rect


@dataclass(frozen=True)
class Mark:
    """A registration mark: ArUco marker ``id`` of MARK_DICTIONARY; ``rect`` is its black square."""

    id: int
    rect: Rect


@dataclass(frozen=True)
class Page:
    """Everything printed on one sheet, in page millimetres. ``marks`` is empty on format-1 pages."""

    number: int
    paper: str
    size_mm: tuple[float, float]
    image_size_mm: float
    markers: tuple[Marker, ...]
    slots: tuple[Slot, ...]
    marks: tuple[Mark, ...] = ()


def _r(v: float) -> float:
    # Trim float noise (10 + 3 * 30.000000000000004) so manifests read cleanly.
    return round(v, 6)


def slot_gap_mm(image_size_mm: float) -> float:
    """Return the minimum white space kept between two image squares."""
    return max(MIN_GAP_MM, GAP_FRACTION * image_size_mm)


def label_rect(slot_rect: Rect) -> Rect:
    """Return the band under an image square where its label is printed."""
    offset = LABEL_OFFSET_FRACTION * slot_gap_mm(slot_rect.w)
    return Rect(slot_rect.x, slot_rect.bottom + offset, slot_rect.w, LABEL_HEIGHT_MM)


def paper_size_mm(paper: str) -> tuple[float, float]:
    """Return (width, height) of a known paper name; raise ValueError otherwise."""
    try:
        return PAPER_SIZES_MM[paper.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown paper {paper!r} (expected one of {', '.join(PAPER_SIZES_MM)})") from None


def marker_rects(size_mm: tuple[float, float]) -> dict[str, Rect]:
    """Return the module-grid rect of each corner marker on a page of this size."""
    w, h = size_mm
    far_x, far_y = _r(w - MARGIN_MM - QR_SIZE_MM), _r(h - MARGIN_MM - QR_SIZE_MM)
    return {
        "TL": Rect(MARGIN_MM, MARGIN_MM, QR_SIZE_MM, QR_SIZE_MM),
        "TR": Rect(far_x, MARGIN_MM, QR_SIZE_MM, QR_SIZE_MM),
        "BR": Rect(far_x, far_y, QR_SIZE_MM, QR_SIZE_MM),
        "BL": Rect(MARGIN_MM, far_y, QR_SIZE_MM, QR_SIZE_MM),
    }


def _text_band(size_mm: tuple[float, float], y: float) -> Rect:
    # Between the left and right markers' quiet zones, as tall as a marker.
    x0 = MARGIN_MM + QR_SIZE_MM + QR_QUIET_MM + TEXT_CLEARANCE_MM
    return Rect(x0, y, size_mm[0] - 2 * x0, QR_SIZE_MM)


def header_rect(page: Page) -> Rect:
    """Return the band between the two top markers where the header text goes."""
    return _text_band(page.size_mm, MARGIN_MM)


def footer_rect(page: Page) -> Rect:
    """Return the band between the two bottom markers where the footer text goes."""
    return _text_band(page.size_mm, page.size_mm[1] - MARGIN_MM - QR_SIZE_MM)


def _mark_room_mm(image_size_mm: float) -> float:
    """Space the registration marks need beside the grid: they sit half a gap outside it."""
    return slot_gap_mm(image_size_mm) / 2 + mark_side_mm(image_size_mm) / 2 + MARK_QUIET_MM


def content_rect(size_mm: tuple[float, float], image_size_mm: float) -> Rect:
    """Return the area that image squares and their labels must stay inside."""
    w, h = size_mm
    # Images keep a full slot gap (at least the quiet zone, and room for the marks above
    # the first row) from the markers.
    band = MARGIN_MM + QR_SIZE_MM + max(QR_QUIET_MM, slot_gap_mm(image_size_mm), _mark_room_mm(image_size_mm))
    return Rect(MARGIN_MM, band, w - 2 * MARGIN_MM, h - 2 * band)


@dataclass(frozen=True)
class _Grid:
    n_cols: int
    n_rows: int
    gap: float
    row_pitch: float
    x0: float
    y0: float


def _grid(size_mm: tuple[float, float], image_size_mm: float) -> _Grid:
    content = content_rect(size_mm, image_size_mm)
    gap = slot_gap_mm(image_size_mm)
    s = image_size_mm
    label_h = LABEL_OFFSET_FRACTION * gap + LABEL_HEIGHT_MM
    # The outer columns keep room for the marks beside them within the margins.
    usable_w = content.w - 2 * _mark_room_mm(s)
    n_cols = max(0, math.floor((usable_w + gap) / (s + gap) + 1e-9))
    row_pitch = s + label_h + gap
    n_rows = max(0, math.floor((content.h + gap) / row_pitch + 1e-9))
    grid_w = n_cols * s + max(0, n_cols - 1) * gap
    # Centre the columns so the sheet looks balanced; rows start at the top.
    return _Grid(n_cols, n_rows, gap, row_pitch, content.x + (content.w - grid_w) / 2, content.y)


def mark_side_mm(image_size_mm: float) -> float:
    """Return the side of the registration marks on a page of images this size."""
    return _r(min(MARK_MAX_MM, MARK_FRACTION * slot_gap_mm(image_size_mm)))


def mark_modules(mark_id: int):
    """The (MARK_MODULES, MARK_MODULES) bool matrix of a registration mark, True = black, border included:
    what the PDF prints and what ingest aligns to (OpenCV's own pattern for the id)."""
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, MARK_DICTIONARY))
    return cv2.aruco.generateImageMarker(dictionary, int(mark_id), MARK_MODULES, borderBits=1) < 128


def mark_id(page_number: int, index: int) -> int:
    """Return the ArUco id of the ``index``-th mark (reading order) on page ``page_number``."""
    block = MARK_IDS // MARK_ID_BLOCKS
    if not 0 <= index < block:
        raise ValueError(f"a page holds at most {block} registration marks")
    return ((page_number - 1) % MARK_ID_BLOCKS) * block + index


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


def _place_marks(page_number: int, size_mm: tuple[float, float], grid: _Grid, s: float, n_rows: int,
                 slots: list[Slot], markers: tuple[Marker, ...]) -> tuple[Mark, ...]:
    """Marks where the column gaps (and the page sides of the grid) cross the bands between rows."""
    if not slots:
        return ()
    m = mark_side_mm(s)
    xs = [grid.x0 - grid.gap / 2 + c * (s + grid.gap) for c in range(grid.n_cols + 1)]
    # Above the first row: in the gap; below each row: in the middle of the band
    # between its images and the next row (its labels are under the images, not the gaps).
    ys = [grid.y0 - grid.gap / 2] + [grid.y0 + r * grid.row_pitch + s + (grid.row_pitch - s) / 2
                                      for r in range(n_rows)]
    keep_out = [mk.rect.expanded(QR_QUIET_MM) for mk in markers]
    keep_out += [_text_band(size_mm, MARGIN_MM), _text_band(size_mm, size_mm[1] - MARGIN_MM - QR_SIZE_MM)]
    keep_out += [sl.rect for sl in slots] + [label_rect(sl.rect) for sl in slots]
    page = Rect(MARGIN_MM, MARGIN_MM, size_mm[0] - 2 * MARGIN_MM, size_mm[1] - 2 * MARGIN_MM)
    marks: list[Mark] = []
    for y in ys:
        for x in xs:
            rect = Rect(_r(x - m / 2), _r(y - m / 2), m, m)
            zone = rect.expanded(MARK_QUIET_MM)
            inside = page.x <= zone.x and zone.right <= page.right and page.y <= zone.y and zone.bottom <= page.bottom
            if inside and not any(_overlaps(zone, k) for k in keep_out):
                marks.append(Mark(mark_id(page_number, len(marks)), rect))
    return tuple(marks)


def _rows_needed(n_variants: int, grid: _Grid) -> int:
    # Only called once _fits has shown that at least one column fits.
    return math.ceil(n_variants / grid.n_cols)


def _fits(n_variants: int, size_mm: tuple[float, float], image_size_mm: float) -> bool:
    grid = _grid(size_mm, image_size_mm)
    return grid.n_cols > 0 and _rows_needed(n_variants, grid) <= grid.n_rows


def default_image_size_mm(input_px: int) -> float:
    """The print size at which a 12 MP photo of the whole page resolves each of ``input_px`` digital
    pixels with MIN_PHOTO_PX_PER_PIXEL photo pixels; never below DEFAULT_IMAGE_SIZE_MM, whole mm.

    32 px (CIFAR-10) -> 25 mm; 224 px -> 34 mm; 299 px (Inception v3) -> 45 mm.
    """
    return max(DEFAULT_IMAGE_SIZE_MM, float(math.ceil(MIN_PHOTO_PX_PER_PIXEL * input_px / PHOTO_PX_PER_MM - 1e-9)))


def max_image_size_mm(n_variants: int, paper: str = "a4") -> float:
    """Return the largest image size (to 0.1 mm) at which ``n_variants`` images fit on one page.

    Returns 0.0 if they do not fit even at 0.1 mm.
    """
    size_mm = paper_size_mm(paper)
    # Fit is monotone in the image size (fewer columns, fewer rows, wider
    # gaps as it grows), so bisection on 0.1 mm steps is exact.
    if not _fits(n_variants, size_mm, 0.1):
        return 0.0
    lo, hi = 1, int(min(size_mm) * 10)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(n_variants, size_mm, mid / 10):
            lo = mid
        else:
            hi = mid - 1
    return lo / 10


def plan_pages(
    groups: list[tuple[str, list[str]]],
    experiment_id: str,
    *,
    paper: str = "a4",
    image_size_mm: float = DEFAULT_IMAGE_SIZE_MM,
    variant_labels: dict[str, str] | None = None,
    marks: bool = True,
) -> list[Page]:
    """Lay out pictures on as few pages as possible.

    Args:
        groups: one entry per picture, ``(image_id, [variant names in print
            order, "clean" first])``. All variants of a picture go on the same
            page, so clean and adversarial versions are photographed under the
            same light (the paper's paired protocol).
        experiment_id: 8 lowercase hex characters, written into the markers.
        paper: "a4" or "letter".
        image_size_mm: printed side of every image square.
        variant_labels: optional display text per variant name for the
            labels (e.g. {"bim_eps8": "bim ε8"}); defaults to the name.
        marks: add the registration marks around every image (format 2);
            False gives a format-1 page (corner codes only).

    Each picture starts a new row and fills rows left to right; a page takes
    as many whole pictures as fit, then a new page starts.

    Raises:
        ValueError: unknown paper, bad image size, a picture with no or
            duplicate variants, a duplicate image id, a picture whose variants
            cannot fit on one page (the message says which image size would),
            more than 999 pages, or a bad experiment id.
    """
    size_mm = paper_size_mm(paper)
    paper = paper.lower()
    payload.check_experiment_id(experiment_id)
    if isinstance(image_size_mm, bool) or not isinstance(image_size_mm, (int, float)) or not (
        math.isfinite(image_size_mm) and image_size_mm > 0
    ):
        raise ValueError(f"image size must be a positive number of millimetres, got {image_size_mm!r}")
    image_size_mm = float(image_size_mm)
    labels = variant_labels or {}
    grid = _grid(size_mm, image_size_mm)

    seen: set[str] = set()
    for image_id, variants in groups:
        if image_id in seen:
            raise ValueError(f"picture {image_id!r} is listed twice")
        seen.add(image_id)
        if not variants:
            raise ValueError(f"picture {image_id!r} has no variants to print")
        if len(set(variants)) != len(variants):
            raise ValueError(f"picture {image_id!r} lists a variant twice: {variants}")
        if not _fits(len(variants), size_mm, image_size_mm):
            best = max_image_size_mm(len(variants), paper)
            hint = f"use --image-size-mm {best:g} or less" if best > 0 else "print fewer variants per picture"
            raise ValueError(
                f"the {len(variants)} variants of picture {image_id!r} do not fit on one {paper} page "
                f"at --image-size-mm {image_size_mm:g}; {hint}"
            )

    # Greedy packing: pictures keep their order, so sheets read in input order.
    page_groups: list[list[tuple[str, list[str]]]] = []
    rows_used = grid.n_rows
    for group in groups:
        need = _rows_needed(len(group[1]), grid)
        if rows_used + need > grid.n_rows:
            page_groups.append([])
            rows_used = 0
        page_groups[-1].append(group)
        rows_used += need
    if len(page_groups) > payload.MAX_PAGE:
        raise ValueError(f"{len(page_groups)} pages needed, at most {payload.MAX_PAGE} are supported")

    s = image_size_mm
    pages = []
    for number, page_pictures in enumerate(page_groups, start=1):
        markers = tuple(
            Marker(corner, payload.encode(experiment_id, number, corner), rect)
            for corner, rect in marker_rects(size_mm).items()
        )
        slots: list[Slot] = []
        row = 0
        for image_id, variants in page_pictures:
            for k, variant in enumerate(variants):
                r, c = row + k // grid.n_cols, k % grid.n_cols
                rect = Rect(_r(grid.x0 + c * (s + grid.gap)), _r(grid.y0 + r * grid.row_pitch), s, s)
                label = f"{image_id} · {labels.get(variant, variant)}"
                slots.append(Slot(len(slots), image_id, variant, label, rect))
            row += _rows_needed(len(variants), grid)
        page_marks = _place_marks(number, size_mm, grid, s, row, slots, markers) if marks else ()
        pages.append(Page(number, paper, size_mm, s, markers, tuple(slots), page_marks))
    return pages


def page_to_dict(page: Page) -> dict[str, Any]:
    """Return a JSON-ready dict of ``page`` (rects as ``[x, y, w, h]`` lists)."""
    return {
        "number": page.number,
        "paper": page.paper,
        "size_mm": list(page.size_mm),
        "image_size_mm": page.image_size_mm,
        "markers": [{"corner": m.corner, "payload": m.payload, "rect": m.rect.as_list()} for m in page.markers],
        "slots": [
            {"index": s.index, "image_id": s.image_id, "variant": s.variant, "label": s.label, "rect": s.rect.as_list()}
            for s in page.slots
        ],
        **({"marks": [{"id": m.id, "rect": m.rect.as_list()} for m in page.marks]} if page.marks else {}),
    }


def _rect_from_list(v: Any) -> Rect:
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise ValueError(f"a rect must be a list [x, y, w, h], got {v!r}")
    return Rect(*(float(t) for t in v))


def page_from_dict(d: dict[str, Any]) -> Page:
    """Rebuild a ``Page`` from ``page_to_dict``'s output (e.g. read back from a manifest).

    Raises:
        ValueError: if a field is missing or has the wrong shape.
    """
    try:
        w, h = d["size_mm"]
        return Page(
            number=int(d["number"]),
            paper=str(d["paper"]),
            size_mm=(float(w), float(h)),
            image_size_mm=float(d["image_size_mm"]),
            markers=tuple(Marker(str(m["corner"]), str(m["payload"]), _rect_from_list(m["rect"])) for m in d["markers"]),
            slots=tuple(
                Slot(int(s["index"]), str(s["image_id"]), str(s["variant"]), str(s["label"]), _rect_from_list(s["rect"]))
                for s in d["slots"]
            ),
            marks=tuple(Mark(int(m["id"]), _rect_from_list(m["rect"])) for m in d.get("marks", ())),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"bad page entry in manifest: {e!r}") from None


def mm_to_px(rect: Rect, px_per_mm: float) -> tuple[int, int, int, int]:
    """Return ``rect`` as integer pixel bounds ``(left, top, right, bottom)``.

    Bounds are rounded to the nearest pixel edge, so ``img[top:bottom, left:right]``
    crops the rect from a page rendered at ``px_per_mm`` with the same origin.
    """
    return (
        round(rect.x * px_per_mm),
        round(rect.y * px_per_mm),
        round(rect.right * px_per_mm),
        round(rect.bottom * px_per_mm),
    )
