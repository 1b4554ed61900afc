"""Tests for ``physical ingest``: synthetic phone photos of the rendered sheets, with known geometry.

A photo is made by rendering a PDF page with pypdfium2 and warping it with a
known homography (page mm -> photo px) onto a dark background, then adding
uneven light, blur, noise and JPEG compression. The crops must then hold the
right image and variant, registered to within 1 % of the image width.

The registration error of a crop is checked twice:

* from the pixels, as the brief asks: the shift ``cv2.phaseCorrelate``
  measures between the crop and its digital image (grey, float, Hanning
  window), after magnifying the digital image by the crop inset exactly as
  ingest does. At 32 x 32 px this estimator is biased towards zero for
  sub-pixel shifts (measured: a true 1 % shift reads ~0.6 %, a true 2 % reads
  1.1-2.4 %, a perfect registration reads < 0.5 % for 95 % of crops), so a
  negative control shows that a 2 % misregistration does fail the criterion;
* exactly, from geometry: the homography ingest reports for the page is
  compared with the true one at the corners of every crop, in crop pixels.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from typer.testing import CliRunner

from physical.capture import codes, crops, overlay, store, run as ing
from physical import photo_io
from physical.cli import app
from physical.errors import PhysicalError
from physical.sheets.layout import QR_QUIET_MM, Page
from physical.sheets.run import make_sheets
from physical.sheets.manifest import manifest_pages

cv2.setNumThreads(1)
DPI = 200
BG = (60, 52, 45)


# --------------------------------------------------------------------------- synthetic photos


def render(pdf: Path, index: int, dpi: float = DPI) -> np.ndarray:
    doc = pdfium.PdfDocument(pdf)
    try:
        return doc[index].render(scale=dpi / 72, rev_byteorder=True).to_numpy()[..., :3].copy()
    finally:
        doc.close()


def mm_to_render(dpi: float) -> np.ndarray:
    """Page mm -> rendered px (pixel-centre coordinates, as OpenCV uses)."""
    s = dpi / 25.4
    return np.array([[s, 0, -0.5], [0, s, -0.5], [0, 0, 1.0]])


def homography(size_mm, photo_wh, *, rot=0.0, fill=0.85, persp=0.0, seed=0, centre=(0.5, 0.5)) -> np.ndarray:
    """Page mm -> photo px: the page rotated by ``rot`` degrees, filling ``fill`` of the frame,
    with each page corner moved at random by up to ``persp`` of the page size (perspective)."""
    rng = np.random.default_rng(seed)
    w, h = size_mm
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    th = np.deg2rad(rot)
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = (corners - [w / 2, h / 2]) @ r.T
    ext = c.max(0) - c.min(0)
    sc = fill * min(photo_wh[0] / ext[0], photo_wh[1] / ext[1])
    dst = c * sc + [photo_wh[0] * centre[0], photo_wh[1] * centre[1]]
    dst += rng.uniform(-1, 1, dst.shape) * persp * sc * min(w, h) / 2
    return cv2.getPerspectiveTransform(corners.astype(np.float32), dst.astype(np.float32)).astype(float)


def photograph(pages: list[tuple[np.ndarray, np.ndarray]], photo_wh, *, dpi=DPI, blur=0.8, noise=2.0,
               shade=0.2, seed=0) -> np.ndarray:
    """Warp rendered pages (render, page-mm->photo homography) into one RGB photo with light, blur and noise."""
    w, h = photo_wh
    photo = np.empty((h, w, 3), np.uint8)
    photo[:] = BG
    for rendered, hom in pages:
        m = hom @ np.linalg.inv(mm_to_render(dpi))
        warped = cv2.warpPerspective(rendered, m, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.full(rendered.shape[:2], 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
        a = mask[..., None].astype(np.float32) / 255
        photo = (warped * a + photo * (1 - a)).astype(np.uint8)
    out = photo.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out *= (1 - shade * (0.6 * xx / w + 0.4 * yy / h))[..., None]
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    out += np.random.default_rng(seed).normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 90, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def cover(rendered: np.ndarray, page: Page, corners: set[str], dpi: float = DPI) -> np.ndarray:
    """Paint white over the markers (and their quiet zones) of the given corners."""
    out = rendered.copy()
    s = dpi / 25.4
    for m in page.markers:
        if m.corner in corners:
            r = m.rect.expanded(QR_QUIET_MM)
            out[int(r.y * s):int(np.ceil(r.bottom * s)), int(r.x * s):int(np.ceil(r.right * s))] = 255
    return out


def qr_image(text: str, module_px: int = 8, size=(1200, 900)) -> np.ndarray:
    """A photo-like picture of one QR code with ``text`` (any content) on white."""
    code = cv2.QRCodeEncoder.create().encode(text)
    big = cv2.resize(code, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    img = np.full((size[1], size[0]), 235, np.uint8)
    y, x = (size[1] - big.shape[0]) // 2, (size[0] - big.shape[1]) // 2
    img[y:y + big.shape[0], x:x + big.shape[1]] = np.where(big > 0, 235, 20)
    return cv2.cvtColor(cv2.GaussianBlur(img, (0, 0), 0.8), cv2.COLOR_GRAY2RGB)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (its data is not valid); only the header is read."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """A 2-page experiment (8 pictures x clean, fast e4, fast e8; 18 + 6 slots) and its pages rendered."""
    root = tmp_path_factory.mktemp("ingest")
    result = make_sheets(root / "printouts", count=8, eps=[4, 8], methods=["fast"])
    pages = manifest_pages(result.manifest)
    assert len(pages) == 2
    pdf = root / "printouts" / "sheets.pdf"
    rendered = [render(pdf, i) for i in range(len(pages))]
    digital = {}
    for rec in result.manifest["images"]:
        for v in rec["variants"]:
            digital[(rec["id"], v["name"])] = np.asarray(Image.open(root / "printouts" / v["file"]).convert("RGB"))
    return {"root": root, "printouts": root / "printouts", "manifest": result.manifest, "pages": pages,
            "rendered": rendered, "digital": digital, "pdf": pdf}


FORMAT1 = Path(__file__).parent / "data" / "printouts-format1"


@pytest.fixture(scope="module")
def exp1(tmp_path_factory):
    """Printouts made by physical 0.1.0 before registration marks (manifest format 1, corner codes only):
    2 pictures x clean, fast e8 on one page, kept as they were written."""
    root = tmp_path_factory.mktemp("format1")
    shutil.copytree(FORMAT1, root / "printouts")
    manifest = json.loads((root / "printouts" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and "marks" not in manifest["layout"]["pages"][0]
    pages = manifest_pages(manifest)
    pdf = root / "printouts" / "sheets.pdf"
    digital = {(rec["id"], v["name"]): np.asarray(Image.open(root / "printouts" / v["file"]).convert("RGB"))
               for rec in manifest["images"] for v in rec["variants"]}
    return {"root": root, "printouts": root / "printouts", "manifest": manifest, "pages": pages,
            "rendered": [render(pdf, i) for i in range(len(pages))], "digital": digital, "pdf": pdf}


def run(exp, photos: Path, out: Path, **kw) -> ing.IngestResult:
    return ing.ingest(photos, printouts=exp["printouts"], out=out, **kw)


def read_index(out: Path) -> list[dict[str, str]]:
    with open(out / "index.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- crop checks


def _fit_residual(crop: np.ndarray, ref: np.ndarray) -> float:
    """RMS residual after the best colour-affine map ref -> crop (print and camera change colours)."""
    x = np.column_stack([ref.reshape(-1, 3), np.ones(ref.shape[0] * ref.shape[1])])
    y = crop.reshape(-1, 3).astype(np.float64)
    a, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(np.sqrt(np.mean((x @ a - y) ** 2)))


def _shift(crop: np.ndarray, ref: np.ndarray) -> float:
    """Registration error from the pixels, as a fraction of the image width (see the module docstring)."""
    gc, gr = (cv2.cvtColor(a.astype(np.float32), cv2.COLOR_RGB2GRAY) for a in (crop, ref))
    (dx, dy), _ = cv2.phaseCorrelate(gr, gc, cv2.createHanningWindow(gc.shape[::-1], cv2.CV_32F))
    return float(np.hypot(dx, dy)) / gc.shape[1]


def geometric_error(outcome: ing.PhotoOutcome, pages: list[Page], truth: dict[int, np.ndarray],
                    size: int = 32) -> np.ndarray:
    """Per crop: the largest distance between where ingest and the true homography put the
    crop's corners, in crop pixels, as a fraction of the crop width."""
    errs = []
    for number, h in zip(outcome.pages, outcome.homographies):
        h_est = np.array(h).reshape(3, 3)
        for slot in pages[number - 1].slots:
            r, i = slot.rect, crops.INSET * slot.rect.w
            corners = np.array([(r.x + i, r.y + i), (r.right - i, r.y + i), (r.right - i, r.bottom - i),
                                (r.x + i, r.bottom - i)])
            true = codes.transform_points(truth[number], corners)
            side = np.linalg.norm(true[1] - true[0])  # photo px per crop width
            errs.append(np.linalg.norm(codes.transform_points(h_est, corners) - true, axis=1).max() / side)
    return np.array(errs)


def quad_error(rows: list[dict[str, str]], pages: list[Page], truth: dict[str, np.ndarray]) -> np.ndarray:
    """Per index row: the largest distance between its ``quad`` and the slot's true corners
    (photo name -> true page homography), as a fraction of the image width."""
    errs = []
    for r in rows:
        slot = pages[int(r["page"]) - 1].slots[int(r["slot"])]
        assert (slot.image_id, slot.variant) == (r["image_id"], r["variant"])
        true = codes.transform_points(truth[r["photo"]], np.array(slot.rect.corners()))
        quad = np.array([float(v) for v in r["quad"].split()]).reshape(4, 2)
        side = np.linalg.norm(true[1] - true[0])
        errs.append(np.linalg.norm(quad - true, axis=1).max() / side)
    return np.array(errs)


def _variant_eps(variant: str) -> int:
    return 0 if variant == "clean" else int(variant.rsplit("_e", 1)[1])


def check_crops(exp, out: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """Every crop holds the right image and variant; returns the registration shifts.

    Image: among the digital images of all slots, the crop's own picture fits
    best (up to a colour-affine map). Variant: fast e4 and e8 share one sign
    pattern and differ only in amplitude, which the camera's blur attenuates,
    so instead of "closest" the crop's deviation from the clean image,
    projected on that pattern, must grow with eps across the variants of each
    picture in each photo (clean < e4 < e8): a swap of two slots breaks the order.
    """
    refs = {k: crops.digital_as_cropped(v) for k, v in exp["digital"].items()}
    shifts = []
    strength: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in rows:
        crop = np.asarray(Image.open(out / r["crop"]).convert("RGB")).astype(np.float64)
        key = (r["image_id"], r["variant"])
        assert crop.shape == exp["digital"][key].shape
        assert (out / r["digital"]).resolve() == (exp["printouts"] / "images" / f"{key[0]}_{key[1]}.png").resolve()
        dist = {k: _fit_residual(crop, v) for k, v in refs.items()}
        best = min(dist, key=dist.get)
        assert best[0] == key[0], f"{r['crop']}: closest to {best}, not {key} ({dist[best]:.2f} vs {dist[key]:.2f})"
        clean, strongest = refs[(key[0], "clean")], refs[(key[0], "fast_e8")]
        x = np.column_stack([clean.reshape(-1, 3), np.ones(clean.shape[0] * clean.shape[1])])
        a, *_ = np.linalg.lstsq(x, crop.reshape(-1, 3), rcond=None)
        resid = crop.reshape(-1, 3) - x @ a
        direction = (strongest - clean).reshape(-1, 3) @ a[:3]
        proj = float(np.sum(resid * direction) / np.sum(direction * direction))
        strength.setdefault((r["photo_sha256"], key[0]), []).append((_variant_eps(key[1]), proj))
        shifts.append(_shift(crop, refs[key]))
    for (photo, image_id), s in strength.items():
        order = [eps for eps, _ in sorted(s, key=lambda t: t[1])]
        assert order == sorted(order), f"{photo[:12]} {image_id}: variants out of order {sorted(s)}"
    return np.array(shifts)


def assert_registered(shifts: np.ndarray) -> None:
    assert len(shifts) > 0
    assert np.mean(shifts < 0.01) >= 0.95, f"shifts (fraction of width): {np.round(np.sort(shifts)[-5:], 4)}"


# --------------------------------------------------------------------------- tests


def test_opencv_reports_code_corners_in_the_codes_own_order(exp):
    """QRCodeDetectorAruco gives TL, TR, BR, BL of the code itself, whatever the photo's rotation."""
    page, rendered = exp["pages"][0], exp["rendered"][0]
    dec = codes.Decoders()
    for rot in (0, 90, 180, 270, 35):
        hom = homography(page.size_mm, (1600, 1200), rot=rot, fill=0.9, persp=0.05, seed=rot)
        photo = photograph([(rendered, hom)], (1600, 1200), blur=0.5, noise=1)
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        quads = codes.detect_quads(gray, codes.DETECT_SIDE, dec)
        assert len(quads) == 4, rot
        truth = [codes.transform_points(hom, np.array(m.rect.corners())) for m in page.markers]
        for q in quads:
            err = [np.abs(q - t).max() for t in truth]
            assert min(err) < 8, (rot, err)  # the detector's coarse corners, in the same order


def test_rotated_and_perspective_photos(exp, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (pa, pb), (ra, rb) = exp["pages"], exp["rendered"]
    wh = (2000, 1500)
    shots = {
        "upright.jpg": ([(ra, homography(pa.size_mm, wh, rot=4, persp=0.04, seed=1))], {}),
        "upside down.jpg": ([(ra, homography(pa.size_mm, wh, rot=180 - 6, persp=0.1, seed=2))], {"blur": 1.2}),
        "quarter turn.jpg": ([(rb, homography(pb.size_mm, wh, rot=90, fill=0.95, persp=0.12, seed=3))], {}),
        "steep.jpg": ([(ra, homography(pa.size_mm, wh, rot=-90 + 8, fill=0.8, persp=0.2, seed=4))], {"shade": 0.4}),
    }
    for name, (pages, kw) in shots.items():
        (photos / name).write_bytes(jpeg(photograph(pages, wh, seed=len(name), **kw)))
    out = tmp_path / "captures"
    result = run(exp, photos, out)
    assert [o.status for o in result.outcomes] == ["ingested"] * 4, [o.reason for o in result.outcomes]
    assert all(o.markers_used == (4,) for o in result.outcomes)
    assert result.pages_seen == (1, 2) and result.pages_missing == ()
    rows = read_index(out)
    assert list(rows[0].keys()) == list(store.INDEX_COLUMNS)
    assert len(rows) == 3 * len(pa.slots) + len(pb.slots) == result.crops_total, [(o.photo, d["reason"], d.get("residual_pct"), d.get("content_shift_pct")) for o in result.outcomes for d in o.dropped]
    assert all(float(r["reprojection_px"]) < 1.0 for r in rows)
    assert_registered(check_crops(exp, out, rows))
    for o in result.outcomes:
        true_h = shots[o.photo][0][0][1]
        assert geometric_error(o, exp["pages"], {o.pages[0]: true_h}).max() < 0.01, o.photo
    # Crop file names and the overlays.
    for o in result.outcomes:
        assert (out / o.overlay).is_file() and o.overlay == f"overlays/{o.sha256[:12]}.jpg"
        with Image.open(out / o.overlay) as im:
            assert max(im.size) == min(overlay.OVERLAY_SIDE, 2000)
    turned = next(o for o in result.outcomes if o.photo == "quarter turn.jpg")
    assert turned.pages == (2,)
    assert {r["crop"] for r in rows if r["photo"] == "quarter turn.jpg"} == {
        f"crops/{turned.sha256[:12]}/{s.image_id}_{s.variant}.png" for s in pb.slots}
    state = json.loads((out / "ingest.json").read_text())
    assert state["experiment_id"] == exp["manifest"]["experiment_id"] and len(state["photos"]) == 4


def test_registration_metric_catches_a_two_percent_error(exp):
    """Negative control: crops through a homography 0.5 mm (2 % of a 25 mm image) off fail the criterion."""
    page, rendered = exp["pages"][0], exp["rendered"][0]
    hom = homography(page.size_mm, (2000, 1500), rot=3, persp=0.1, seed=1)
    photo = photograph([(rendered, hom)], (2000, 1500))
    for dx, dy in ((0.5, 0.0), (0.0, -0.5), (0.35, 0.35)):
        off = hom @ np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]])
        shifts = [_shift(crops.crop_slot(photo, off, s.rect, (32, 32))[0], crops.digital_as_cropped(exp["digital"][(s.image_id, s.variant)]))
                  for s in page.slots]
        assert np.mean(np.array(shifts) < 0.01) < 0.2, np.round(shifts, 4)
    good = [_shift(crops.crop_slot(photo, hom, s.rect, (32, 32))[0], crops.digital_as_cropped(exp["digital"][(s.image_id, s.variant)]))
            for s in page.slots]
    assert np.mean(np.array(good) < 0.01) >= 0.95


def test_format1_printouts_two_markers_are_enough_and_one_is_not(exp1, tmp_path):
    """Printouts from before the registration marks ingest as they did: one homography from the corner codes."""
    photos = tmp_path / "photos"
    photos.mkdir()
    page, rendered = exp1["pages"][0], exp1["rendered"][0]
    wh = (2000, 1500)
    hom = homography(page.size_mm, wh, rot=-85, persp=0.1, seed=7)
    # The two top markers only: the homography is extrapolated over the whole page.
    (photos / "top two.jpg").write_bytes(jpeg(photograph([(cover(rendered, page, {"BL", "BR"}), hom)], wh)))
    (photos / "diagonal.jpg").write_bytes(jpeg(photograph([(cover(rendered, page, {"TR", "BL"}), hom)], wh)))
    (photos / "one.jpg").write_bytes(jpeg(photograph([(cover(rendered, page, {"TR", "BR", "BL"}), hom)], wh)))
    out = tmp_path / "captures"
    result = run(exp1, photos, out)
    by = {o.photo: o for o in result.outcomes}
    assert by["top two.jpg"].status == "ingested" and by["top two.jpg"].markers_used == (2,)
    assert by["diagonal.jpg"].status == "ingested" and by["diagonal.jpg"].markers_used == (2,)
    assert any("BR/BL not found" in w for w in by["top two.jpg"].warnings), by["top two.jpg"].warnings
    assert by["one.jpg"].status == "skipped"
    assert by["one.jpg"].reason.startswith("only 1 marker of page 1 found (TL)")
    for name in ("top two.jpg", "diagonal.jpg"):
        err = geometric_error(by[name], exp1["pages"], {1: hom})
        assert err.max() < 0.01, (name, np.round(np.sort(err)[-3:], 4))
    rows = read_index(out)
    assert len(rows) == 2 * len(page.slots)
    assert {r["markers_used"] for r in rows} == {"2"}
    assert all("2 corner codes (BR/BL not found)" in r["warnings"] for r in rows if r["photo"] == "top two.jpg")
    assert quad_error(rows, exp1["pages"], {"top two.jpg": hom, "diagonal.jpg": hom}).max() < 0.01
    assert_registered(check_crops(exp1, out, rows))


def test_one_corner_code_is_enough_with_registration_marks(exp, tmp_path):
    """Format 2: one read code identifies the page; the marks around each image register it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    page, rendered = exp["pages"][0], exp["rendered"][0]
    wh = (2000, 1500)
    hom = homography(page.size_mm, wh, rot=-85, persp=0.1, seed=7)
    (photos / "one.jpg").write_bytes(jpeg(photograph([(cover(rendered, page, {"TR", "BR", "BL"}), hom)], wh)))
    out = tmp_path / "captures"
    (o,) = run(exp, photos, out).outcomes
    assert o.status == "ingested", o.reason
    assert not o.dropped, o.dropped
    rows = read_index(out)
    assert len(rows) == len(page.slots)
    assert quad_error(rows, exp["pages"], {"one.jpg": hom}).max() < 0.01
    assert all(float(r["residual_pct"]) < 1.0 for r in rows)
    assert_registered(check_crops(exp, out, rows))


def test_12_megapixel_photo_with_both_pages(exp, tmp_path):
    """One 4032 x 3024 photo of both sheets side by side: each page is ingested."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (pa, pb), dpi = exp["pages"], 300
    ra, rb = (render(exp["pdf"], i, dpi) for i in range(2))
    wh = (4032, 3024)
    ha = homography(pa.size_mm, (wh[0] // 2, wh[1]), rot=3, fill=0.92, persp=0.05, seed=11)
    hb = np.array([[1, 0, wh[0] / 2], [0, 1, 0], [0, 0, 1]]) @ homography(
        pb.size_mm, (wh[0] // 2, wh[1]), rot=-2, fill=0.92, persp=0.05, seed=12)
    (photos / "both.jpg").write_bytes(jpeg(photograph([(ra, ha), (rb, hb)], wh, dpi=dpi, blur=1.2), quality=92))
    out = tmp_path / "captures"
    result = run(exp, photos, out)
    (o,) = result.outcomes
    assert o.status == "ingested" and o.pages == (1, 2) and o.markers_used == (4, 4), o.reason
    assert geometric_error(o, exp["pages"], {1: ha, 2: hb}).max() < 0.01
    rows = read_index(out)
    assert len(rows) == len(pa.slots) + len(pb.slots)
    assert_registered(check_crops(exp, out, rows))


@pytest.fixture(scope="module")
def other_experiment_photo(exp):
    """A photo of a sheet of another experiment, and that experiment's id."""
    other = make_sheets(exp["root"] / "other", count=1, eps=[4], methods=["fast"])
    page = manifest_pages(other.manifest)[0]
    rendered = render(exp["root"] / "other" / "sheets.pdf", 0)
    hom = homography(page.size_mm, (1600, 1200), rot=2, persp=0.05, seed=5)
    return jpeg(photograph([(rendered, hom)], (1600, 1200))), other.manifest["experiment_id"]


def test_bad_inputs_are_skipped_with_a_reason_and_good_photos_still_ingested(exp, tmp_path, other_experiment_photo):
    photos = tmp_path / "photos"
    photos.mkdir()
    page, rendered = exp["pages"][1], exp["rendered"][1]
    wh = (1600, 1200)
    good = jpeg(photograph([(rendered, homography(page.size_mm, wh, rot=1, seed=21))], wh))
    (photos / "good.jpg").write_bytes(good)
    (photos / "sub").mkdir()
    (photos / "sub" / "fötö ✓ 2.JPG").write_bytes(
        jpeg(photograph([(rendered, homography(page.size_mm, wh, rot=178, persp=0.08, seed=22))], wh, seed=3)))
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (photos / "text.png").write_bytes(b"this is not a picture\n" * 20)
    blank = np.full((1200, 900, 3), 250, np.uint8)
    (photos / "blank.jpg").write_bytes(jpeg(photograph([(blank, homography(page.size_mm, wh))], wh)))
    (photos / "one marker.jpg").write_bytes(jpeg(photograph(
        [(cover(rendered, page, {"TL", "TR", "BR"}), homography(page.size_mm, wh, seed=23))], wh)))
    Image.fromarray(qr_image("hello world")).save(photos / "other qr.png")
    both = np.minimum(qr_image("PHYS1:zz:1:TL", size=(1600, 1200)),
                      np.roll(qr_image("PHYS1:" + "a" * 200, 5, size=(1600, 1200)), 500, axis=1))
    Image.fromarray(both).save(photos / "malformed.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photos / "tiny.png")
    (photos / "huge.png").write_bytes(png_header_only(16_000, 14_000))
    (photos / "bomb.png").write_bytes(png_header_only(30_000, 30_000))
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    frames[0].save(photos / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (photos / "other experiment.jpg").write_bytes(other_experiment_photo[0])
    (photos / ".hidden.jpg").write_bytes(b"")
    (photos / ".hidden_dir").mkdir()
    (photos / ".hidden_dir" / "x.jpg").write_bytes(b"")
    (photos / "notes.txt").write_text("photos of the sheets")
    (photos / "IMG_0001.AAE").write_text("<xml/>")

    out = tmp_path / "captures"
    result = run(exp, photos, out)
    by = {o.photo: o for o in result.outcomes}
    assert result.not_images == 2
    assert ".hidden.jpg" not in by and not any("hidden" in p for p in by)
    assert by["good.jpg"].status == "ingested"
    assert by["sub/fötö ✓ 2.JPG"].status == "ingested"
    expect = {
        "empty.jpg": "empty file (0 bytes)",
        "truncated.jpg": "truncated or corrupt image",
        "text.png": "not an image",
        "blank.jpg": "no QR markers found",
        "other qr.png": f"no marker of experiment {result.experiment_id} found (1 other QR code(s) ignored)",
        "malformed.png": f"no marker of experiment {result.experiment_id} found (2 other QR code(s) ignored)",
        "tiny.png": "too small (8x8 pixels)",
        "huge.png": "image too large: 16000x14000 pixels (224 MP, limit 210 MP)",
        "bomb.png": "image too large",
        "anim.gif": "animated image (2 frames)",
        "other experiment.jpg": f"sheet of another experiment ({other_experiment_photo[1]}), "
                                f"not {result.experiment_id}",
    }
    for name, start in expect.items():
        o = by[name]
        assert o.status == "skipped", name
        assert o.reason.startswith(start), (name, o.reason)
        assert "\n" not in o.reason and len(o.reason) < 200
    # One corner code identifies the page; its registration marks register it.
    assert by["one marker.jpg"].status == "ingested", by["one marker.jpg"].reason
    assert set(by) == set(expect) | {"good.jpg", "sub/fötö ✓ 2.JPG", "one marker.jpg"}
    assert result.exit_code == 0
    assert ing.ingest(photos, printouts=exp["printouts"], out=tmp_path / "c2", strict=True).exit_code == 1
    # An overlay shows the user what was found in a skipped photo.
    assert (out / by["blank.jpg"].overlay).is_file()
    # photos/ is never modified.
    assert (photos / "empty.jpg").stat().st_size == 0 and len(list(photos.rglob("*"))) == 20


def test_cli_exit_codes_strict_and_rerun(exp, tmp_path):
    runner = CliRunner()
    photos, bad = tmp_path / "photos", tmp_path / "bad"
    photos.mkdir()
    bad.mkdir()
    page, rendered = exp["pages"][0], exp["rendered"][0]
    wh = (1600, 1200)
    for i in range(2):
        (photos / f"p{i}.jpg").write_bytes(
            jpeg(photograph([(rendered, homography(page.size_mm, wh, rot=90 * i, seed=30 + i))], wh, seed=i)))
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "x.png").write_bytes(b"nope")
    out = tmp_path / "captures"
    args = ["--printouts", str(exp["printouts"]), "--out", str(out)]

    r = runner.invoke(app, ["ingest", str(bad), *args])
    assert r.exit_code == 1, r.output
    assert "skipped empty.jpg: empty file (0 bytes)" in r.output and "no photo could be ingested" in r.output
    assert "Traceback" not in r.output

    (photos / "empty.jpg").write_bytes(b"")
    r = runner.invoke(app, ["ingest", str(photos), *args, "--strict"])
    assert r.exit_code == 1, r.output
    assert "2 ingested (36 crops), 1 skipped" in r.output and "--strict: 1 photo(s) skipped" in r.output
    assert "pages photographed: 1 (of 2)" in r.output and "pages never photographed: 2" in r.output
    index = (out / "index.csv").read_bytes()
    assert len(read_index(out)) == 2 * len(page.slots)

    # Re-running ingests nothing new, keeps the index, and still succeeds (photos were ingested before).
    r = runner.invoke(app, ["ingest", str(photos), *args])
    assert r.exit_code == 0, r.output
    assert "0 ingested (0 crops), 1 skipped, 2 already ingested" in r.output
    assert (out / "index.csv").read_bytes() == index
    # The bad folder alone now exits 0: something was ingested before.
    assert runner.invoke(app, ["ingest", str(bad), *args]).exit_code == 0

    # A copy under another name is the same photo.
    shutil.copy(photos / "p0.jpg", photos / "copy of p0.jpg")
    res = ing.ingest(photos, printouts=exp["printouts"], out=out)
    copy = next(o for o in res.outcomes if o.photo == "copy of p0.jpg")
    assert copy.status == "already ingested" and copy.reason == "same photo as p0.jpg, already ingested"

    # An interrupted run (index written, state not): the photo is ingested again, without duplicate rows.
    state = json.loads((out / "ingest.json").read_text())
    state["photos"] = state["photos"][:1]
    (out / "ingest.json").write_text(json.dumps(state))
    res = ing.ingest(photos, printouts=exp["printouts"], out=out)
    assert [o.photo for o in res.ingested] == ["p1.jpg"]
    rows = read_index(out)
    assert len(rows) == 2 * len(page.slots) and len({(r["photo_sha256"], r["slot"]) for r in rows}) == len(rows)


def test_refuses_captures_of_another_experiment(exp, tmp_path, other_experiment_photo):
    photos = tmp_path / "photos"
    photos.mkdir()
    out = tmp_path / "captures"
    (out).mkdir()
    (out / "ingest.json").write_text(json.dumps({"format": "physical-captures", "format_version": 1,
                                                  "experiment_id": "0badc0de", "photos": []}))
    with pytest.raises(PhysicalError, match=r"holds captures of experiment 0badc0de.*--out"):
        run(exp, photos, out)
    r = CliRunner().invoke(app, ["ingest", str(photos), "--printouts", str(exp["printouts"]), "--out", str(out)])
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    with pytest.raises(PhysicalError, match="no such folder"):
        run(exp, tmp_path / "nope", tmp_path / "c3")


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def test_photo_formats_all_ingest(exp, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    page, rendered = exp["pages"][1], exp["rendered"][1]
    wh = (1600, 1200)
    upright = photograph([(rendered, homography(page.size_mm, wh, rot=3, persp=0.05, seed=40))], wh)
    # EXIF orientation 6: stored rotated 90 degrees counter-clockwise, shown turned clockwise.
    (photos / "exif6.jpg").write_bytes(jpeg(np.ascontiguousarray(np.rot90(upright, 1)), exif=_exif(6)))
    (photos / "exif8.jpg").write_bytes(jpeg(np.ascontiguousarray(np.rot90(upright, -1)), exif=_exif(8)))
    grey16 = (cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    Image.fromarray(grey16).save(photos / "grey16.png")
    cv2.imwrite(str(photos / "rgb16.png"), cv2.cvtColor(upright, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    Image.fromarray(upright).convert("CMYK").save(photos / "cmyk.jpg", quality=92)
    Image.fromarray(upright).convert("L").save(photos / "grey.jpg", quality=92)
    rgba = np.dstack([upright, np.full(upright.shape[:2], 255, np.uint8)])
    rgba[:100, :100, 3] = 0
    Image.fromarray(rgba).save(photos / "rgba.png")
    Image.fromarray(upright).save(photos / "photo.webp", quality=90)
    Image.fromarray(upright).save(photos / "photo.tiff")
    Image.fromarray(upright).save(photos / "photo.bmp")
    from pillow_heif import from_pillow

    from_pillow(Image.fromarray(upright)).save(photos / "photo.heic", quality=90, enc_params={"preset": "ultrafast"})
    out = tmp_path / "captures"
    result = run(exp, photos, out)
    assert len(result.outcomes) == 11
    hom = homography(page.size_mm, wh, rot=3, persp=0.05, seed=40)
    for o in result.outcomes:
        assert o.status == "ingested" and o.markers_used == (4,), (o.photo, o.reason)
        assert geometric_error(o, exp["pages"], {2: hom}).max() < 0.01, o.photo
    rows = read_index(out)
    assert_registered(check_crops(exp, out, rows))


def test_decode_photo_modes_and_orientation():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    for o in range(1, 9):
        via_pillow = np.asarray(photo_io.ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg(rgb, 95, exif=_exif(o))))))
        assert np.array_equal(photo_io.decode_photo(jpeg(rgb, 95, exif=_exif(o))), via_pillow), o
    rgba = np.dstack([rgb, np.zeros((30, 40), np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    assert (photo_io.decode_photo(buf.getvalue()) == 255).all()  # transparent -> white paper
    buf = io.BytesIO()
    Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50).save(buf, "PNG")
    grey = photo_io.decode_photo(buf.getvalue())
    assert grey.shape == (30, 40, 3) and grey.dtype == np.uint8 and grey[-1, -1, 0] == round(1199 * 50 / 257)
    with pytest.raises(photo_io.PhotoError, match="empty file"):
        photo_io.decode_photo(b"")


def test_pages_are_listed_as_ranges():
    from physical.cli import page_ranges

    assert page_ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    assert page_ranges([4]) == "4"
    assert page_ranges(list(range(1, 201))) == "1-200"
    assert page_ranges([3, 1, 2, 2]) == "1-3"
    assert page_ranges([]) == ""


def test_photos_above_the_work_size_are_reduced_and_reported_in_full_size_pixels(exp, tmp_path, monkeypatch):
    """A photo of more than photo_io.WORK_PIXELS (50 MP; here lowered) is registered at half size,
    and index.csv still gives positions in the full photo's pixels."""
    photos = tmp_path / "photos"
    photos.mkdir()
    page, rendered = exp["pages"][0], exp["rendered"][0]
    wh = (3200, 2400)
    hom = homography(page.size_mm, wh, rot=4, persp=0.05, seed=41)
    (photos / "big.jpg").write_bytes(jpeg(photograph([(rendered, hom)], wh), quality=92))
    monkeypatch.setattr(photo_io, "WORK_PIXELS", 2_000_000)
    rgb, k = photo_io.decode_reduced((photos / "big.jpg").read_bytes())
    assert k == 2 and rgb.shape == (1200, 1600, 3)
    out = tmp_path / "captures"
    (o,) = run(exp, photos, out).outcomes
    assert o.status == "ingested" and not o.dropped, (o.reason, o.dropped)
    rows = read_index(out)
    assert len(rows) == len(page.slots)
    assert quad_error(rows, exp["pages"], {"big.jpg": hom}).max() < 0.01
    assert geometric_error(o, exp["pages"], {1: hom}).max() < 0.01
