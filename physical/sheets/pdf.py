"""Write the printable sheets: images, corner QR markers and labels, as one PDF.

Geometry comes from ``physical.layout`` (top-left origin, y down, mm); this
module only draws it. The PDF must reproduce the digital pixels exactly at the
planned place and size, because the adversarial perturbation lives in single
pixel values and ingest crops each image from its planned rect:

* images are upscaled by an integer nearest-neighbour factor to at least
  MIN_IMAGE_DPI and embedded losslessly (Flate, never JPEG), so no viewer,
  driver or printer resampling can blend neighbouring digital pixels;
* QR codes are vector graphics whose module grid fills the marker rect exactly.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from reportlab import rl_config
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import getFont, stringWidth
from reportlab.pdfgen import canvas

from . import layout
from .layout import Page, Rect

# Printer drivers and viewers resample images to device resolution, and a
# smoothing resampler mixes each source pixel with its neighbours. With at
# least 600 image pixels per inch (twice the common 300 ppi rule) every digital
# pixel is a block of several identical source pixels, so that mixing stays
# inside the block. Flate compresses the repeated pixels, so this costs only
# ~25 % in file size.
MIN_IMAGE_DPI = 600
# Level M (15 % recovery) keeps the code at 25 x 25 modules, i.e. large 0.8 mm
# modules that survive the blur of a phone photo better than denser level H.
QR_ERROR_LEVEL = "M"
FONT = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
LABEL_FONT_PT = 6.0
LABEL_MIN_FONT_PT = 4.5
HEADER_FONT_PT = 7.0
HEADER_MIN_FONT_PT = 5.0
TEXT_GREY = 0.25
RULER_MM = 100.0
PRINT_HINT = "Print at 100% / actual size (no 'fit to page' or 'shrink'), in colour, not borderless."
PHOTO_HINT = "Photograph the whole sheet flat and evenly lit, with all four corner codes fully visible."


def _pdf_xy(x_mm: float, y_mm: float, page_height_mm: float) -> tuple[float, float]:
    """Convert a layout point (mm, top-left origin, y down) to PDF points (bottom-left origin, y up).

    The only place where the two coordinate systems meet.
    """
    return x_mm * mm, (page_height_mm - y_mm) * mm


def _pdf_rect(rect: Rect, page_height_mm: float) -> tuple[float, float, float, float]:
    """Return ``(x, y, w, h)`` in PDF points, (x, y) being the rect's bottom-left corner."""
    x, y = _pdf_xy(rect.x, rect.bottom, page_height_mm)
    return x, y, rect.w * mm, rect.h * mm


def upscale_factor(n_pixels: int, size_mm: float) -> int:
    """Return the smallest integer factor giving at least MIN_IMAGE_DPI at the printed size."""
    return max(1, math.ceil(MIN_IMAGE_DPI * (size_mm / 25.4) / n_pixels - 1e-9))


def _upscaled(image: np.ndarray, size_mm: float) -> Image.Image:
    k = upscale_factor(image.shape[0], size_mm)
    big = np.repeat(np.repeat(image, k, axis=0), k, axis=1)
    return Image.fromarray(np.ascontiguousarray(big), mode="RGB")


def _check_images(pages: list[Page], images: Mapping[tuple[str, str], np.ndarray]) -> None:
    # Validate everything before writing, so a bad input never costs a half-written file.
    for page in pages:
        for slot in page.slots:
            key = (slot.image_id, slot.variant)
            if key not in images:
                raise KeyError(f"no image for picture {slot.image_id!r}, variant {slot.variant!r}")
            a = images[key]
            if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"image {key} must be an HxWx3 uint8 RGB array, got {getattr(a, 'shape', type(a))}")
            # Slots are square; stretching would change the pixel grid's aspect.
            if a.shape[0] != a.shape[1]:
                raise ValueError(f"image {key} must be square, got {a.shape[1]}x{a.shape[0]} pixels")


def _printable(text: str, font: str) -> str:
    """Replace characters that neither ``font`` nor its fallbacks can draw with '?'.

    reportlab falls back from Helvetica to Symbol (so Greek like ε prints),
    but draws anything else as black boxes.
    """
    fonts = [getFont(font), *getFont(font).substitutionFonts]

    def ok(ch: str) -> bool:
        for f in fonts:
            try:
                ch.encode(f.encName)
                return True
            except (UnicodeEncodeError, LookupError):
                pass
        return False

    return "".join(ch if ok(ch) else "?" for ch in text)


def _fit_text(text: str, font: str, size: float, min_size: float, width_pt: float,
              tail_share: float = 0.0) -> tuple[str, float]:
    """Shrink the font down to ``min_size``, then cut characters, until ``text`` fits ``width_pt``.

    ``tail_share`` is the share of the kept characters taken from the end:
    0 cuts the end ("Experiment … title…"), 0.6 cuts the middle so that a
    label keeps its variant name ("img0…bim ε8"), which tells images apart.
    """
    while size > min_size and stringWidth(text, font, size) > width_pt:
        size = max(min_size, size - 0.25)
    if stringWidth(text, font, size) <= width_pt:
        return text, size
    for keep in range(len(text) - 1, -1, -1):
        n_tail = round(keep * tail_share)
        short = text[: keep - n_tail] + "…" + (text[len(text) - n_tail:] if n_tail else "")
        if stringWidth(short, font, size) <= width_pt:
            return short, size
    return "", size


def _draw_centered(c: canvas.Canvas, text: str, font: str, size: float, min_size: float,
                   box: Rect, baseline_mm: float, page_h: float, tail_share: float = 0.0) -> None:
    text, size = _fit_text(_printable(text, font), font, size, min_size, box.w * mm, tail_share)
    x, y = _pdf_xy(box.x + box.w / 2, baseline_mm, page_h)
    c.setFont(font, size)
    c.drawCentredString(x, y, text)


def _draw_marker(c: canvas.Canvas, marker: layout.Marker, page_h: float) -> None:
    # Paint the quiet zone white explicitly: the page is white already, but
    # this keeps the zone clear even if something is later drawn beneath.
    c.setFillGray(1.0)
    c.rect(*_pdf_rect(marker.rect.expanded(layout.QR_QUIET_MM), page_h), stroke=0, fill=1)
    widget = QrCodeWidget(marker.payload, barLevel=QR_ERROR_LEVEL, barBorder=0)
    qr = widget.qr
    qr.make()
    n = qr.getModuleCount()
    module = marker.rect.w / n
    # One path for all dark modules: anti-aliasing renderers leave hairline
    # seams between separately filled touching rectangles, never inside a path.
    path = c.beginPath()
    for r, row in enumerate(qr.modules):
        col = 0
        while col < n:
            if row[col]:
                start = col
                while col < n and row[col]:
                    col += 1
                cell = Rect(marker.rect.x + start * module, marker.rect.y + r * module, (col - start) * module, module)
                path.rect(*_pdf_rect(cell, page_h))
            else:
                col += 1
    c.setFillGray(0.0)
    c.drawPath(path, stroke=0, fill=1, fillMode=0)  # nonzero winding: overlaps stay dark


def _draw_mark(c: canvas.Canvas, mark: layout.Mark, page_h: float) -> None:
    c.setFillGray(1.0)
    c.rect(*_pdf_rect(mark.rect.expanded(layout.MARK_QUIET_MM), page_h), stroke=0, fill=1)
    bits = layout.mark_modules(mark.id)
    n = bits.shape[0]
    module = mark.rect.w / n
    path = c.beginPath()   # one path, as for the QR codes: no seams between modules
    for r in range(n):
        for col in range(n):
            if bits[r, col]:
                path.rect(*_pdf_rect(Rect(mark.rect.x + col * module, mark.rect.y + r * module, module, module),
                                     page_h))
    c.setFillGray(0.0)
    c.drawPath(path, stroke=0, fill=1, fillMode=0)


def _draw_ruler(c: canvas.Canvas, band: Rect, y_mm: float, page_h: float) -> None:
    # A 100 mm bar lets the user check with a ruler that the print was not scaled.
    length = min(RULER_MM, band.w)
    x0 = band.x + (band.w - length) / 2
    c.setLineWidth(0.3)
    c.setStrokeGray(TEXT_GREY)
    c.line(*_pdf_xy(x0, y_mm, page_h), *_pdf_xy(x0 + length, y_mm, page_h))
    for k in range(int(length // 10) + 1):
        tick = 1.5 if k % 5 == 0 else 0.8
        c.line(*_pdf_xy(x0 + 10 * k, y_mm - tick, page_h), *_pdf_xy(x0 + 10 * k, y_mm, page_h))


def _draw_page(c: canvas.Canvas, page: Page, n_pages: int, images: Mapping[tuple[str, str], np.ndarray],
               experiment_id: str, title: str) -> None:
    page_h = page.size_mm[1]
    for marker in page.markers:
        _draw_marker(c, marker, page_h)
    for mark in page.marks:
        _draw_mark(c, mark, page_h)

    for slot in page.slots:
        img = _upscaled(images[(slot.image_id, slot.variant)], page.image_size_mm)
        c.drawImage(ImageReader(img), *_pdf_rect(slot.rect, page_h))

    c.setFillGray(TEXT_GREY)
    pt = 1 / mm  # one point in millimetres
    for slot in page.slots:
        band = layout.label_rect(slot.rect)
        # Baseline placed so the cap height sits in the middle of the band.
        baseline = band.y + band.h / 2 + 0.35 * LABEL_FONT_PT * pt
        _draw_centered(c, slot.label, FONT, LABEL_FONT_PT, LABEL_MIN_FONT_PT, band, baseline, page_h, tail_share=0.6)

    header = layout.header_rect(page)
    line = 1.45 * HEADER_FONT_PT * pt
    first = f"Experiment {experiment_id}  ·  page {page.number} of {n_pages}" + (f"  ·  {title}" if title else "")
    top = header.y + header.h / 2 - line / 2
    _draw_centered(c, first, FONT_BOLD, HEADER_FONT_PT, HEADER_MIN_FONT_PT, header, top, page_h)
    _draw_centered(c, PRINT_HINT, FONT, HEADER_FONT_PT, HEADER_MIN_FONT_PT, header, top + line, page_h)

    footer = layout.footer_rect(page)
    mid = footer.y + footer.h / 2
    _draw_centered(c, PHOTO_HINT, FONT, HEADER_FONT_PT, HEADER_MIN_FONT_PT, footer, mid - line / 2, page_h)
    _draw_ruler(c, footer, mid + line / 2 + 1.0, page_h)
    ruler_note = (f"{page.paper.upper()}, images {page.image_size_mm:g} mm wide;"
                  f" the bar above must measure {min(RULER_MM, footer.w):g} mm")
    _draw_centered(c, ruler_note, FONT, HEADER_FONT_PT - 1, HEADER_MIN_FONT_PT, footer,
                   mid + line / 2 + 1.0 + line, page_h)


def write_sheets_pdf(
    path: Path,
    pages: list[Page],
    images: Mapping[tuple[str, str], np.ndarray],
    *,
    experiment_id: str,
    title: str = "",
    progress: Callable[[int], None] | None = None,
    n_pages: int | None = None,
) -> None:
    """Write ``pages`` as a printable PDF at ``path``, atomically.

    Args:
        path: output file; it is replaced only once the whole PDF is written.
        pages: from ``layout.plan_pages``.
        images: ``(image_id, variant) -> HxWx3 uint8 RGB`` exact digital images.
        experiment_id: printed in the header (the markers already carry it).
        title: free text for the header line.
        progress: called with the page number after each page is drawn.
        n_pages: the experiment's number of pages, printed in each header ("page 3 of 12"), when
            ``pages`` is a part of them (one process's share, :func:`merge_pdfs` joins the parts);
            default ``len(pages)``.

    Raises:
        KeyError: an image is missing for some slot.
        ValueError: an image is not a square HxWx3 uint8 array, or no pages.
    """
    if not pages:
        raise ValueError("no pages to write")
    _check_images(pages, images)
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # reportlab wraps every stream in ASCII85 by default, a pointless 25 %
    # on top of the lossless images; the switch is global, so restore it.
    saved_a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        first = pages[0]
        # invariant: no timestamps or random ids, so the same input gives the same bytes.
        c = canvas.Canvas(tmp_name, pagesize=(first.size_mm[0] * mm, first.size_mm[1] * mm),
                          pageCompression=1, invariant=1)
        c.setTitle(f"Physical adversarial examples, experiment {experiment_id}" + (f": {title}" if title else ""))
        c.setAuthor("physical")
        c.setSubject("Print at 100% / actual size")
        # Asks viewers that honour it (Acrobat) to default to actual size
        # instead of "fit to page", which would shrink every image.
        c.setViewerPreference("PrintScaling", "None")
        for page in pages:
            c.setPageSize((page.size_mm[0] * mm, page.size_mm[1] * mm))
            _draw_page(c, page, n_pages or len(pages), images, experiment_id, title)
            c.showPage()
            if progress is not None:
                progress(page.number)
        c.save()
        # mkstemp makes the file private (0600); give it normal file permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        # Never leave a partial PDF behind, whatever went wrong.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    finally:
        rl_config.useA85 = saved_a85


def merge_pdfs(parts: list[Path], path: Path) -> None:
    """Join the PDFs ``parts`` (in order) into one at ``path``, atomically, with PDFium: the pages are
    copied as they are (no image is decoded or compressed again), and the first part's document
    information and viewer preferences (print at actual size) are kept."""
    import pypdfium2 as pdfium

    if not parts:
        raise ValueError("no PDFs to merge")
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    docs = [pdfium.PdfDocument(str(p)) for p in parts]
    try:
        for doc in docs[1:]:
            docs[0].import_pages(doc)
        with open(tmp_name, "wb") as f:
            docs[0].save(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    finally:
        for doc in docs:
            doc.close()
