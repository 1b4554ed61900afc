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


def test_robust_accuracy_counts_by_hand_digital_photo_and_simulated():
    from physical.report.figures import robust_accuracy
    from physical.report.html import robust_table
    from physical.report.terminal import render_robust

    # Photos of img0 (twice) and img1; img2 never photographed. The simulated channel saw all three once.
    photo = [Observation("img0", "clean", t5(0, 1)), Observation("img0", "clean", t5(0, 1)),
             Observation("img0", "fast_e8", t5(0, 1)), Observation("img0", "fast_e8", t5(2, 0)),
             Observation("img1", "clean", t5(3, 0)), Observation("img1", "fast_e8", t5(0, 3))]
    sim = [Observation(i, v, t5(0, 1)) for i in ("img0", "img1", "img2") for v in ("clean",)]
    sim += [Observation("img0", "fast_e8", t5(1, 0)), Observation("img1", "fast_e8", t5(2, 0)),
            Observation("img2", "fast_e8", t5(0, 1))]
    figures = (figure_rows("m", "photo", tables(MANIFEST, DIGITAL, photo))
               + figure_rows("m", "simulated:typical", tables(MANIFEST, DIGITAL, sim)))
    got = {(r["attack"], r["source"]): (r["k"], r["n"]) for r in robust_accuracy(figures)}
    assert got == {
        # digital: the simulated source saw all 3 pictures (photos only 2): clean right on img0, img1; every
        # adversarial image wrong in top-1
        ("clean", "digital"): (2, 3), ("fast_e8", "digital"): (0, 3),
        # photo: each photo of a slot counts: clean img0 x2 right, img1 wrong; adversarial img0 1 of 2, img1 right
        ("clean", "photo"): (2, 3), ("fast_e8", "photo"): (2, 3),
        ("clean", "simulated:typical"): (3, 3), ("fast_e8", "simulated:typical"): (1, 3)}
    assert [r["attack"] for r in robust_accuracy(figures)][::3] == ["clean", "fast_e8"]
    # figures.csv's rows (strings) give the same table
    as_strings = [{k: ("" if v is None else str(v)) for k, v in f.items()} for f in figures]
    assert [(r["k"], r["n"]) for r in robust_accuracy(as_strings)] == [(r["k"], r["n"]) for r in robust_accuracy(figures)]
    # The terminal and the HTML show the same cells, with n and the interval
    from rich.console import Console

    console = Console(width=200, record=True)
    for table in render_robust(figures, "m"):
        console.print(table)
    text = console.export_text()
    assert "67%  n=3" in text and "0%  n=3" in text and "33%  n=3" in text and "100%  n=3" in text
    lo, hi = Rate(1, 3).interval
    assert f"[{100 * lo:.0f}, {100 * hi:.0f}]" in text
    page = robust_table([r for r in robust_accuracy(figures) if r["model"] == "m"], {"fast": "FGSM"})
    assert page.count("<tr>") == 3 and Rate(1, 3).format(0) in page and Rate(0, 3).format(0) in page


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
    assert {(p["variant"], p["method"], p["eps"], p["setting"]) for p in preds} == {
        ("clean", "", "0", ""), ("fast_e8", "fast", "8", "ε=8"), ("ll_e8", "ll", "8", "ε=8")}
    assert open(rep / "figures.csv").readline() == ("model,source,case,table,attack,method,eps,setting,l2,linf,"
                                                    "l0,metric,variant,k,n,value,ci_low,ci_high\n")
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
    # Robust accuracy: the photographed adversarial images right in top-1, counted from predictions.csv alone
    robust = list(csv.DictReader(open(rep / "robust.csv")))
    assert robust == [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in figures["robust_accuracy"]]
    photo = next(r for r in robust if r["attack"] == "fast_e8" and r["source"] == "photo")
    fast = [p for p in preds if p["variant"] == "fast_e8"]
    assert (int(photo["k"]), int(photo["n"])) == (sum(p["photo_top5"].split()[0] == p["true_label"] for p in fast),
                                                  len(fast))
    assert "Robust accuracy" in result.output and "Robust accuracy" in html


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


# ---- methods without eps (cw, one-pixel), and the mean printed perturbation of each variant ----

# Per variant, the (l0, l2, linf) make-sheets recorded for each of the three pictures.
NORMS = {"fast_e8": [(1024, 441.0, 8), (1000, 440.0, 8), (1010, 445.0, 8)],       # means 442.0, 8.0
         "cw": [(92, 10.0, 1), (50, 20.0, 2), (70, 33.0, 6)],                        # 21.0, 3.0
         "onepixel_d1": [(1, 200.0, 200), (1, 100.0, 90), (1, 0.0, 10)],              # 100.0, 100.0
         "onepixel_d3": [(3, 300.0, 255), (3, 150.0, 200), (3, 90.0, 145)]}          # 180.0, 200.0
SETTINGS = {"fast_e8": ("fast", 8, "ε=8"), "cw": ("cw", None, "κ=0"), "onepixel_d1": ("onepixel", None, "d=1"),
            "onepixel_d3": ("onepixel", None, "d=3")}


def mixed_manifest():
    """Three pictures of class 0 made with ``--methods onepixel,cw,fast``: the manifest's order is not the tables'."""
    images = []
    for i in range(3):
        variants = [{"name": "clean", "method": None, "eps": 0, "setting": "", "params": {},
                     "perturbation": {"l0": 0, "l2": 0.0, "linf": 0}, "file": f"images/img{i}_clean.png"}]
        for name in ("onepixel_d1", "onepixel_d3", "cw", "fast_e8"):
            method, eps, setting = SETTINGS[name]
            l0, l2, linf = NORMS[name][i]
            variants.append({"name": name, "method": method, "eps": eps, "setting": setting, "params": {},
                             "perturbation": {"l0": l0, "l2": l2, "linf": linf}, "file": f"images/img{i}_{name}.png"})
        images.append({"id": f"img{i}", "label": 0, "label_name": "airplane", "label_from": "bundled",
                       "source": f"p{i}.png", "variants": variants})
    return {"experiment_id": "0123abcd", "model": {"id": "m", "class_names": [f"c{k}" for k in range(10)]},
            "attack": {"methods": ["onepixel", "cw", "fast"], "eps": [8]}, "images": images}


def mixed_figures():
    """Photo figures of the mixed manifest: every attack fools the model digitally on img0 and img1 (img2's
    clean image is wrong); the photos restore img0 for every variant, and img1 too for cw."""
    names = ("onepixel_d1", "onepixel_d3", "cw", "fast_e8")
    digital = {("img0", "clean"): t5(0, 1, 2, 3, 4), ("img1", "clean"): t5(0, 1, 2, 3, 4),
               ("img2", "clean"): t5(1, 0, 2, 3, 4)}
    digital.update({(f"img{i}", n): t5(1, 2, 3, 4, 5) for i in range(3) for n in names})
    obs = [Observation(f"img{i}", "clean", t5(0, 1, 2, 3, 4)) for i in range(3)]
    obs += [Observation("img0", n, t5(0, 1, 2, 3, 4)) for n in names]
    obs += [Observation("img1", n, t5(0 if n == "cw" else 1, 2, 3, 4, 5)) for n in names]
    return figure_rows("m", "photo", tables(mixed_manifest(), digital, obs))


def test_variants_without_eps_keyed_by_name_with_their_setting_and_mean_perturbation():
    from physical.report.figures import Cell, cells_in_order, variant_cells

    # l0: the mean pixels changed, (1024 + 1000 + 1010) / 3 and (92 + 50 + 70) / 3.
    expected = [Cell("fast_e8", "fast", 8, "ε=8", 442.0, 8.0, 3034 / 3), Cell("cw", "cw", None, "κ=0", 21.0, 3.0, 212 / 3),
                Cell("onepixel_d1", "onepixel", None, "d=1", 100.0, 100.0, 1.0),
                Cell("onepixel_d3", "onepixel", None, "d=3", 180.0, 200.0, 3.0)]
    # Table order: the methods' order (fast, ..., cw, ..., onepixel), then the manifest's within a method.
    assert variant_cells(mixed_manifest()) == expected
    figures = mixed_figures()
    assert cells_in_order(figures) == expected
    as_csv = [{k: "" if v is None else str(v) for k, v in f.items()} for f in figures]   # figures.csv's strings
    assert cells_in_order(as_csv) == expected
    assert len(figures) == 4 * 2 * 2 * 5 and all(f["attack"] in NORMS for f in figures)
    row = lookup(figures, attack="cw", case="average", table="destruction", metric="top1")
    assert len(row) == 1 and {k: row[0][k] for k in ("method", "eps", "setting", "l2", "linf")} == \
        {"method": "cw", "eps": None, "setting": "κ=0", "l2": 21.0, "linf": 3.0}
    assert rate_of(row[0]) == Rate(2, 2)
    assert rate_of(lookup(figures, attack="onepixel_d3", case="average", table="destruction",
                          metric="top1")[0]) == Rate(1, 2)
    # A manifest written before settings and perturbations were recorded: eps as the setting, norms n/a.
    old = figure_rows("m", "photo", tables(MANIFEST, DIGITAL, [Observation("img0", "fast_e8", t5(0, 1, 2, 3, 4))]))
    assert {(f["attack"], f["method"], f["eps"], f["setting"], f["l2"], f["linf"]) for f in old} == \
        {("fast_e8", "fast", 8, "ε=8", None, None)}


def test_terminal_and_html_label_each_variant_with_its_setting_and_norms(tmp_path):
    from rich.console import Console

    from physical.report.html import render_html
    from physical.report.plots import plot_destruction_vs_eps
    from physical.report.terminal import render_tables

    figures = mixed_figures()
    console = Console(width=200, record=True)
    for table in render_tables(figures, "photo", "m"):
        console.print(table)
    text = console.export_text()
    rows = [ln.split("│")[1:5] for ln in text.splitlines() if "│" in ln]
    # Each label in both tables (accuracy, then destruction), with its mean L0, L2 and L-infinity.
    assert [[c.strip() for c in r] for r in rows if r[1].strip()] == 2 * [
        ["fast ε=8", "1011.3", "442.0", "8.0"], ["C&W κ=0", "70.7", "21.0", "3.0"],
        ["one-pixel d=1", "1.0", "100.0", "100.0"], ["one-pixel d=3", "3.0", "180.0", "200.0"]]
    assert text.index("fast ε=8") < text.index("C&W κ=0") < text.index("one-pixel d=1") < text.index("one-pixel d=3")
    assert "100%  n=2" in text   # cw's destruction rate

    for rows in (figures, [{k: "" if v is None else str(v) for k, v in f.items()} for f in figures]):
        page = render_html(manifest=mixed_manifest(), figures=rows, predictions=[], captures=tmp_path,
                           printouts=tmp_path, gallery=0)
        for name, setting, l0, l2, linf in (("fast", "ε=8", "1011.3", "442.0", "8.0"),
                                            ("C&amp;W", "κ=0", "70.7", "21.0", "3.0"),
                                            ("one-pixel", "d=1", "1.0", "100.0", "100.0"),
                                            ("one-pixel", "d=3", "3.0", "180.0", "200.0")):
            cells = (f'{name} <span class="eps">{setting}</span></th><td class="num norm">{l0}</td>'
                     f'<td class="num norm">{l2}</td><td class="num norm">{linf}</td>')
            assert page.count(cells) == 3, cells   # the two accuracy tables and the destruction table
        assert "<dt>&epsilon; (0&ndash;255)</dt><dd>8</dd>" in page

    # The plot against eps shows fast and names the methods it leaves out; without any eps, no plot.
    assert list(plot_destruction_vs_eps(figures, tmp_path / "plots")) == ["m"]
    assert plot_destruction_vs_eps([f for f in figures if f["eps"] is None], tmp_path / "none") == {}


def test_report_of_an_experiment_with_variants_without_eps(small_demo, tmp_path):
    """A real experiment whose manifest is edited: ll_e8 becomes onepixel_d1 and a cw variant is added (the
    fast_e8 images, so its norms are known): the report, its files, plots and page take them."""
    import csv

    from rich.console import Console

    from physical.report.run import ARTIFICIAL_COLUMNS, FIGURE_COLUMNS, make_report
    from physical.report.terminal import render_tables

    printouts = tmp_path / "printouts"
    shutil.copytree(small_demo / "printouts", printouts)
    data = json.loads((printouts / "manifest.json").read_text())
    for rec in data["images"]:
        vs = {v["name"]: v for v in rec["variants"]}
        vs["ll_e8"].update(name="onepixel_d1", method="onepixel", eps=None, setting="d=1")
        rec["variants"].append(dict(vs["fast_e8"], name="cw", method="cw", eps=None, setting="κ=0"))
    (printouts / "manifest.json").write_text(json.dumps(data))
    result = make_report(tmp_path / "none", printouts=printouts, out=tmp_path / "rep", simulated_only=True,
                         device="cpu")
    rep = result.out

    fast = [v["perturbation"] for rec in data["images"] for v in rec["variants"] if v["name"] == "fast_e8"]
    with open(rep / "figures.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == FIGURE_COLUMNS
        rows = list(reader)
    assert list(dict.fromkeys(r["attack"] for r in rows)) == ["fast_e8", "cw", "onepixel_d1"]
    cw = {(r["method"], r["eps"], r["setting"], r["l2"], r["linf"]) for r in rows if r["attack"] == "cw"}
    assert cw == {("cw", "", "κ=0", str(sum(p["l2"] for p in fast) / 4), str(sum(p["linf"] for p in fast) / 4))}
    as_json = json.loads((rep / "figures.json").read_text())["figures"]
    assert {f["eps"] for f in as_json if f["method"] in ("cw", "onepixel")} == {None}
    with open(rep / "artificial.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ARTIFICIAL_COLUMNS
        art = list(reader)
    assert {(r["attack"], r["eps"], r["setting"]) for r in art} == {("fast_e8", "8", "ε=8"), ("cw", "", "κ=0"),
                                                                    ("onepixel_d1", "", "d=1")}
    assert sorted(p.name for p in (rep / "plots").glob("*.png")) == ["destruction_vs_eps_demo.png"] + [
        f"transform_{t}.png" for t in ("blur", "brightness", "contrast", "jpeg", "noise")]
    html = (rep / "report.html").read_text()
    assert 'C&amp;W <span class="eps">κ=0</span>' in html and 'one-pixel <span class="eps">d=1</span>' in html
    console = Console(width=200, record=True)
    for table in render_tables(result.figures, "simulated:typical"):
        console.print(table)
    text = console.export_text()
    assert text.count("one-pixel d=1") == 2 and text.count("C&W κ=0") == 2


def test_old_manifest_perturbation_measured_on_the_printed_pngs(small_demo, tmp_path):
    """A manifest without setting, params and perturbation (written before they existed): the norms are
    measured on the PNG files, exactly as make-sheets records them."""
    import numpy as np
    from PIL import Image

    from physical.report.run import make_report

    printouts = tmp_path / "printouts"
    shutil.copytree(small_demo / "printouts", printouts)
    data = json.loads((printouts / "manifest.json").read_text())
    recorded = json.loads(json.dumps(data))
    for rec in data["images"]:
        for v in rec["variants"]:
            for key in ("setting", "params", "perturbation"):
                del v[key]
    (printouts / "manifest.json").write_text(json.dumps(data))
    result = make_report(tmp_path / "none", printouts=printouts, out=tmp_path / "rep", simulated_only=True,
                         artificial=False, device="cpu")

    def png(image_id, variant):
        return np.asarray(Image.open(printouts / "images" / f"{image_id}_{variant}.png").convert("RGB"), dtype=int)

    for name in ("fast_e8", "ll_e8"):
        diffs = [png(rec["id"], name) - png(rec["id"], "clean") for rec in data["images"]]
        l2 = sum(round(float(np.sqrt((d ** 2).sum())), 3) for d in diffs) / 4
        linf = sum(int(np.abs(d).max()) for d in diffs) / 4
        rows = lookup(result.figures, attack=name)
        assert rows and all((r["setting"], r["l2"], r["linf"]) == ("ε=8", l2, linf) for r in rows)
        # the same as what make-sheets recorded in the manifest
        norms = [v["perturbation"] for rec in recorded["images"] for v in rec["variants"] if v["name"] == name]
        assert (l2, linf) == (sum(p["l2"] for p in norms) / 4, sum(p["linf"] for p in norms) / 4)
    assert "perturbation" not in json.loads((printouts / "manifest.json").read_text())["images"][0]["variants"][1]
