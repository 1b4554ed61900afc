"""Ingest against the virtual camera at every difficulty, measured with the camera's exact ground truth.

The camera (``physical simulate-photos``) curls and waves the sheet, distorts
it through the lens, covers corner codes with a finger or a pen, shoots from
far enough that QR modules are 3 px, and cuts page corners with the frame; on
bent paper there is no page homography, so every crop's corners are compared
with the exact photo positions of its slot (:mod:`physical.capture.truth`).
What ingest may never do, at any difficulty: write a crop of the wrong page,
image or variant, or one more than 5 % of the image width off.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from physical.capture import camera, truth
from physical.capture.camera.pipeline import _PageRenderer
from physical.capture.run import ingest
from physical.sheets.manifest import manifest_pages, read_manifest
from physical.sheets.run import make_sheets

from test_ingest import FORMAT1

PHOTOS_PER_PAGE = {"normal": 4, "hard": 5, "extreme": 4}


# The experiment id is printed in every code, so it shapes the codes' module patterns and what a
# decoder can read in a blurred photo: pinned, so that every run photographs the same sheets.
EXPERIMENT_ID = "5eed0003"


@pytest.fixture(scope="module")
def printouts(tmp_path_factory):
    """4 pictures x 13 variants: two A4 pages of 26 images, with registration marks."""
    root = tmp_path_factory.mktemp("camera-ingest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("physical.sheets.run.new_experiment_id", lambda: EXPERIMENT_ID)
        make_sheets(root / "printouts", count=4, seed=3)
    assert read_manifest(root / "printouts")["experiment_id"] == EXPERIMENT_ID
    return root / "printouts"


@pytest.fixture(scope="module")
def scored(printouts, tmp_path_factory):
    """Each difficulty photographed, ingested and scored once for the tests below."""
    out = {}
    for difficulty, n in PHOTOS_PER_PAGE.items():
        root = tmp_path_factory.mktemp(difficulty)
        camera.simulate_photos(printouts, root / "photos", per_page=n, seed=11, difficulty=difficulty)
        result = ingest(root / "photos", printouts=printouts, out=root / "captures")
        out[difficulty] = (result, truth.score(printouts, root / "photos", root / "captures"))
    return out


@pytest.mark.parametrize("difficulty", list(PHOTOS_PER_PAGE))
def test_no_crop_is_ever_wrong_or_more_than_5_percent_off(scored, difficulty):
    result, s = scored[difficulty]
    assert s.wrong == []
    assert s.crops > 0
    assert s.over(5) == 0, (s.summary(), s.worst)
    # Every image not written is accounted for, with a reason.
    assert all(d["reason"] for d in result.dropped)


def test_normal_photos_every_page_found_p95_under_1_percent(scored):
    result, s = scored["normal"]
    assert s.pages_found == s.photos == 2 * PHOTOS_PER_PAGE["normal"], s.summary()
    assert s.percentile(95) <= 1.0 and s.max_pct <= 3.0, s.summary()
    assert s.crops + s.dropped == s.photos * 26
    assert s.dropped <= 0.02 * s.photos * 26, result.dropped_reasons()


def test_hard_photos_95_percent_of_pages_p95_under_2_percent(scored):
    _, s = scored["hard"]
    assert s.pages_found >= 0.95 * s.pages_recoverable, s.summary()
    assert s.percentile(95) <= 2.0, s.summary()


def test_extreme_photos_what_cannot_be_verified_is_dropped_with_its_reason(scored):
    result, s = scored["extreme"]
    assert s.over(5) == 0 and s.wrong == []
    reasons = dict(result.dropped_reasons())
    assert sum(reasons.values()) == len(result.dropped) > 0
    assert all(r for r in reasons)
    # Photos ingested keep theirs in ingest.json; a photo of which nothing could be verified is
    # skipped, and says why.
    state = json.loads((result.out / "ingest.json").read_text())
    assert sum(len(p["dropped"]) for p in state["photos"]) == s.dropped == sum(len(o.dropped) for o in result.ingested)
    assert all(o.reason for o in result.skipped)


def _cover(jpeg: bytes, quads: list[np.ndarray]) -> bytes:
    """Stick a note over parts of a photo (over a corner code and its quiet zone)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    for q in quads:
        c = q.mean(axis=0)
        grown = c + 1.5 * (q - c)           # the code and its quiet zone
        cv2.fillConvexPoly(img, np.round(grown).astype(np.int32), (150, 210, 235))   # a yellow note (BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return buf.tobytes()


@pytest.mark.parametrize("fmt", ["format 2 (marks)", "format 1 (corner codes only)"])
def test_curled_page_with_two_codes_on_one_edge_writes_nothing_wrong(printouts, tmp_path, fmt):
    """The case that broke the page homography: a sheet curled 20 mm at its far edge, only the two
    codes of the near edge readable. Nothing wrong may be written."""
    folder = printouts if fmt.startswith("format 2") else FORMAT1
    manifest = read_manifest(folder)
    page = manifest_pages(manifest)[0]
    params = camera.sample_params("normal", 5, page.number, 1, page.size_mm)
    params["scene"]["tilt_deg"] = 15.0
    params["scene"]["occluder"] = None
    params["camera"]["exif_orientation"] = 1
    # The bottom edge (page y = 297) lifts 20 mm over its last 110 mm.
    params["scene"]["curl"] = {"direction_deg": 90.0, "lift_mm": 20.0, "length_mm": 110.0,
                               "lift2_mm": 0.0, "length2_mm": 0.0}
    renderer = _PageRenderer(folder / "sheets.pdf", manifest_pages(manifest))
    try:
        data, _, _ = camera.make_photo(renderer, page, 0, params)
    finally:
        renderer.close()
    gt = camera.photo_truth(params, page)
    photos = tmp_path / "photos"
    photos.mkdir()
    name = f"{manifest['experiment_id']}_p01_01.jpg"
    (photos / name).write_bytes(_cover(data, [np.array(gt["markers"][c]) for c in ("BL", "BR")]))
    (photos / camera.GROUND_TRUTH_NAME).write_text(json.dumps({name: {**gt, "page": page.number,
                                                                          "params": params}}))
    out = tmp_path / "captures"
    result = ingest(photos, printouts=folder, out=out)
    (o,) = result.outcomes
    if fmt.startswith("format 2"):
        # The marks register the whole page: the photo is ingested and the near half at least is kept.
        assert o.status == "ingested", o.reason
    if o.status != "ingested":
        # Format 1 may skip the photo (two codes on one edge do not fix the page), but then it says
        # why and writes no crop at all: nothing written is never wrong.
        assert o.status == "skipped" and o.reason, o
        assert o.crops == 0 and not list(out.glob("crops/**/*.png")), sorted(out.glob("crops/**/*.png"))
        return
    s = truth.score(folder, photos, out)
    assert s.wrong == [] and s.over(5) == 0, (s.summary(), s.worst)
    if fmt.startswith("format 2"):
        assert s.crops >= len(page.slots) // 2, result.dropped_reasons()


def test_codes_opencv_cannot_read_and_marks_too_blurred_to_decode(printouts, tmp_path):
    """A hard photo (3-4 px modules, 7 px motion blur) in which OpenCV reads no corner code and its
    ArUco detector reads no mark: ZXing reads a code on an enlarged copy, the marks are found by
    their known pattern outwards from it, and the page registers with nothing wrong written."""
    from physical.capture.codes import Decoders, classify_codes, detect_quads, qr_modules, read_code
    from physical.capture.marks import find_marks

    manifest = read_manifest(printouts)
    pages = manifest_pages(manifest)
    page = pages[1]
    params = camera.sample_params("hard", 1, page.number, 8, page.size_mm)
    renderer = _PageRenderer(printouts / "sheets.pdf", pages)
    try:
        data, _, _ = camera.make_photo(renderer, page, 1, params)
    finally:
        renderer.close()
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    # What makes this photo the case under test: OpenCV alone reads no code of the page at any
    # scale, and the mark detector reads fewer than two marks.
    dec = Decoders()
    sizes = sorted({qr_modules(p.markers[0].payload).shape[0] for p in pages})
    opencv = [read_code(gray, q, sizes, dec) for side in (1600, 2600, max(gray.shape))
              for q in detect_quads(gray, side, dec)]
    assert classify_codes(opencv, manifest["experiment_id"], len(pages)) == {}
    assert len(find_marks(gray, {m.id for m in page.marks})) < 2

    photos = tmp_path / "photos"
    photos.mkdir()
    name = f"{manifest['experiment_id']}_p02_08.jpg"
    (photos / name).write_bytes(data)
    gt = camera.photo_truth(params, page)
    (photos / camera.GROUND_TRUTH_NAME).write_text(json.dumps({name: {**gt, "page": page.number, "params": params}}))
    result = ingest(photos, printouts=printouts, out=tmp_path / "captures")
    (o,) = result.outcomes
    assert o.status == "ingested", o.reason
    s = truth.score(printouts, photos, tmp_path / "captures")
    assert s.wrong == [] and s.over(5) == 0, (s.summary(), s.worst)
    assert s.crops >= 20, result.dropped_reasons()
    assert s.percentile(95) <= 2.0, s.summary()
