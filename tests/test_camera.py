"""`physical simulate-photos`: synthetic phone photos and their ground truth.

The ground truth is checked against what OpenCV itself finds in the photos
(QR codes where the ground truth says they are), against the digital
images (each printed slot looks like its PNG), and against the renderer
itself: a synthetic page of dots must show every dot where the exact forward
model (``page_to_photo``) says. The geometry (curl, wave, distortion) is
checked against first principles: the sheet does not stretch, the lens is
OpenCV's model, a flat sheet through an ideal lens is the homography.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from physical.capture import camera
from physical.capture.camera import (
    DIFFICULTIES,
    GROUND_TRUTH_NAME,
    PhotoGeometry,
    page_homography,
    page_to_photo,
    photo_truth,
    project,
    sample_params,
    simulate_photos,
)
from physical.capture.camera.geometry import _outline
from physical.capture.camera.pipeline import _PageRenderer
from physical.capture.camera.scene import _PhotoGrid
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
    """Decode the photo's QR codes; assert each of ours sits where the ground truth says. Returns the count."""
    img = cv2.cvtColor(displayed(folder / name), cv2.COLOR_RGB2GRAY)
    assert (img.shape[1], img.shape[0]) == (entry["width"], entry["height"])
    ok, texts, points, _ = cv2.QRCodeDetectorAruco().detectAndDecodeMulti(img)
    tol = 0.005 * float(np.hypot(*img.shape))
    markers = {m.payload: m for m in pages[entry["page"]].markers}
    found = 0
    for text, pts in zip(texts if ok else (), points if ok else ()):
        if text not in markers:
            assert not text, f"{name}: decoded a code that is not on this page: {text!r}"
            continue
        # The exact quad (curl and lens included), and the same through page_to_photo.
        expected = np.array(entry["markers"][markers[text].corner])
        size = pages[entry["page"]].size_mm
        assert np.allclose(page_to_photo(entry, size, markers[text].rect.corners()), expected, atol=1e-6)
        err = np.linalg.norm(np.asarray(pts, dtype=float) - expected, axis=1).max()
        assert err < tol, f"{name}: {text} found {err:.1f} px from its ground-truth position (tol {tol:.1f})"
        found += 1
    return found


def test_photos_are_12mp_jpegs(normal_run, printouts):
    m = read_manifest(printouts)
    pages = {p.number: p for p in manifest_pages(m)}
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
        page = pages[e["page"]]
        assert set(e["slots"]) == {str(s.index) for s in page.slots}
        assert set(e["markers"]) == {"TL", "TR", "BR", "BL"}
        assert all(np.array(q).shape == (4, 2) for q in [*e["slots"].values(), *e["markers"].values()])
        # normal: no occluder, the whole page in the frame
        assert e["occluded"] == [] and e["occluded_slots"] == [] and e["cut"] == []
        assert e["params"]["scene"]["occluder"] is None and e["params"]["scene"]["cut"] is None
        for key in ("curl", "wave"):
            assert key in e["params"]["scene"]
        assert set(e["params"]["camera"]["distortion"]) == {"k1", "k2", "p1", "p2"}


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
    assert "ground-truth.json" in output
    # The suggested command stays on one line (not hard-wrapped at 80 columns), so it can be copied.
    assert f"next: run `physical ingest {out}/`" in output
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
    # A photo stored sideways whose codes are as large as hard's before it also had small codes (fill >= 0.65):
    # this test is about the orientation, not about how small a code OpenCV can read.
    seed = next(s for s in range(100)
                if sample_params("hard", s, 1, 1, pages[1].size_mm)["camera"]["exif_orientation"] in (6, 8)
                and sample_params("hard", s, 1, 1, pages[1].size_mm)["scene"]["fill"] >= 0.65)
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
    # Geometry only (no pixels): all four QR codes are always in the photo,
    # except where a cut corner was drawn (hard sometimes, extreme often).
    edge = _outline((210.0, 297.0), 1.0)
    cuts = 0
    for seed in range(150):
        p = sample_params(difficulty, seed, 1, 1)
        frame = (3024, 4032) if p["scene"]["portrait"] else (4032, 3024)
        outline = page_to_photo(p, (210.0, 297.0), edge)
        inside = (outline >= 0).all() and (outline <= np.array(frame) - 1).all()
        if p["scene"]["cut"] is None:
            assert inside, (seed, outline.min(axis=0), outline.max(axis=0))
        else:
            cuts += 1
            assert not inside
            corner = p["scene"]["cut"]["corner"]
            xy = {"TL": (0, 0), "TR": (210, 0), "BR": (210, 297), "BL": (0, 297)}[corner]
            uv = page_to_photo(p, (210.0, 297.0), [xy])[0]
            assert not ((uv >= -0.5).all() and (uv <= np.array(frame) - 0.5).all()), (seed, corner, uv)
        if difficulty == "easy":
            assert p["scene"]["rotation_deg"] <= 3 or p["scene"]["rotation_deg"] >= 357
            corners = project(page_homography(p["scene"], (210.0, 297.0), frame),
                              [(0, 0), (210, 0), (210, 297), (0, 297)])
            assert np.allclose(page_to_photo(p, (210.0, 297.0), [(0, 0), (210, 0), (210, 297), (0, 297)]), corners,
                               rtol=0, atol=1e-9)
    assert cuts == 0 if difficulty in ("easy", "normal") else cuts > 0


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
    with pytest.raises(PhysicalError, match="--difficulty.*extreme"):
        simulate_photos(printouts, out, difficulty="impossible")
    with pytest.raises(PhysicalError, match="--per-page"):
        simulate_photos(printouts, out, per_page=0)
    assert not out.exists()


def test_cli_reports_errors_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["simulate-photos", "--printouts", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "error:" in result.output and "make-sheets" in result.output


def test_cli_errors_name_a_folder_with_brackets_as_it_is(tmp_path):
    # Brackets are text, not terminal markup: "[draft]" must not vanish from the message.
    result = CliRunner().invoke(app, ["simulate-photos", "--printouts", str(tmp_path / "run[draft]")])
    assert result.exit_code == 2
    assert "run[draft]" in result.output


# ---------------------------------------------------------------- the phones

def test_a_phone_draws_after_the_plain_camera_and_replaces_only_what_it_says():
    """The hdr phone's photos differ from the plain ones only in its light, white balance, paper, HDR
    and lens: every other draw (and so every plain photo of before) is unchanged."""
    for seed, page, k in ((0, 1, 1), (3, 2, 2), (7, 5, 1)):
        plain = sample_params("normal", seed, page, k, A4)
        assert plain == sample_params("normal", seed, page, k, A4, phone="plain") and "phone" not in plain["camera"]
        hdr = sample_params("normal", seed, page, k, A4, phone="hdr")
        replaced = {"print": {"paper", "paper_white", "paper_tint"},
                    "camera": {"phone", "illuminant", "white_balance", "colour_gradient", "colour_gradient_deg",
                               "hdr", "barrel", "distortion"},
                    "scene": {"fill", "shift_px"}}       # the framing follows the barrel lens
        for group, keys in replaced.items():
            assert {key: v for key, v in hdr[group].items() if key not in keys} == \
                   {key: v for key, v in plain[group].items() if key not in keys}, group
        assert hdr["camera"]["distortion"]["k1"] == -hdr["camera"]["barrel"] < 0     # barrel
        assert {k_: v for k_, v in hdr["camera"]["distortion"].items() if k_ != "k1"} == \
               {k_: v for k_, v in plain["camera"]["distortion"].items() if k_ != "k1"}
    with pytest.raises(PhysicalError, match="--phone ipad: choose one of plain, hdr"):
        sample_params("normal", 0, 1, 1, A4, phone="ipad")


def test_hdr_phone_white_balance_spans_tungsten_to_daylight():
    cams = [sample_params("normal", seed, 1, 1, A4, phone="hdr")["camera"] for seed in range(200)]
    for cam in cams:
        assert max(cam["white_balance"]) == 1.0          # exposed for the brightest channel
    ratio = {light: [c["white_balance"][0] / c["white_balance"][2] for c in cams if c["illuminant"] == light]
             for light in ("daylight", "tungsten", "mixed")}
    assert min(ratio["tungsten"]) > 1.3 and max(ratio["tungsten"]) > 1.95     # up to 2x apart
    assert 0.84 < min(ratio["daylight"]) and max(ratio["daylight"]) < 1.18
    assert all(c["colour_gradient"] > 0 for c in cams if c["illuminant"] == "mixed")
    assert all(c["colour_gradient"] == 0 for c in cams if c["illuminant"] != "mixed")
    papers = [sample_params("normal", seed, 1, 1, A4, phone="hdr")["print"] for seed in range(60)]
    assert {p["paper"] for p in papers} == {"office", "recycled", "bright"}
    assert min(p["paper_white"] for p in papers) < 0.84 and max(p["paper_white"] for p in papers) > 0.96


def test_local_tone_map_lifts_dark_regions_and_keeps_the_brightest():
    from physical.capture.camera import local_tone_map

    cam = {"hdr": {"compression": 0.5, "detail": 1.0, "sigma": 0.02}}
    flat = np.full((300, 400, 3), 120, np.uint8)
    assert np.array_equal(local_tone_map(flat, cam), flat)            # nothing to compress
    assert local_tone_map(flat, {}) is flat                           # the plain phone has none
    img = np.full((300, 400, 3), 200, np.uint8)
    img[:, :200] = 50                                                  # a dark half, a bright half
    out = local_tone_map(img, cam).astype(float)
    dark, bright = out[100:200, 20:120].mean(), out[100:200, 280:380].mean()
    # Far from the edge each half's base is its own level: compressed by half on the log scale, the
    # 4x between them becomes 2x (the dark half lifted, the bright one tamed) ...
    assert bright / dark == pytest.approx(2.0, rel=0.05) and dark > 50 and bright < 200
    # ... then the frame is scaled so that its brightest 1 % keeps its level: the bright pixels by the
    # edge, whose surroundings are darker (the halo of local tone mapping); the scale is found at a
    # quarter of the resolution, so to within a few levels.
    assert np.percentile(out[..., 1], 99) == pytest.approx(200, rel=0.05)
    assert out[..., 0].tolist() == out[..., 2].tolist()                # the same gain in every channel


# ---------------------------------------------------------------- the exact geometry

A4 = (210.0, 297.0)


def _params(difficulty: str, seed: int, **scene) -> dict:
    p = sample_params(difficulty, seed, 1, 1, A4)
    p["scene"].update(scene)
    return p


def test_flat_sheet_through_ideal_lens_is_the_homography():
    """With curl, wave and distortion zero, page_to_photo is the homography (and easy is always flat)."""
    rng = np.random.default_rng(0)
    pts = rng.uniform([-20, -20], [230, 317], (500, 2))
    for difficulty in DIFFICULTIES:
        for seed in range(5):
            p = sample_params(difficulty, seed, 1, 1, A4)
            if difficulty == "easy":
                assert camera.curl_profile(p["scene"], A4) is None
                assert not any(p["camera"]["distortion"].values())
            p["scene"]["curl"] = {**p["scene"]["curl"], "lift_mm": 0.0, "lift2_mm": 0.0}
            p["scene"]["wave"] = {**p["scene"]["wave"], "amplitude_mm": 0.0}
            p["camera"]["distortion"] = {"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
            H = page_homography(p["scene"], A4, camera.photo_frame(p["scene"]))
            assert np.allclose(page_to_photo(p, A4, pts), project(H, pts), rtol=0, atol=1e-9)
            # ...and curl alone changes it: the model is not the homography in disguise
            p["scene"]["curl"]["lift_mm"] = 5.0
            assert np.abs(page_to_photo(p, A4, pts) - project(H, pts)).max() > 1.0


def test_curl_is_developable_the_sheet_does_not_stretch():
    """Distances along the bend on the page equal 3-D distances along the curled sheet; lines across stay straight."""
    for seed in range(6):
        p = _params("extreme", seed)
        curl = p["scene"]["curl"]
        assert 12 <= curl["lift_mm"] <= 20 and p["scene"]["wave"]["amplitude_mm"] >= 1
        geo = PhotoGeometry(p, A4)
        dx, dy = geo.profile.d
        # A line along the bend direction from the corner that lifts most, 0.05 mm steps, clipped to the page.
        corners = np.array([(0, 0), (210, 0), (210, 297), (0, 297)], dtype=float)
        far = corners[np.argmax(corners @ np.array([dx, dy]))]
        t = np.arange(-400, 0.001, 0.05)
        x, y = far[0] + t * dx, far[1] + t * dy
        on = (x >= -1e-9) & (x <= 210 + 1e-9) & (y >= -1e-9) & (y <= 297 + 1e-9)
        x, y, t = x[on], y[on], t[on]
        assert t[-1] - t[0] > 200
        X, Y, Z = geo.sheet(x, y)
        arc = np.hypot(np.hypot(np.diff(X), np.diff(Y)), np.diff(Z)).sum()
        assert arc == pytest.approx(t[-1] - t[0], abs=2e-3), seed
        assert Z.max() - Z.min() > 10   # it really is curled
        # ...while its footprint on the table is shorter: the sheet bends, it does not stretch or slide
        assert np.hypot(X[-1] - X[0], Y[-1] - Y[0]) < t[-1] - t[0] - 0.5
        # the far end lifts by the sampled amount (plus the wave, 0..amplitude)
        ends = geo.sheet(np.array([0.0, 210, 210, 0]), np.array([0.0, 0, 297, 297]))[2]
        assert curl["lift_mm"] - 1e-6 <= ends.max() <= curl["lift_mm"] + p["scene"]["wave"]["amplitude_mm"] + 1e-6
        # a line across the bend (along the axis) is a straight segment of the same length at one height
        s = np.linspace(-40, 40, 9)
        X, Y, Z = geo.sheet(150 + s * -dy, 200 + s * dx)
        assert np.ptp(Z) < 1e-9
        assert np.hypot(X[-1] - X[0], Y[-1] - Y[0]) == pytest.approx(80, abs=1e-9)


def test_distortion_is_opencvs_model():
    rng = np.random.default_rng(1)
    frame = (4032, 3024)
    d = {"k1": -0.07, "k2": 0.04, "p1": 0.0015, "p2": -0.002}
    uv = rng.uniform([0, 0], frame, (200, 2))
    f = camera.FOCAL_FRACTION * 4032
    K = np.array([[f, 0, (frame[0] - 1) / 2], [0, f, (frame[1] - 1) / 2], [0, 0, 1]])
    rays = np.column_stack([(uv - K[:2, 2]) / f, np.ones(len(uv))])
    want, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, np.array([d["k1"], d["k2"], d["p1"], d["p2"], 0.0]))
    got = np.column_stack(camera.distort(uv[:, 0], uv[:, 1], d, frame))
    assert np.allclose(got, want.reshape(-1, 2), atol=1e-6)
    back = np.column_stack(camera.undistort(got[:, 0], got[:, 1], d, frame))
    assert np.allclose(back, uv, atol=1e-3)


class _DotRenderer:
    """Stands in for the PDF renderer: a white page with black Gaussian dots at known page mm."""

    def __init__(self, dots_mm: np.ndarray, sigma_mm: float = 0.5):
        self.dots, self.sigma = dots_mm, sigma_mm

    def printed(self, page, index, px_per_mm, printing):
        w, h = page.size_mm
        W, H = round(w * px_per_mm), round(h * px_per_mm)
        img = np.ones((H, W), np.float32)
        s = self.sigma * px_per_mm
        n = int(4 * s) + 1
        for x, y in self.dots:
            u, v = x * px_per_mm - 0.5, y * px_per_mm - 0.5
            i0, j0 = int(v) - n, int(u) - n
            yy, xx = np.mgrid[i0:i0 + 2 * n + 1, j0:j0 + 2 * n + 1]
            img[i0:i0 + 2 * n + 1, j0:j0 + 2 * n + 1] -= np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * s * s))
        rgb = np.repeat((np.clip(img, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        return rgb, W / w, H / h


def _centroids(grey: np.ndarray, expected: np.ndarray, radius: int) -> np.ndarray:
    out = []
    for u, v in expected:
        i, j = round(v), round(u)
        win = 255.0 - grey[i - radius:i + radius + 1, j - radius:j + radius + 1].astype(float)
        win -= np.median(win)   # the page's own level
        win = np.clip(win, 0, None)
        yy, xx = np.mgrid[i - radius:i + radius + 1, j - radius:j + radius + 1]
        out.append(((xx * win).sum() / win.sum(), (yy * win).sum() / win.sum()))
    return np.array(out)


def _dots_page(printouts: Path):
    page = manifest_pages(read_manifest(printouts))[0]
    xs, ys = np.meshgrid(np.linspace(8, page.size_mm[0] - 8, 9), np.linspace(8, page.size_mm[1] - 8, 12))
    return page, np.column_stack([xs.ravel(), ys.ravel()])


@pytest.mark.parametrize("difficulty,seed", [("normal", 3), ("hard", 2), ("extreme", 0)])
def test_rendering_agrees_with_the_forward_model(printouts, difficulty, seed):
    """Dots drawn on the page appear in the photo where page_to_photo puts them (before the camera's blur and noise)."""
    page, dots = _dots_page(printouts)
    p = sample_params(difficulty, seed, page.number, 1, page.size_mm)
    p["scene"]["occluder"] = None
    geo = PhotoGeometry(p, page.size_mm)
    assert geo.profile is not None and geo.distorted
    printed, sx, sy = _DotRenderer(dots).printed(page, 0, 10.0, None)
    grid = _PhotoGrid(geo)
    W, H = geo.frame
    img, (mx, my, _, _) = camera.compose_scene(printed, grid, sx, sy, np.zeros((H, W, 3), np.uint8))
    # the full-resolution maps invert the forward model at every pixel, not only at the grid's nodes
    rng = np.random.default_rng(seed)
    ij = rng.integers([0, 0], [H, W], (2000, 2))
    x, y = (mx[ij[:, 0], ij[:, 1]] + 0.5) / sx, (my[ij[:, 0], ij[:, 1]] + 0.5) / sy
    on = (x > 0) & (x < page.size_mm[0]) & (y > 0) & (y < page.size_mm[1])
    assert on.sum() > 100
    back = page_to_photo(p, page.size_mm, np.column_stack([x[on], y[on]]))
    assert np.abs(back - ij[on][:, ::-1]).max() < 0.05
    # the dots
    expected = page_to_photo(p, page.size_mm, dots)
    inside = ((expected > 20) & (expected < np.array([W, H]) - 20)).all(axis=1)
    assert inside.sum() >= 0.8 * len(dots)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    radius = max(4, round(2.5 * 0.5 * geo.max_scale()))
    err = np.linalg.norm(_centroids(grey, expected[inside], radius) - expected[inside], axis=1)
    assert err.max() < 0.15, (difficulty, np.quantile(err, [0.5, 1.0]))
    # the flat homography would put them elsewhere: curl and lens matter
    flat = project(geo.H, dots)[inside]
    assert np.linalg.norm(flat - expected[inside], axis=1).max() > 2


def test_whole_photo_agrees_with_the_forward_model(printouts):
    """The same through make_photo: light, blur, noise, sharpening, JPEG and the EXIF rotation."""
    page, dots = _dots_page(printouts)
    seed = next(s for s in range(50)
                if sample_params("extreme", s, page.number, 1, page.size_mm)["camera"]["exif_orientation"] != 1)
    p = sample_params("extreme", seed, page.number, 1, page.size_mm)
    p["scene"]["occluder"] = None
    p["scene"]["shadow"] = False
    data, Hm, (W, H) = camera.make_photo(_DotRenderer(dots), page, 0, p)
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get(0x0112) == p["camera"]["exif_orientation"] != 1
        grey = np.asarray(ImageOps.exif_transpose(im).convert("L"))
    assert grey.shape == (H, W)
    expected = page_to_photo(p, page.size_mm, dots)
    inside = ((expected > 20) & (expected < np.array([W, H]) - 20)).all(axis=1)
    radius = max(5, round(2.5 * 0.5 * PhotoGeometry(p, page.size_mm).max_scale()) + 2)
    err = np.linalg.norm(_centroids(grey, expected[inside], radius) - expected[inside], axis=1)
    assert np.median(err) < 0.3 and err.max() < 0.8, np.quantile(err, [0.5, 1.0])


def test_extreme_ground_truth_has_occlusion_small_codes_and_a_cut(printouts):
    """Some extreme photo has an occluded code, ~3-4 px modules and a cut corner, and the truth says so exactly."""
    page = manifest_pages(read_manifest(printouts))[0]
    found = None
    counts = {"occluded": 0, "small": 0, "cut": 0}
    for seed in range(40):
        p = sample_params("extreme", seed, page.number, 1, page.size_mm)
        t = photo_truth(p, page)
        occluded, small, cut = bool(t["occluded"]), min(t["module_px"].values()) < 4.0, bool(t["cut"])
        counts["occluded"] += occluded
        counts["small"] += small
        counts["cut"] += cut
        assert min(t["module_px"].values()) > 2.7      # ~3 px modules at the smallest
        assert t["occluded_slots"] == []               # the occluder stays on the corner
        if occluded:
            assert t["occluded"] == [p["scene"]["occluder"]["corner"]]
        if occluded and small and cut and found is None:
            found = (seed, p, t)
    assert all(n >= 10 for n in counts.values()), counts
    assert found is not None
    seed, p, t = found
    W, H = camera.photo_frame(p["scene"])
    for key in t["cut"]:
        quad = np.array(t["markers"][key] if key in t["markers"] else t["slots"][key])
        if key in t["markers"]:
            rect = next(m.rect for m in page.markers if m.corner == key)
        else:
            rect = page.slots[int(key)].rect
        edge = page_to_photo(p, page.size_mm, _outline((rect.w, rect.h), 0.5) + [rect.x, rect.y])
        assert ((edge < -0.5) | (edge > np.array([W, H]) - 0.5)).any(), key
        assert np.allclose(quad, page_to_photo(p, page.size_mm, rect.corners()))


def test_extreme_photos_deterministic_with_occluder_drawn(printouts, tmp_path):
    """extreme through simulate_photos: same seed, same bytes; the finger is drawn where the truth puts it."""
    page = manifest_pages(read_manifest(printouts))[0]

    def finger_point(p):   # a point on the finger, 4 mm back from its tip, in the photo
        occ = p["scene"]["occluder"]
        if not occ or occ["kind"] != "finger":
            return None
        a = np.radians(occ["direction_deg"])
        uv = page_to_photo(p, page.size_mm, [np.array(occ["tip"]) - 4 * np.array([np.cos(a), np.sin(a)])])[0]
        inside = ((uv > 50) & (uv < np.array(camera.photo_frame(p["scene"])) - 50)).all()
        return uv if inside else None

    seed = next(s for s in range(40)
                if finger_point(sample_params("extreme", s, page.number, 1, page.size_mm)) is not None)
    first = simulate_photos(printouts, tmp_path / "a", seed=seed, difficulty="extreme")
    again = simulate_photos(printouts, tmp_path / "b", seed=seed, difficulty="extreme")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    gt = ground_truth(tmp_path / "a")
    assert gt == ground_truth(tmp_path / "b")
    entry = gt[first[0].name]
    assert entry["difficulty"] == "extreme" and entry["params"]["scene"]["occluder"]["kind"] == "finger"
    assert entry["occluded"] == [entry["params"]["scene"]["occluder"]["corner"]]
    # The same photo without the occluder (and its shadow): at the finger, skin (red/blue 1.15-2.3) replaced it.
    bare = json.loads(json.dumps(entry["params"]))
    bare["scene"]["occluder"] = None
    renderer = _PageRenderer(printouts / "sheets.pdf", manifest_pages(read_manifest(printouts)))
    try:
        data, _, _ = camera.make_photo(renderer, page, 0, bare)
    finally:
        renderer.close()
    with Image.open(io.BytesIO(data)) as im:
        without = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    u, v = (round(c) for c in finger_point(entry["params"]))
    r1, _, b1 = displayed(first[0])[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).astype(float).mean(axis=0)
    r0, _, b0 = without[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3).astype(float).mean(axis=0)
    assert r1 / max(b1, 1) > 1.1 * r0 / max(b0, 1), ((r1, b1), (r0, b0))


def test_cli_accepts_extreme(tmp_path):
    result = CliRunner().invoke(app, ["simulate-photos", "--help"])
    assert "extreme" in result.output
    result = CliRunner().invoke(app, ["simulate-photos", "--printouts", str(tmp_path / "nowhere"),
                                      "--difficulty", "nonsense"])
    assert result.exit_code == 2 and "extreme" in result.output
