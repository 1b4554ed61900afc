"""Attack many, print a sample: `make-sheets --print-count N` and what `report` makes of it."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from physical.cli import app
from physical.report.run import make_report
from physical.sheets.digital import print_sample, read_digital
from physical.sheets.manifest import read_manifest
from physical.sheets.run import make_sheets

runner = CliRunner()
OPTS = dict(count=12, seed=3, methods=["fast", "bim"], eps=[4], batch_size=4)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The same 12 pictures, every one printed: what the sample must agree with."""
    return make_sheets(tmp_path_factory.mktemp("full") / "printouts", **OPTS).manifest


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "printouts"
    return out, make_sheets(out, print_count=4, **OPTS).manifest


def test_the_printed_sample_is_seeded_and_in_picture_order():
    assert print_sample(12, None, 0) == list(range(12)) == print_sample(12, 12, 0) == print_sample(12, 50, 0)
    a = print_sample(1000, 20, 5)
    assert a == print_sample(1000, 20, 5) == sorted(a) and len(set(a)) == 20
    assert a != print_sample(1000, 20, 6)


def test_only_the_sample_is_printed_and_every_picture_is_in_the_digital_table(sample, full):
    out, m = sample
    chosen = print_sample(12, 4, OPTS["seed"])
    assert [r["id"] for r in m["images"]] == [full["images"][i]["id"] for i in chosen]
    assert m["print"] == {"count": 4, "of": 12, "seed": 3, "rule": m["print"]["rule"], "pngs": "printed",
                          "digital": "digital.npz"}
    slots = [s for p in m["layout"]["pages"] for s in p["slots"]]
    assert sorted({s["image_id"] for s in slots}) == [r["id"] for r in m["images"]]
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{r['id']}_{v}.png" for r in m["images"] for v in ("clean", "fast_e4", "bim_e4"))
    t = read_digital(out / "digital.npz")
    assert t["id"].tolist() == [r["id"] for r in full["images"]]
    assert t["printed"].nonzero()[0].tolist() == chosen
    assert t["variant"].tolist() == ["clean", "fast_e4", "bim_e4"]


def test_attacking_many_gives_the_predictions_of_printing_all(sample, full):
    # Same pictures, seed and batches: the table's predictions are exactly the full run's manifest's.
    out, m = sample
    t = read_digital(out / "digital.npz")
    for i, rec in enumerate(full["images"]):
        assert t["label"][i] == rec["label"] and t["least_likely"][i] == rec["least_likely"]
        for j, v in enumerate(rec["variants"]):
            assert t["top5"][i, j].tolist() == [p["index"] for p in v["top5"]]
            np.testing.assert_allclose(t["prob"][i, j], [p["prob"] for p in v["top5"]], atol=1e-6)
            # float32 in the table, the manifest's l2 rounded to 3 decimals
            np.testing.assert_allclose(t["perturbation"][i, j], [v["perturbation"][k] for k in ("l0", "l2", "linf")],
                                       rtol=0, atol=1e-3)
    printed = {r["id"]: r for r in full["images"]}
    assert all(r["variants"] == [dict(v) for v in printed[r["id"]]["variants"]] for r in m["images"])


def test_report_puts_every_picture_in_the_digital_column_and_the_printed_in_the_simulated(sample):
    out, m = sample
    r = make_report(printouts=out, simulated="typical", simulated_only=True, artificial=False,
                    out=out.parent / "report")
    with open(r.out / "robust.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    t = read_digital(out / "digital.npz")
    for j, attack in enumerate(["clean", "fast_e4", "bim_e4"]):
        digital = next(x for x in rows if x["attack"] == attack and x["source"] == "digital")
        # counted by hand from the table: top-1 right on all 12 pictures
        assert (int(digital["k"]), int(digital["n"])) == (int((t["top5"][:, j, 0] == t["label"]).sum()), 12)
        simulated = next(x for x in rows if x["attack"] == attack and x["source"] == "simulated:typical")
        assert int(simulated["n"]) == 4
    meta = json.loads((r.out / "figures.json").read_text())
    assert "4 of the 12 pictures attacked were printed" in meta["sample"]
    assert "4 printed, a random sample of the 12 attacked" in (r.out / "report.html").read_text()


def test_all_pngs_lets_the_simulated_channel_see_every_picture_and_force_clears_them(tmp_path):
    out = tmp_path / "printouts"
    m = make_sheets(out, print_count=4, all_pngs=True, **OPTS).manifest
    assert m["print"]["pngs"] == "all" and len(list((out / "images").iterdir())) == 12 * 3
    r = make_report(printouts=out, simulated="typical", simulated_only=True, artificial=False, out=tmp_path / "r")
    with open(r.out / "robust.csv", newline="") as f:
        assert {int(x["n"]) for x in csv.DictReader(f)} == {12}
    # Replacing it leaves only the new experiment's images: the unprinted PNGs go too.
    m2 = make_sheets(out, print_count=2, force=True, **{**OPTS, "methods": ["fast"]}).manifest
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        f"{rec['id']}_{v}.png" for rec in m2["images"] for v in ("clean", "fast_e4"))
    assert read_manifest(out)["print"]["count"] == 2


def test_without_print_count_nothing_changes(full, tmp_path):
    assert "print" not in full
    out = tmp_path / "p"
    make_sheets(out, **{**OPTS, "count": 3, "methods": ["fast"]})
    assert not (out / "digital.npz").exists()


@pytest.mark.parametrize("args, message", [
    (["--print-count", "0"], "--print-count 0: must be at least 1"),
    (["--all-pngs"], "--all-pngs needs --print-count"),
])
def test_bad_print_options_get_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["make-sheets", "--out", str(tmp_path / "p"), *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_a_broken_digital_table_is_one_line(sample, tmp_path):
    out, _ = sample
    bad = tmp_path / "printouts"
    bad.mkdir()
    (bad / "manifest.json").write_bytes((out / "manifest.json").read_bytes())
    (bad / "digital.npz").write_bytes(b"not a zip")
    result = runner.invoke(app, ["report", "--printouts", str(bad), "--simulated-only", "--no-artificial"])
    assert result.exit_code != 0 and "digital.npz: not a readable digital table" in result.output
    assert "make-sheets --force" in result.output


def test_the_array_digital_figures_equal_the_per_image_ones(sample, full):
    # digital_tables (arrays, for 50,000 pictures) must count what tables (one object per image) counts,
    # prefiltered case included: checked on the 12 pictures of the full run, whose manifest has them all.
    from physical.report.figures import Observation, Top5, digital_tables, tables

    out, _ = sample
    t = read_digital(out / "digital.npz")
    digital = {(rec["id"], v["name"]): Top5(tuple(p["index"] for p in v["top5"]), tuple(p["prob"] for p in v["top5"]))
               for rec in full["images"] for v in rec["variants"]}
    slow = [r for r in tables(full, digital, [Observation(i, v, x) for (i, v), x in digital.items()])
            if r["variant"].startswith("digital_")]
    fast = digital_tables(full, t["top5"], t["prob"], t["label"], t["variant"].tolist())
    key = lambda r: (r["attack"], r["case"], r["metric"], r["variant"])  # noqa: E731
    assert sorted((key(r), r["rate"]) for r in fast) == sorted((key(r), r["rate"]) for r in slow)
    assert any(r["case"] == "prefiltered" and r["rate"].n for r in fast)     # the prefilter kept some pictures
