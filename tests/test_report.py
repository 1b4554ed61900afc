"""The report's tables on small hand-made cases (exact values), and its errors."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from conftest import build_small_experiment
from physical.cli import app
from physical.report.metrics import Rate
from physical.report.figures import Observation, Top5, figure_rows, lookup, prefiltered, rate_of, tables

runner = CliRunner()

# Three pictures of class 0, one adversarial variant (fast, eps 8).
MANIFEST = {"images": [
    {"id": f"img{i}", "label": 0, "variants": [
        {"name": "clean", "method": None, "eps": 0}, {"name": "fast_e8", "method": "fast", "eps": 8}]}
    for i in range(3)]}


def t5(*index, p=0.9):
    return Top5(tuple(index), (p,) + (0.01,) * (len(index) - 1))


DIGITAL = {
    ("img0", "clean"): t5(0, 1, 2, 3, 4), ("img0", "fast_e8"): t5(1, 2, 3, 4, 5),  # attack works in top-1 and top-5
    ("img1", "clean"): t5(0, 1, 2, 3, 4), ("img1", "fast_e8"): t5(1, 0, 2, 3, 4),  # works in top-1 only
    ("img2", "clean"): t5(1, 0, 2, 3, 4), ("img2", "fast_e8"): t5(1, 0, 2, 3, 4),  # clean already wrong
}


def get(records, **kw):
    rows = lookup(figure_rows("m", "photo", records), **kw)
    assert len(rows) == 1, (kw, rows)
    return rate_of(rows[0])


def test_destruction_and_accuracy_exact():
    obs = [Observation("img0", "clean", t5(0, 1, 2, 3, 4)), Observation("img0", "fast_e8", t5(0, 1, 2, 3, 4)),
           Observation("img1", "clean", t5(2, 0, 1, 3, 4)), Observation("img1", "fast_e8", t5(1, 3, 4, 5, 6)),
           Observation("img2", "clean", t5(0, 1, 2, 3, 4)), Observation("img2", "fast_e8", t5(0, 1, 2, 3, 4))]
    rec = tables(MANIFEST, DIGITAL, obs)
    # Top-1: eligible = img0, img1 (clean right, adv wrong); the photo restores img0 only.
    assert get(rec, case="average", table="destruction", metric="top1") == Rate(1, 2)
    # Top-5: eligible = img0 only (img1's adversarial still has 0 in its top-5); restored.
    assert get(rec, case="average", table="destruction", metric="top5") == Rate(1, 1)
    assert get(rec, case="average", table="accuracy", variant="transformed_clean", metric="top1") == Rate(2, 3)
    assert get(rec, case="average", table="accuracy", variant="transformed_adv", metric="top1") == Rate(2, 3)
    assert get(rec, case="average", table="accuracy", variant="digital_clean", metric="top1") == Rate(2, 3)
    assert get(rec, case="average", table="accuracy", variant="digital_adv", metric="top5") == Rate(2, 3)
    # Prefiltered: only img0 (img1's adversarial is right in top-5).
    assert get(rec, case="prefiltered", table="destruction", metric="top1") == Rate(1, 1)
    assert get(rec, case="prefiltered", table="accuracy", variant="digital_clean", metric="top1") == Rate(1, 1)


def test_each_photo_counts_and_empty_denominators_are_na():
    obs = [Observation("img0", "fast_e8", t5(1, 2, 3, 4, 5)), Observation("img0", "fast_e8", t5(0, 2, 3, 4, 5)),
           Observation("img0", "clean", t5(0, 1, 2, 3, 4))]
    rec = tables(MANIFEST, DIGITAL, obs)
    assert get(rec, case="average", table="destruction", metric="top1") == Rate(1, 2)  # two photos of one slot
    only_img2 = [Observation("img2", "fast_e8", t5(0, 1, 2, 3, 4))]
    na = get(tables(MANIFEST, DIGITAL, only_img2), case="average", table="destruction", metric="top1")
    assert na == Rate(0, 0) and na.format() == "n/a (n=0)"


def test_prefilter_confidence_threshold():
    assert prefiltered(t5(0, 1, 2, 3, 4, p=0.8), t5(1, 2, 3, 4, 5, p=0.8), 0)
    assert not prefiltered(t5(0, 1, 2, 3, 4, p=0.79), t5(1, 2, 3, 4, 5, p=0.9), 0)
    assert not prefiltered(t5(0, 1, 2, 3, 4, p=0.9), t5(1, 2, 3, 4, 5, p=0.5), 0)
    assert not prefiltered(t5(0, 1, 2, 3, 4, p=0.9), t5(1, 0, 3, 4, 5, p=0.9), 0)


# ---- on a real (small) experiment ----

@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return build_small_experiment(tmp_path_factory.mktemp("rep") / "d")


def test_report_writes_figures_that_predictions_csv_reproduces(small_demo):
    import csv
    d = small_demo
    result = runner.invoke(app, ["report", "--captures", str(d / "captures"), "--printouts", str(d / "printouts")])
    assert result.exit_code == 0, result.output
    assert "Destruction rate" in result.output
    rep = d / "captures" / "report"
    html = (rep / "report.html").read_text()
    assert "data:image/png;base64," in html and json.loads((rep / "figures.json").read_text())["experiment_id"] in html
    assert sorted(p.name for p in (rep / "plots").glob("*.png")) == ["destruction_vs_eps_demo.png"] + [
        f"transform_{t}.png" for t in ("blur", "brightness", "contrast", "jpeg", "noise")]
    artificial = list(csv.DictReader(open(rep / "artificial.csv")))
    assert {r["transform"] for r in artificial} == {"blur", "brightness", "contrast", "jpeg", "noise"}
    figures = json.loads((rep / "figures.json").read_text())
    assert figures["n_crops"] == 4 * 3 and figures["experiment_id"]
    preds = list(csv.DictReader(open(rep / "predictions.csv")))
    assert len(preds) == 12
    # Recompute the fast eps=8 average-case top-1 destruction rate from predictions.csv alone.
    rows = {(p["image_id"], p["variant"]): p for p in preds}
    k = n = 0
    for (image, variant), p in rows.items():
        if variant != "fast_e8":
            continue
        label = p["true_label"]
        clean_ok = rows[(image, "clean")]["digital_top5"].split()[0] == label
        adv_ok = p["digital_top5"].split()[0] == label
        if clean_ok and not adv_ok:
            n += 1
            k += p["photo_top5"].split()[0] == label
    fig = [f for f in figures["figures"] if f["method"] == "fast" and f["case"] == "average"
           and f["table"] == "destruction" and f["metric"] == "top1"]
    assert (fig[0]["k"], fig[0]["n"]) == (k, n)


def _one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_report_errors(small_demo, tmp_path):
    d = small_demo
    line = _one_line_error(runner.invoke(app, ["report", "--captures", str(tmp_path / "none"),
                                               "--printouts", str(d / "printouts")]))
    assert "physical ingest" in line
    other = tmp_path / "other"
    shutil.copytree(d / "captures", other)
    state = json.loads((other / "ingest.json").read_text())
    state["experiment_id"] = "0badc0de"
    (other / "ingest.json").write_text(json.dumps(state))
    line = _one_line_error(runner.invoke(app, ["report", "--captures", str(other), "--printouts", str(d / "printouts")]))
    assert "0badc0de" in line
    import torch
    import torchvision
    w = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), w)
    line = _one_line_error(runner.invoke(app, ["report", "--captures", str(d / "captures"), "--printouts",
                                               str(d / "printouts"), "--model", f"torchvision:resnet18={w}"]))
    assert "do not match" in line


def test_simulated_figures_beside_photos_and_before_printing(small_demo, tmp_path):
    from physical.report.run import make_report
    d = small_demo
    both = make_report(d / "captures", printouts=d / "printouts", out=tmp_path / "both", artificial=False)
    sources = {f["source"] for f in both.figures}
    assert sources == {"photo", "simulated:typical"}
    # Simulated figures are over every picture once: n of the digital clean accuracy = all 4 pictures.
    row = lookup(both.figures, source="simulated:typical", case="average", table="accuracy",
                 variant="transformed_clean", metric="top1", method="fast")
    assert row[0]["n"] == 4
    only = make_report(tmp_path / "no-captures", printouts=d / "printouts", simulated="harsh",
                       simulated_only=True, artificial=False)
    assert only.out == d / "printouts" / "report"
    assert {f["source"] for f in only.figures} == {"simulated:harsh"} and only.n_crops == 0
    assert (only.out / "report.html").is_file()
    line = _one_line_error(runner.invoke(app, ["report", "--printouts", str(d / "printouts"), "--simulated-only",
                                               "--simulated", "extreme", "--no-artificial"]))
    assert "mild, typical, harsh" in line


def test_terminal_destruction_cells_fit_a_narrow_column():
    from physical.report.metrics import Rate
    from physical.report.terminal import _rate_cell

    assert _rate_cell(Rate(2, 8)) == "25%  n=8\n[7, 59]"      # Wilson 95%: [7.1, 59.1]
    assert _rate_cell(Rate(1, 1)) == "100%  n=1\n[21, 100]"
    assert _rate_cell(Rate(0, 0)) == "n/a (n=0)"
