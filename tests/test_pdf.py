"""Tests for the printable sheet PDF (physical.pdf): render it back and check what a printer would get."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from physical.sheets import layout, payload, pdf
from physical.sheets.layout import Rect

EXP = "3f9a2c1b"
DPI = 200
PX_PER_MM = DPI / 25.4
PT_PER_MM = 72 / 25.4
VARIANTS = ["clean", "fgsm_eps4", "fgsm_eps8", "bim_eps8", "llc_eps8"]
LABELS = {"bim_eps8": "bim ε8", "fgsm_eps4": "fgsm ε4", "fgsm_eps8": "fgsm ε8", "llc_eps8": "llc ε8"}


def _render(page: pdfium.PdfPage, dpi: float, crop_mm: Rect | None = None) -> np.ndarray:
    """Render a page (or only ``crop_mm`` of it) to an RGB uint8 array."""
    crop = (0.0, 0.0, 0.0, 0.0)
    if crop_mm is not None:
        w, h = page.get_size()
        crop = (crop_mm.x * PT_PER_MM, h - crop_mm.bottom * PT_PER_MM,
                w - crop_mm.right * PT_PER_MM, crop_mm.y * PT_PER_MM)
    # rev_byteorder: pdfium renders BGR by default.
    return page.render(scale=dpi / 72, crop=crop, rev_byteorder=True).to_numpy()[..., :3].copy()


def _sample_cells(rendered: np.ndarray, rect: Rect, n: int, px_per_mm: float, origin_mm=(0.0, 0.0)) -> np.ndarray:
    """Sample ``rendered`` at the centre of each of the n x n printed cells of ``rect``."""
    centres = (np.arange(n) + 0.5) * rect.w / n
    cols = np.floor((rect.x - origin_mm[0] + centres) * px_per_mm).astype(int)
    rows = np.floor((rect.y - origin_mm[1] + centres) * px_per_mm).astype(int)
    return rendered[rows[:, None], cols[None, :]]


def _assert_pixels_match(sampled: np.ndarray, digital: np.ndarray) -> None:
    err = np.abs(sampled.astype(int) - digital.astype(int)).max(axis=-1)
    assert (err <= 8).mean() >= 0.99, f"only {(err <= 8).mean():.3f} of samples match, max error {err.max()}"


@pytest.fixture(scope="module")
def sheets(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(1)
    groups = [(f"img{i:03d}", VARIANTS) for i in range(3)]
    # 40 mm images: 4 columns, so each picture takes 2 rows and 2 pictures fill a page.
    pages = layout.plan_pages(groups, EXP, image_size_mm=40.0, variant_labels=LABELS)
    images = {(g, v): rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for g, vs in groups for v in vs}
    path = tmp_path_factory.mktemp("pdf") / "sheets.pdf"
    done: list[int] = []
    pdf.write_sheets_pdf(path, pages, images, experiment_id=EXP, title="unit test run", progress=done.append)
    doc = pdfium.PdfDocument(path)
    rendered = [_render(doc[i], DPI) for i in range(len(doc))]
    yield path, pages, images, doc, rendered, done
    doc.close()


def test_page_count_size_and_progress(sheets) -> None:
    path, pages, _, doc, _, done = sheets
    assert len(pages) == 2 and len(doc) == 2
    assert done == [1, 2]
    for i in range(len(doc)):
        w, h = doc[i].get_size()
        assert (w / PT_PER_MM, h / PT_PER_MM) == pytest.approx((210.0, 297.0), abs=0.01)
    assert path.stat().st_size < 2_000_000


def test_images_are_lossless_not_jpeg(sheets) -> None:
    path, pages, _, doc, _, _ = sheets
    data = path.read_bytes()
    assert b"/DCTDecode" not in data
    assert b"/FlateDecode" in data
    assert b"/PrintScaling /None" in data
    for i, page in enumerate(pages):
        objs = list(doc[i].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))
        assert len(objs) == len(page.slots)
        for obj in objs:
            assert obj.get_filters() == ["FlateDecode"]
            # 32 px at 40 mm upscaled x30 = 960 px = 610 px per inch.
            assert obj.get_px_size() == (960, 960)


def test_upscale_factor() -> None:
    assert pdf.MIN_IMAGE_DPI >= 300
    assert pdf.upscale_factor(32, 25.0) == 19
    assert pdf.upscale_factor(32, 40.0) == 30
    assert pdf.upscale_factor(299, 25.0) == 2
    assert pdf.upscale_factor(299, 60.0) == 5
    assert pdf.upscale_factor(4000, 25.0) == 1
    for n, size in [(32, 25.0), (299, 25.0), (224, 47.3), (10, 150.0)]:
        k = pdf.upscale_factor(n, size)
        assert n * k / (size / 25.4) >= pdf.MIN_IMAGE_DPI > n * (k - 1) / (size / 25.4)


def test_qr_codes_decode_at_marker_corners(sheets) -> None:
    _, pages, _, _, rendered, _ = sheets
    detector = cv2.QRCodeDetectorAruco()
    for page, rgb in zip(pages, rendered):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        ok, texts, points, _ = detector.detectAndDecodeMulti(gray)
        assert ok
        expected = {m.payload: m for m in page.markers}
        assert sorted(texts) == sorted(expected)
        assert {payload.decode(t, experiment_id=EXP, n_pages=len(pages)).corner for t in texts} == set(payload.CORNERS)
        for text, pts in zip(texts, points):
            want = np.array(expected[text].rect.corners()) * PX_PER_MM
            # OpenCV reports the module grid's corners in TL, TR, BR, BL order.
            assert np.abs(pts - want).max() <= 1.0 * PX_PER_MM, (text, pts, want)


def test_every_slot_reproduces_the_digital_pixels(sheets) -> None:
    _, pages, images, _, rendered, _ = sheets
    for page, rgb in zip(pages, rendered):
        for slot in page.slots:
            digital = images[(slot.image_id, slot.variant)]
            _assert_pixels_match(_sample_cells(rgb, slot.rect, 32, PX_PER_MM), digital)


def test_white_space_around_images_and_markers(sheets) -> None:
    """No outline or stray ink: the gaps around images and the QR quiet zones are blank paper."""
    _, pages, _, _, rendered, _ = sheets
    for page, rgb in zip(pages, rendered):
        ink = np.zeros(rgb.shape[:2], bool)
        allowed = [s.rect.expanded(0.3) for s in page.slots]
        allowed += [layout.label_rect(s.rect).expanded(0.3) for s in page.slots]
        allowed += [m.rect.expanded(0.3) for m in page.markers]
        allowed += [mk.rect.expanded(0.3) for mk in page.marks]
        allowed += [layout.header_rect(page), layout.footer_rect(page)]
        for r in allowed:
            x0, y0, x1, y1 = layout.mm_to_px(r, PX_PER_MM)
            ink[max(y0, 0):y1, max(x0, 0):x1] = True
        outside = rgb[~ink]
        assert outside.min() >= 250, "ink found outside images, labels, markers and text bands"


def _text_boxes_mm(pdf_page: pdfium.PdfPage) -> list[Rect]:
    text_page = pdf_page.get_textpage()
    h_pt = pdf_page.get_height()
    boxes = []
    for k in range(text_page.count_rects()):
        left, bottom, right, top = text_page.get_rect(k)
        boxes.append(Rect(left / PT_PER_MM, (h_pt - top) / PT_PER_MM, (right - left) / PT_PER_MM, (top - bottom) / PT_PER_MM))
    return boxes


def _assert_text_in_bands(pdf_page: pdfium.PdfPage, page: layout.Page) -> None:
    """Every piece of text lies in a label band or the header/footer, never over an image or QR quiet zone."""
    bands = [layout.label_rect(s.rect) for s in page.slots]
    bands += [layout.header_rect(page), layout.footer_rect(page)]
    forbidden = [s.rect for s in page.slots] + [m.rect.expanded(layout.QR_QUIET_MM) for m in page.markers]
    boxes = _text_boxes_mm(pdf_page)
    assert boxes
    for box in boxes:
        assert any(_within(box, b.expanded(0.5)) for b in bands), box
        assert not any(_overlaps(box, f) for f in forbidden), box


def test_text_is_where_layout_says(sheets) -> None:
    _, pages, _, doc, _, _ = sheets
    for i, page in enumerate(pages):
        text = doc[i].get_textpage().get_text_range()
        assert f"Experiment {EXP}" in text and f"page {page.number} of {len(pages)}" in text
        assert "unit test run" in text and "Print at 100% / actual size" in text
        for slot in page.slots:
            assert slot.label in text  # ε included: reportlab draws it from the Symbol font
        _assert_text_in_bands(doc[i], page)


def test_long_text_is_shortened_and_unprintable_characters_replaced(tmp_path: Path) -> None:
    image_id = "a_really_long_picture_identifier_0001"
    variants = ["clean", "fgsm_eps16_with_a_long_name"]
    pages = layout.plan_pages([(image_id, variants)], EXP, image_size_mm=10.0)
    images = {(image_id, v): np.zeros((32, 32, 3), np.uint8) for v in variants}
    path = tmp_path / "long.pdf"
    pdf.write_sheets_pdf(path, pages, images, experiment_id=EXP, title="中文 ünïcödé ε " * 20)
    doc = pdfium.PdfDocument(path)
    text = doc[0].get_textpage().get_text_range()
    assert "?? ünïcödé ε" in text and "中" not in text
    # Labels are cut in the middle so the variant names still tell the images apart.
    assert "…· clean" in text and "…_name" in text
    _assert_text_in_bands(doc[0], pages[0])
    doc.close()


def _within(a: Rect, b: Rect) -> bool:
    return a.x >= b.x and a.y >= b.y and a.right <= b.right and a.bottom <= b.bottom


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


def test_large_image_299px(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    digital = {("cat", v): rng.integers(0, 256, (299, 299, 3), dtype=np.uint8) for v in ("clean", "bim_eps8")}
    pages = layout.plan_pages([("cat", ["clean", "bim_eps8"])], EXP, image_size_mm=60.0)
    path = tmp_path / "big.pdf"
    pdf.write_sheets_pdf(path, pages, digital, experiment_id=EXP)
    doc = pdfium.PdfDocument(path)
    assert len(doc) == 1
    assert [o.get_px_size() for o in doc[0].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])] == [(1495, 1495)] * 2
    # 20 px/mm (508 dpi): 4 rendered pixels per digital pixel, and the
    # millimetre slot edges fall on whole pixels, so the crop origin is exact.
    # pdfium's image smoothing stays on: the upscaling must make it harmless.
    px_per_mm = 20
    for slot in pages[0].slots:
        crop = _render(doc[0], px_per_mm * 25.4, slot.rect)
        sampled = _sample_cells(crop, slot.rect, 299, px_per_mm, origin_mm=(slot.rect.x, slot.rect.y))
        _assert_pixels_match(sampled, digital[(slot.image_id, slot.variant)])
    doc.close()
    assert b"/DCTDecode" not in path.read_bytes()


def _one_page(tmp_path: Path):
    pages = layout.plan_pages([("a", ["clean"])], EXP)
    images = {("a", "clean"): np.zeros((32, 32, 3), np.uint8)}
    return tmp_path / "out.pdf", pages, images


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    path, pages, images = _one_page(tmp_path)
    path.write_bytes(b"old")

    def boom(_: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        pdf.write_sheets_pdf(path, pages, images, experiment_id=EXP, progress=boom)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.pdf"]

    pdf.write_sheets_pdf(path, pages, images, experiment_id=EXP)
    assert path.read_bytes().startswith(b"%PDF")
    assert os.listdir(tmp_path) == ["out.pdf"]


@pytest.mark.parametrize(
    ("images", "error"),
    [
        ({}, KeyError),
        ({("a", "clean"): np.zeros((32, 32, 3), np.float32)}, ValueError),
        ({("a", "clean"): np.zeros((32, 32), np.uint8)}, ValueError),
        ({("a", "clean"): np.zeros((32, 16, 3), np.uint8)}, ValueError),
    ],
)
def test_bad_images_rejected_before_writing(tmp_path: Path, images: dict, error: type) -> None:
    path, pages, _ = _one_page(tmp_path)
    with pytest.raises(error):
        pdf.write_sheets_pdf(path, pages, images, experiment_id=EXP)
    assert os.listdir(tmp_path) == []


def test_scale_check_bar_is_100_mm(sheets) -> None:
    _, pages, _, _, rendered, _ = sheets
    footer = layout.footer_rect(pages[0])
    x0, y0, x1, y1 = layout.mm_to_px(footer, PX_PER_MM)
    dark = rendered[0][y0:y1, x0:x1].min(axis=-1) < 160
    row = dark[int(np.argmax(dark.sum(axis=1)))]
    cols = np.flatnonzero(row)
    assert (cols[-1] - cols[0] + 1) / PX_PER_MM == pytest.approx(pdf.RULER_MM, abs=0.3)


def test_registration_marks_are_printed_where_the_layout_says(sheets) -> None:
    """OpenCV's ArUco detector finds every mark of every page, with its id, at its rect, to 0.1 mm."""
    _, pages, _, _, rendered, _ = sheets
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, layout.MARK_DICTIONARY))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    detector = cv2.aruco.ArucoDetector(dictionary, params)
    for page, rgb in zip(pages, rendered):
        assert len(page.marks) >= 2 * len(page.slots) // 4
        corners, ids, _ = detector.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = {int(i): np.asarray(c).reshape(4, 2) for c, i in zip(corners, ids.ravel())}
        assert sorted(found) == sorted(m.id for m in page.marks)
        for m in page.marks:
            expect = (np.array(m.rect.corners()) * PX_PER_MM) - 0.5   # pixel centres
            assert np.abs(found[m.id] - expect).max() / PX_PER_MM < 0.1, m
        # The module pattern is the one the dictionary holds for the id (what ingest decodes).
        m = page.marks[0]
        bits = layout.mark_modules(m.id)
        x0, y0, x1, y1 = layout.mm_to_px(m.rect, PX_PER_MM)
        cell = (x1 - x0) / bits.shape[0]
        centres = (np.arange(bits.shape[0]) + 0.5) * cell
        dark = rgb[(y0 + centres).astype(int)[:, None], (x0 + centres).astype(int)[None, :]].mean(-1) < 128
        assert (dark == bits).all()
