"""The chain make-sheets -> simulate-photos -> ingest -> report on the demo, via `physical demo`.

Acceptance of the capture stage: with the virtual camera at normal difficulty,
every page is found, every crop carries the right image and variant, and the
registration error is under 1% of the image width for at least 95% of crops.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from physical.cli import app
from physical.capture.crops import digital_as_cropped
from physical.sheets.manifest import manifest_pages, read_manifest

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "physical-demo"
    result = runner.invoke(app, ["demo", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    assert "captures/" in result.output and "Destruction rate" in result.output
    assert "With 20 pictures each rate rests on a handful of images" in result.output
    assert (folder / "captures" / "report" / "figures.json").is_file()
    return folder


def _rows(demo: Path) -> list[dict]:
    with open(demo / "captures" / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_page_found_and_every_slot_cropped(demo):
    m = read_manifest(demo / "printouts")
    pages = manifest_pages(m)
    truth = json.loads((demo / "photos" / "ground-truth.json").read_text())
    assert len(truth) == len(pages)
    rows = _rows(demo)
    assert {int(r["page"]) for r in rows} == {p.number for p in pages}
    expected = {(p.number, s.image_id, s.variant) for p in pages for s in p.slots}
    assert {(int(r["page"]), r["image_id"], r["variant"]) for r in rows} == expected
    assert len(rows) == len(expected) == 20 * 13
    # Each row names the photo of its own page (ground truth knows which page each photo shows).
    assert all(truth[Path(r["photo"]).name]["page"] == int(r["page"]) for r in rows)


def test_registration_error_under_one_percent(demo):
    """Each crop's corners (index.csv ``quad``, where ingest located the printed image) against the
    exact ground truth (the sheet curls a little and the lens distorts: the camera's ``slots``),
    in fractions of the image width."""
    truth = json.loads((demo / "photos" / "ground-truth.json").read_text())
    errors = []
    for r in _rows(demo):
        photographed = np.array(truth[Path(r["photo"]).name]["slots"][r["slot"]], dtype=float)
        found = np.array([float(v) for v in r["quad"].split()]).reshape(4, 2)
        width = np.mean([np.linalg.norm(photographed[i] - photographed[(i + 1) % 4]) for i in range(4)])
        errors.append(np.linalg.norm(found - photographed, axis=1).max() / width)
    errors = np.array(errors)
    assert len(errors) == 20 * 13
    assert np.quantile(errors, 0.95) < 0.01, np.quantile(errors, [0.5, 0.95, 1.0])
    assert errors.max() < 0.03, np.quantile(errors, [0.5, 0.95, 1.0])


def test_crops_show_the_right_picture_and_align_by_phase_correlation(demo):
    rows = _rows(demo)
    cap = demo / "captures"

    def grey(path: Path, as_cropped: bool = False) -> np.ndarray:
        g = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        g = digital_as_cropped(g) if as_cropped else g
        return (g - g.mean()) / (g.std() + 1e-6)

    clean = {r["image_id"]: grey(cap / r["digital"], True) for r in rows if r["variant"] == "clean"}
    shifts, right = [], 0
    for r in rows:
        crop = grey(cap / r["crop"])
        own = grey(cap / r["digital"], True)  # crops are inset: compare like with like
        # The crop resembles its own picture more than any other picture.
        scores = {i: float((crop * c).mean()) for i, c in clean.items()}
        right += max(scores, key=scores.get) == r["image_id"]
        (dx, dy), _ = cv2.phaseCorrelate(own.astype(np.float64), crop.astype(np.float64))
        shifts.append(np.hypot(dx, dy) / own.shape[1])
    assert right == len(rows)
    assert np.quantile(shifts, 0.95) < 0.01, np.quantile(shifts, [0.5, 0.95])


def test_demo_refuses_a_used_folder_and_replaces_with_force(demo, tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(demo)])
    assert result.exit_code != 0 and "--force" in result.stderr
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    result = runner.invoke(app, ["demo", "--out", str(other), "--force"])
    assert result.exit_code != 0 and "not a physical demo" in result.stderr
    assert (other / "thesis.tex").read_text() == "precious"


def test_an_experiment_on_demo_adv_is_reported_for_demo_and_demo_distilled_too(tmp_path):
    # The trained defenses end to end: attacked on demo-adv, photographed by the virtual camera, and each of the
    # three models' robust accuracy reported (digital beside photo and simulated) on the same crops.
    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    p, ph, c = (str(tmp_path / d) for d in ("printouts", "photos", "captures"))
    run("make-sheets", "--model", "demo-adv", "--methods", "fast", "--eps", "8", "--count", "4", "--out", p)
    run("simulate-photos", "--printouts", p, "--out", ph)
    run("ingest", ph, "--printouts", p, "--out", c)
    out = run("report", "--captures", c, "--printouts", p, "--model", "demo", "--model", "demo-distilled",
              "--no-artificial")
    titles = re.findall(r"Robust accuracy: top-1 % with 95% interval, average case \((\S+)\)", " ".join(out.split()))
    assert titles == ["demo-adv", "demo", "demo-distilled"]
    with open(tmp_path / "captures" / "report" / "robust.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for model in ("demo-adv", "demo", "demo-distilled"):
        mine = {(r["attack"], r["source"]): int(r["n"]) for r in rows if r["model"] == model}
        assert mine == {(a, s): 4 for a in ("clean", "fast_e8") for s in ("digital", "photo", "simulated:typical")}
