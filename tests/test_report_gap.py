"""The sim-to-real gap (exact, on hand-made figure rows) and the plot of destruction rate against eps."""
from __future__ import annotations

import csv
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import build_small_experiment
from physical.cli import app
from physical.report.figures import MIN_GAP_N, figure_rows, gap_text, sim_to_real_gap
from physical.report.metrics import Rate
from physical.report.plots import plot_destruction_vs_eps, plot_file_name

PNG = b"\x89PNG\r\n\x1a\n"


def cell(method, eps, l2=None, linf=None):
    """The cell fields of a figure record (a variant with eps, as make-sheets names it)."""
    return {"attack": f"{method}_e{eps}", "method": method, "eps": eps, "setting": f"ε={eps}", "l2": l2,
            "linf": linf}


def rows(model, source, cells):
    """Figure rows of destruction rates: cells maps (case, method, eps, metric) -> Rate."""
    return figure_rows(model, source, [{"case": c, "table": "destruction", **cell(m, eps), "metric": k,
                                        "variant": "adv", "rate": r} for (c, m, eps, k), r in cells.items()])


def avg(method, eps, metric="top1"):
    return ("average", method, eps, metric)


PHOTO = {avg("fast", 8): Rate(15, 30),     # 0.5, n exactly MIN_GAP_N: counts
         avg("bim", 8): Rate(30, 40),      # 0.75
         avg("ll", 8): Rate(10, 29),       # photo n < 30: left out
         avg("fast", 16): Rate(30, 30),    # the simulated n < 30: left out
         avg("ll", 16): Rate(0, 0),        # n/a in the photos: left out
         avg("fast", 8, "top5"): Rate(0, 100),                     # top-5: not the gap's metric
         ("prefiltered", "fast", 8, "top1"): Rate(0, 100)}         # prefiltered: not the gap's case
SIM = {avg("fast", 8): Rate(30, 30),       # |1.0 - 0.5| = 0.5
       avg("bim", 8): Rate(20, 40),        # |0.5 - 0.75| = 0.25
       avg("ll", 8): Rate(40, 40),
       avg("fast", 16): Rate(0, 29),
       avg("ll", 16): Rate(40, 40),
       avg("fast", 8, "top5"): Rate(100, 100),
       ("prefiltered", "fast", 8, "top1"): Rate(100, 100)}
SMALL = {avg("fast", 8): Rate(0, 29), avg("bim", 8): Rate(29, 29)}   # no cell with n >= 30


def hand_figures():
    return (rows("m", "photo", PHOTO) + rows("m", "simulated:typical", SIM) + rows("m", "simulated:harsh", SMALL)
            + rows("transfer", "simulated:typical", SIM))   # no photos for this model: no gap


def test_gap_is_the_mean_over_cells_with_enough_observations_in_both():
    assert MIN_GAP_N == 30
    gap = sim_to_real_gap(hand_figures())
    assert gap == [
        {"model": "m", "source": "simulated:harsh", "metric": "top1", "case": "average", "mean_abs_diff": None,
         "cells": 0, "min_n": 30},
        {"model": "m", "source": "simulated:typical", "metric": "top1", "case": "average", "mean_abs_diff": 0.375,
         "cells": 2, "min_n": 30},
    ]
    assert [gap_text(g) for g in gap] == ["n/a (no cell with n >= 30 in both)", "37.5 points over 2 cells"]
    # figures.csv's rows (every value a string) give the same numbers
    as_csv = [{k: "" if v is None else str(v) for k, v in f.items()} for f in hand_figures()]
    assert sim_to_real_gap(as_csv) == gap
    # one qualifying cell
    one = rows("m", "photo", {avg("fast", 8): Rate(3, 30)}) + rows("m", "simulated:x", {avg("fast", 8): Rate(6, 30)})
    assert gap_text(sim_to_real_gap(one)[0]) == "10.0 points over 1 cell"


def test_gap_needs_both_sources():
    photo_only = rows("m", "photo", PHOTO)
    sim_only = rows("m", "simulated:typical", SIM)
    assert sim_to_real_gap(photo_only) == [] and sim_to_real_gap(sim_only) == []


def test_terminal_gap_table():
    from rich.console import Console

    from physical.report.terminal import render_gap

    console = Console(width=200, record=True)
    for table in render_gap(hand_figures()):
        console.print(table)
    text = console.export_text()
    assert "simulated (typical)" in text and "37.5 points over 2 cells" in text
    assert "simulated (harsh)" in text and "n/a (no cell with n >= 30 in both)" in text
    assert render_gap(rows("m", "photo", PHOTO)) == []


@pytest.mark.parametrize("sources", [("photo", "simulated:typical", "simulated:harsh"), ("photo",),
                                     ("simulated:typical",)])
def test_plot_one_png_per_model(tmp_path, sources):
    cells = {"photo": PHOTO, "simulated:typical": SIM, "simulated:harsh": SMALL}
    figures = [f for s in sources for f in rows("torchvision:resnet50", s, cells[s])]
    paths = plot_destruction_vs_eps(figures, tmp_path / "plots")
    assert paths == {"torchvision:resnet50": tmp_path / "plots" / "destruction_vs_eps_torchvision_resnet50.png"}
    data = paths["torchvision:resnet50"].read_bytes()
    assert data[:8] == PNG and len(data) > 10_000
    with Image.open(paths["torchvision:resnet50"]) as im:
        assert im.size[0] > 800 and im.size[1] > 500
    assert plot_file_name("demo") == "destruction_vs_eps_demo.png"


# ---- on a real (small) experiment ----

@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return build_small_experiment(tmp_path_factory.mktemp("gap") / "d")


def test_report_writes_the_plot_and_the_gap(small_demo, tmp_path):
    from physical.report.html import render_html
    from physical.report.run import make_report

    d = small_demo
    result = make_report(d / "captures", printouts=d / "printouts", out=tmp_path / "rep", artificial=False,
                         device="cpu")
    rep = result.out
    assert [p.name for p in (rep / "plots").iterdir()] == ["destruction_vs_eps_demo.png"]
    meta = json.loads((rep / "figures.json").read_text())
    # 4 pictures: no cell reaches n = 30, so the gap is n/a, in figures.json and gap.csv alike
    assert meta["sim_to_real_gap"] == [{"model": "demo", "source": "simulated:typical", "metric": "top1",
                                        "case": "average", "mean_abs_diff": None, "cells": 0, "min_n": 30}]
    with open(rep / "gap.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"model": "demo", "source": "simulated:typical", "metric": "top1",
                                            "case": "average", "mean_abs_diff": "", "cells": "0", "min_n": "30"}]
    html = (rep / "report.html").read_text()
    assert "Figure 1. destruction_vs_eps_demo.png" in html and "Sim-to-real gap" in html
    assert "n/a (no cell with n &gt;= 30 in both)" in html
    # With 30 observations per cell: photo 15/30, simulated 30/30 in both cells (fast and ll at eps 8).
    big = [dict(f, k=(15 if f["source"] == "photo" else 30), n=30)
           if (f["table"], f["case"], f["metric"]) == ("destruction", "average", "top1") else f
           for f in meta["figures"]]
    page = render_html(manifest=result.manifest, figures=big, predictions=[], captures=d / "captures",
                       printouts=d / "printouts", gallery=0)
    assert "50.0 points over 2 cells" in page

    cli = CliRunner().invoke(app, ["report", "--captures", str(d / "captures"), "--printouts", str(d / "printouts"),
                                   "--out", str(tmp_path / "cli"), "--no-artificial", "--device", "cpu"])
    assert cli.exit_code == 0, cli.output
    assert "Sim-to-real gap" in cli.output and "n/a (no cell with n >= 30 in both)" in cli.output


def test_simulated_only_report_has_the_plot_and_no_gap(small_demo, tmp_path):
    from physical.report.run import make_report

    d = small_demo
    result = make_report(tmp_path / "none", printouts=d / "printouts", out=tmp_path / "rep", simulated_only=True,
                         artificial=False, device="cpu")
    assert (result.out / "plots" / "destruction_vs_eps_demo.png").is_file()
    assert json.loads((result.out / "figures.json").read_text())["sim_to_real_gap"] == []
    assert (result.out / "gap.csv").read_text() == "model,source,metric,case,mean_abs_diff,cells,min_n\n"
    assert "Sim-to-real gap" not in (result.out / "report.html").read_text()


def test_destruction_table_shows_each_methods_digital_accuracy_beside_it():
    """The trade EoT makes: its digital strength in the same table as what the photo destroys."""
    from rich.console import Console

    from physical.report.terminal import render_tables

    cells = [{"case": "average", "table": "accuracy", **cell("eot", 8, 441.5, 8), "metric": k, "variant": v,
              "rate": Rate(3, 40) if (v, k) == ("digital_adv", "top1") else Rate(20, 40)}
             for v in ("transformed_clean", "transformed_adv", "digital_clean", "digital_adv") for k in ("top1", "top5")]
    cells += [{"case": c, "table": "destruction", **cell("eot", 8, 441.5, 8), "metric": k, "variant": "adv",
               "rate": Rate(1, 33) if (c, k) == ("average", "top1") else Rate(0, 0)}
              for c in ("average", "prefiltered") for k in ("top1", "top5")]
    figs = figure_rows("demo", "photo", cells)
    console = Console(width=120, record=True)
    for table in render_tables(figs, "photo", "demo"):
        console.print(table)
    text = console.export_text()
    assert "EoT ε=8" in text and "digital 8%" in text and "3%  n=33" in text
    # the mean printed perturbation beside the figures, in both tables
    assert text.count("441.5") == 2 and text.count("8.0") == 2
