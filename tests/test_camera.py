"""`physical simulate-photos`: synthetic phone photos and their ground truth.

The ground truth is checked against what OpenCV itself finds in the photos
(QR codes where the homography says they are) and against the digital
images (each printed slot looks like its PNG).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from physical.capture.camera import (
    DIFFICULTIES,
    GROUND_TRUTH_NAME,
    page_homography,
    project,
    sample_params,
    simulate_photos,
)
from physical.cli import app
from physical.errors import PhysicalError
from physical.sheets.run import make_sheets
from physical.sheets.manifest import manifest_pages, read_manifest

cv2.setNumThreads(1)
SIZES = {(4032, 3024), (3024, 4032)}


@pytest.fixture(scope="module")
def printouts(tmp_path_factory) -> Path:
    """A small 2-page experiment (4 pictures x 3 variants at 50 mm: 3 pictures fit a page)."""
    folder = tmp_path_factory.mktemp("exp") / "printouts"
    make_sheets(folder, count=4, eps=[4, 8], methods=["fast"], image_size_mm=50, device="cpu")
    assert len(read_manifest(folder)["layout"]["pages"]) == 2
    return folder


@pytest.fixture(scope="module")
def normal_run(printouts, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("normal") / "photos"
    calls = []
    paths = simulate_photos(printouts, out, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 2) and calls[-1] == (2, 2)
    assert paths == sorted(out.glob("*.jpg"))
    return out


@pytest.fixture(scope="module")
def easy_run(printouts, tmp_path_factory) -> tuple[Path, str]:
    """The easy photos, made through the CLI."""
    out = tmp_path_factory.mktemp("easy") / "photos"
    result = CliRunner().invoke(app, ["simulate-photos", "--printouts", str(printouts), "--out", str(out),
                                      "--difficulty", "easy"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def displayed(path: Path) -> np.ndarray:
    """The photo as a viewer shows it (EXIF orientation applied), RGB."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def ground_truth(folder: Path) -> dict:
    return json.loads((folder / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))


def qr_check(folder: Path, name: str, entry: dict, pages: dict) -> int:
    """Decode the photo's QR codes; assert each of ours sits where the homography says. Returns the count."""
    img = cv2.cvtColor(displayed(folder / name), cv2.COLOR_RGB2GRAY)
    assert (img.shape[1], img.shape[0]) == (entry["width"], entry["height"])
    ok, texts, points, _ = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(img)
    H = np.array(entry["homography"])
    tol = 0.005 * float(np.hypot(*img.shape))
    markers = {m.payload: m for m in pages[entry["page"]].markers}
    found = 0
    for text, pts in zip(texts if ok else (), points if ok else ()):
        if text not in markers:
            assert not text, f"{name}: decoded a code that is not on this page: {text!r}"
            continue
        expected = project(H, markers[text].rect.corners())
        err = np.linalg.norm(np.asarray(pts, dtype=float) - expected, axis=1).max()
        assert err < tol, f"{name}: {text} found {err:.1f} px from its ground-truth position (tol {tol:.1f})"
        found += 1
    return found


def test_photos_are_12mp_jpegs(normal_run, printouts):
    m = read_manifest(printouts)
    exp = m["experiment_id"]
    names = sorted(p.name for p in normal_run.glob("*.jpg"))
    assert names == [f"{exp}_p01_01.jpg", f"{exp}_p02_01.jpg"]
    assert sorted(p.name for p in normal_run.iterdir()) == names + [GROUND_TRUTH_NAME]  # nothing else, no temp files
    gt = ground_truth(normal_run)
    assert sorted(gt) == names
    for name in names:
        with Image.open(normal_run / name) as im:
            assert im.format == "JPEG"
            assert im.size in SIZES
            assert im.getexif().get(0x0112) == 1
        e = gt[name]
        assert (e["width"], e["height"]) == im.size
        assert e["experiment_id"] == exp and e["difficulty"] == "normal" and e["seed"] == 0
        assert e["page"] == int(name.split("_p")[1][:2]) and e["index"] == 1 and e["exif_orientation"] == 1
        H = np.array(e["homography"])
        assert H.shape == (3, 3) and H[2, 2] == 1
        assert set(e["params"]) == {"print", "scene", "camera"}


def test_deterministic_per_seed_and_merges_ground_truth(normal_run, printouts, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / GROUND_TRUTH_NAME).write_text(json.dumps({"other.jpg": {"page": 9}}))
    first = {p.name: p.read_bytes() for p in normal_run.glob("*.jpg")}
    simulate_photos(printouts, out, seed=0)
    assert {p.name: p.read_bytes() for p in out.glob("*.jpg")} == first
    gt0 = ground_truth(out)
    assert {k: v for k, v in gt0.items() if k != "other.jpg"} == ground_truth(normal_run)
    simulate_photos(printouts, out, seed=1)
    again = {p.name: p.read_bytes() for p in out.glob("*.jpg")}
    assert again.keys() == first.keys()
    assert all(again[k] != first[k] for k in first)
    gt1 = ground_truth(out)
    assert gt1.keys() == gt0.keys() and gt1["other.jpg"] == {"page": 9}   # merged, not overwritten
    assert all(gt1[k]["seed"] == 1 and gt1[k]["homography"] != gt0[k]["homography"] for k in first)


def test_normal_ground_truth_matches_decoded_qr_codes(normal_run, printouts):
    pages = {p.number: p for p in manifest_pages(read_manifest(printouts))}
    for name, entry in ground_truth(normal_run).items():
        assert qr_check(normal_run, name, entry, pages) >= 3, f"{name}: fewer than 3 QR codes decode"


def test_easy_slots_look_like_their_digital_images(easy_run, printouts):
    out, output = easy_run
    assert "ground-truth.json" in output and "physical ingest" in output
    m = read_manifest(printouts)
    pages = {p.number: p for p in manifest_pages(m)}
    files = {(r["id"], v["name"]): printouts / v["file"] for r in m["images"] for v in r["variants"]}
    for name, entry in ground_truth(out).items():
        assert entry["difficulty"] == "easy"
        assert qr_check(out, name, entry, pages) == 4
        photo = cv2.cvtColor(displayed(out / name), cv2.COLOR_RGB2GRAY)
        H = np.array(entry["homography"])
        for slot in pages[entry["page"]].slots:
            r = slot.rect
            n = 128   # sample the slot at 128 x 128 (pixel centres), then average down to 32 x 32
            to_mm = np.array([[r.w / n, 0, r.x + r.w / (2 * n)], [0, r.h / n, r.y + r.h / (2 * n)], [0, 0, 1]])
            crop = cv2.warpPerspective(photo, H @ to_mm, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            got = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA).astype(float).ravel()
            with Image.open(files[(slot.image_id, slot.variant)]) as im:
                want = np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR), dtype=float).ravel()
            corr = np.corrcoef(got, want)[0, 1]
            assert corr > 0.8, f"{name} slot {slot.index} ({slot.image_id} {slot.variant}): correlation {corr:.2f}"


def test_hard_stores_exif_rotated_pixels_and_truth_is_as_displayed(printouts, tmp_path):
    pages = {p.number: p for p in manifest_pages(read_manifest(printouts))}
    seed = next(s for s in range(100)
                if sample_params("hard", s, 1, 1, pages[1].size_mm)["camera"]["exif_orientation"] in (6, 8))
    out = tmp_path / "photos"
    simulate_photos(printouts, out, seed=seed, difficulty="hard")
    gt = ground_truth(out)
    name = next(k for k, v in gt.items() if v["page"] == 1)
    entry = gt[name]
    assert entry["exif_orientation"] in (6, 8) and entry["difficulty"] == "hard"
    with Image.open(out / name) as im:
        assert im.getexif().get(0x0112) == entry["exif_orientation"]
        assert im.size == (entry["height"], entry["width"])   # stored sideways...
    assert displayed(out / name).shape[:2] == (entry["height"], entry["width"])  # ...displayed as the truth says
    assert qr_check(out, name, entry, pages) >= 1


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_page_always_fully_in_frame(difficulty):
    # Geometry only (no pixels): all four QR codes are always in the photo.
    for seed in range(150):
        p = sample_params(difficulty, seed, 1, 1)
        frame = (3024, 4032) if p["scene"]["portrait"] else (4032, 3024)
        corners = project(page_homography(p["scene"], (210.0, 297.0), frame), [(0, 0), (210, 0), (210, 297), (0, 297)])
        assert (corners >= 0).all() and (corners <= np.array(frame) - 1).all(), (seed, corners)
        if difficulty == "easy":
            assert p["scene"]["rotation_deg"] <= 3 or p["scene"]["rotation_deg"] >= 357


def test_missing_printouts_are_one_line_errors(printouts, tmp_path):
    out = tmp_path / "photos"
    with pytest.raises(PhysicalError, match="make-sheets") as exc:
        simulate_photos(tmp_path / "nowhere", out)
    assert "\n" not in str(exc.value) and "nowhere" in str(exc.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhysicalError, match="manifest.json.*make-sheets"):
        simulate_photos(tmp_path / "empty", out)
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(printouts / "manifest.json", partial / "manifest.json")
    with pytest.raises(PhysicalError, match="sheets.pdf.*make-sheets") as exc:
        simulate_photos(partial, out)
    assert "\n" not in str(exc.value)
    with pytest.raises(PhysicalError, match="--difficulty"):
        simulate_photos(printouts, out, difficulty="extreme")
    with pytest.raises(PhysicalError, match="--per-page"):
        simulate_photos(printouts, out, per_page=0)
    assert not out.exists()


def test_cli_reports_errors_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["simulate-photos", "--printouts", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "error:" in result.output and "make-sheets" in result.output
