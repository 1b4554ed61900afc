"""Method specs: one method at several settings in one experiment, each method's options declared once.

The spec parser and its errors, the variants' names and settings, make-sheets' flags as the
defaults of the bare method, the options reaching the attack function exactly, and the CLI's
flags and the README's table built from the declarations.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from physical.attacks import basic_iterative, eps_steps, pgd
from physical.attacks.options import Option
from physical.attacks.spec import (METHOD_OPTIONS, MethodSpec, flag_defaults, method_flags, options_markdown,
                                   parse_method, parse_methods)
from physical.cli import app
from physical.sheets.variants import plan_variants, setting_text

README = Path(__file__).resolve().parents[1] / "README.md"


# --- the parser ------------------------------------------------------------------------------

def test_a_spec_names_options_in_any_order_and_is_written_back_in_declaration_order():
    spec = parse_method("pgd:restarts=20:steps=100")
    assert spec == MethodSpec("pgd", (("steps", 100), ("restarts", 20)))
    assert spec.text == "pgd:steps=100:restarts=20"
    assert parse_method("cw:target=ll:confidence=20").given == (("confidence", 20.0), ("target", "ll"))
    assert parse_method("bim").given == ()
    assert parse_methods("fast, bim,pgd:steps=100,bim") == [MethodSpec("fast"), MethodSpec("bim"),
                                                             MethodSpec("pgd", (("steps", 100),))]


@pytest.mark.parametrize("text, words", [
    ("deepfool", ["unknown method 'deepfool'", "fast, bim"]),
    ("pgd:stepz=3", ["pgd has no option 'stepz'", "steps, restarts"]),
    ("fast:steps=3", ["fast has no option 'steps'", "none"]),
    ("pgd:steps", ["'steps' is not name=value"]),
    ("pgd:steps=0", ["steps=0", "a whole number, at least 1"]),
    ("pgd:steps=2.5", ["steps=2.5", "a whole number"]),
    ("cw:target=most", ["target=most", "one of none, ll"]),
    ("eot:digital=1", ["digital=1", "below 1"]),
    ("pgd:steps=3:steps=4", ["steps given twice"]),
])
def test_a_bad_spec_says_what_is_wrong_and_what_is_allowed(text, words):
    with pytest.raises(ValueError) as info:
        parse_method(text)
    for w in words:
        assert w in str(info.value)


def test_an_option_checks_its_range():
    o = Option("k", 1, "", kind=float, low=0, high=1, high_open=True)
    assert o.parse("0.5") == 0.5 and o.check(0) == 0.0
    for bad in ("1", "-0.1", "nan", "x"):
        with pytest.raises(ValueError):
            o.parse(bad)
    assert Option("n", 1, "", low=1).parse("3") == 3
    assert isinstance(Option("n", 1, "", low=1).parse("3.0"), int)


# --- variants --------------------------------------------------------------------------------

def _names(specs, eps=(8,), **flags):
    return [v.name for v in plan_variants(parse_methods(specs), list(eps), flag_defaults(flags))]


def test_madrys_four_pgd_settings_are_four_variants_with_their_own_names():
    variants = plan_variants(parse_methods("pgd,pgd:steps=100,pgd:restarts=20,pgd:steps=100:restarts=20"), [8])
    assert [v.name for v in variants] == ["clean", "pgd_e8", "pgd-steps100_e8", "pgd-restarts20_e8",
                                          "pgd-steps100-restarts20_e8"]
    assert [(v.opt("steps"), v.opt("restarts")) for v in variants[1:]] == [(40, 1), (100, 1), (40, 20), (100, 20)]
    assert [setting_text(v) for v in variants[1:]] == ["ε=8", "ε=8, steps=100", "ε=8, restarts=20",
                                                       "ε=8, steps=100, restarts=20"]
    assert [v.label for v in variants[1:]] == ["pgd ε8", "pgd steps100 ε8", "pgd restarts20 ε8",
                                               "pgd steps100 restarts20 ε8"]
    # File- and slot-safe names.
    assert all(re.fullmatch(r"[A-Za-z0-9_.+-]+", v.name) for v in variants)


def test_flags_set_the_bare_methods_defaults_and_keep_its_name():
    assert _names("pgd,pgd:steps=40", pgd_steps=100) == ["clean", "pgd_e8", "pgd-steps40_e8"]
    bare, named = plan_variants(parse_methods("pgd,pgd:steps=40"), [8], flag_defaults({"pgd_steps": 100}))[1:]
    assert bare.opt("steps") == 100 and named.opt("steps") == 40
    assert setting_text(bare) == "ε=8, steps=100"
    # The old on/off flag, the eot flags shared by eot and eot_ll, the one-pixel list.
    cw_ll, = plan_variants(parse_methods("cw"), [8], flag_defaults({"cw_least_likely": True}))[1:]
    assert cw_ll.opt("target") == "ll" and setting_text(cw_ll) == "κ=0, target ll" and cw_ll.name == "cw"
    eots = plan_variants(parse_methods("eot,eot_ll"), [8], flag_defaults({"eot_samples": 4}))[1:]
    assert [v.opt("samples") for v in eots] == [4, 4]
    assert _names("onepixel", onepixel_pixels="1,3") == ["clean", "onepixel_d1", "onepixel_d3"]
    assert _names("onepixel:pixels=5", onepixel_pixels=[1, 3]) == ["clean", "onepixel_d5"]
    assert _names("fast,bim,bim:step_factor=2", eps=(4, 8)) == [
        "clean", "fast_e4", "fast_e8", "bim_e4", "bim_e8", "bim-step_factor2_e4", "bim-step_factor2_e8"]


def test_two_specs_that_make_the_same_attack_are_refused():
    with pytest.raises(ValueError, match="the same as pgd_e8"):
        plan_variants(parse_methods("pgd,pgd:steps=40"), [8])
    with pytest.raises(ValueError, match=r"--pgd-steps 0: steps=0: a whole number, at least 1"):
        flag_defaults({"pgd_steps": 0})
    with pytest.raises(ValueError, match="unknown attack option 'pgd_stepz'"):
        flag_defaults({"pgd_stepz": 3})


# --- end to end ------------------------------------------------------------------------------

def test_each_variants_options_reach_its_attack_exactly(tmp_path):
    """One experiment holds pgd at two settings and bim at twice the paper's steps; each saved PNG is
    exactly what the attack function gives with those options (pgd's per-picture seed as recorded)."""
    from physical.models import load_model, quantize_8bit
    from physical.sheets.pictures import load_pictures, picture_images
    from physical.sheets.run import make_sheets, picture_seed

    r = make_sheets(tmp_path / "p", count=2, methods=["pgd:steps=3", "pgd:steps=4:restarts=2", "bim:step_factor=2"],
                    eps=[4], seed=1)
    rec = r.manifest["images"]
    names = [v["name"] for v in rec[0]["variants"]]
    assert names == ["clean", "pgd-steps3_e4", "pgd-steps4-restarts2_e4", "bim-step_factor2_e4"]
    assert r.manifest["attack"]["specs"] == ["pgd:steps=3", "pgd:steps=4:restarts=2", "bim:step_factor=2"]
    params = {v["name"]: v["params"] for v in rec[0]["variants"]}
    assert params["pgd-steps4-restarts2_e4"] == {"eps": 4, "steps": 4, "restarts": 2, "alpha": 2.5,
                                                 "random_start": True, "loss": "ce", "confidence": 0.0,
                                                 "target": "none"}
    assert params["bim-step_factor2_e4"] == {"eps": 4, "alpha": 1, "steps": 10, "step_factor": 2}

    model = load_model("demo", device="cpu")
    pictures, _ = load_pictures(model, None, None, 2, 1)
    x = picture_images(pictures, model)
    y = torch.tensor([p["label"] for p in rec])

    def png(name):
        return torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / "p" / f"images/{p['id']}_{name}.png")))
                            .permute(2, 0, 1).float() / 255 for p in rec])

    for k, (name, steps, restarts) in enumerate([("pgd-steps3_e4", 3, 1), ("pgd-steps4-restarts2_e4", 4, 2)]):
        seeds = [picture_seed(1, i, 1000 + k) for i in range(2)]
        want = quantize_8bit(pgd(model, x, y, 4 / 255, steps=steps, restarts=restarts, seed=seeds))
        assert torch.equal(png(name), want), name
    want = quantize_8bit(basic_iterative(model, x, y, 4 / 255, steps=2 * eps_steps(4 / 255)))
    # attack_grid equals basic_iterative to float tolerance: at most a rounding's level apart.
    assert (png("bim-step_factor2_e4") - want).abs().max().item() <= 1 / 255 + 1e-6


def test_the_cli_takes_specs_and_the_old_flags(tmp_path):
    out = tmp_path / "p"
    res = CliRunner().invoke(app, ["make-sheets", "--count", "1", "--eps", "8", "--out", str(out), "--methods",
                                   "cw:steps=3:search_steps=1,cw", "--cw-steps", "2", "--cw-search-steps", "1",
                                   "--cw-least-likely"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    variants = json.loads((out / "manifest.json").read_text())["images"][0]["variants"]
    by = {v["name"]: v for v in variants}
    assert list(by) == ["clean", "cw-steps3-search_steps1", "cw"]
    assert by["cw"]["params"]["steps"] == 2 and by["cw"]["params"]["target"] == "ll"
    assert by["cw-steps3-search_steps1"]["params"]["steps"] == 3
    assert by["cw"]["setting"] == "κ=0, steps=2, search_steps=1, target ll"
    bad = CliRunner().invoke(app, ["make-sheets", "--methods", "pgd:steps=0", "--out", str(tmp_path / "q")])
    assert bad.exit_code != 0 and "error: --methods: pgd:steps=0: steps=0: a whole number, at least 1" in bad.stderr
    assert not (tmp_path / "q").exists()


# --- one declaration -------------------------------------------------------------------------

def test_the_cli_flags_are_the_declared_ones():
    import typer.main

    command = typer.main.get_command(app).commands["make-sheets"]
    opts = {o for p in command.params for o in p.opts}
    for f in method_flags():
        assert f.cli in opts
    declared = {f"--{m}-{o.name}".replace("_", "-") for m, options in METHOD_OPTIONS.items() for o in options
                if o.flag}
    declared = {d.replace("--eot-ll-", "--eot-") for d in declared}
    assert declared == {f.cli for f in method_flags()}
    assert {"--pgd-steps", "--pgd-restarts", "--cw-steps", "--cw-search-steps", "--cw-confidence", "--cw-least-likely",
            "--eot-samples", "--eot-step-factor", "--eot-digital", "--onepixel-pixels", "--onepixel-population",
            "--onepixel-generations"} <= opts
    help_text = next(p for p in command.params if p.name == "methods").help
    for m, options in METHOD_OPTIONS.items():
        assert f"{m}: " in help_text
        for o in options:
            assert f"{o.name}={o.text(o.default)}" in help_text


def test_the_readme_table_is_the_declarations():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- method-options -->\n(.*?)\n<!-- /method-options -->", text, re.S)
    assert block, "README: the method options table between <!-- method-options --> markers is missing"
    assert block.group(1) == options_markdown(), "README's method options table is stale: run scripts/readme_options.py"


# --- every target ----------------------------------------------------------------------------

def test_target_all_makes_a_variant_per_class():
    variants = plan_variants(parse_methods("cw:target=all,pgd:steps=5:target=all"), [8], classes=["cat", "dog", "owl"])
    assert [v.name for v in variants] == ["clean", "cw_t0", "cw_t1", "cw_t2", "pgd-steps5_t0_e8", "pgd-steps5_t1_e8",
                                          "pgd-steps5_t2_e8"]
    assert [v.target_class for v in variants[1:]] == [0, 1, 2, 0, 1, 2]
    assert variants[2].label == "cw →dog" and variants[6].label == "pgd steps5 →owl ε8"
    assert setting_text(variants[2]) == "κ=0, target dog"
    # The variants of one spec share a group, also when made on another model (--source).
    from physical.sheets.variants import with_sources

    assert [v.target_group for v in variants] == [None, "cw", "cw", "cw", "pgd-steps5_e8", "pgd-steps5_e8",
                                                  "pgd-steps5_e8"]
    other = [v for v in with_sources(variants, ["demo-adv"]) if v.source][:4]
    assert [(v.name, v.target_group) for v in other] == [
        ("cw_t0_from-demo-adv", "cw_from-demo-adv"), ("cw_t1_from-demo-adv", "cw_from-demo-adv"),
        ("cw_t2_from-demo-adv", "cw_from-demo-adv"), ("pgd-steps5_t0_e8_from-demo-adv", "pgd-steps5_e8_from-demo-adv")]
    assert other[1].label == "cw →dog from demo-adv"
    with pytest.raises(ValueError, match="target all makes a variant per class, 21 for this model"):
        plan_variants(parse_methods("cw:target=all"), [8], classes=[str(k) for k in range(21)])
    # --targets sets the targeted methods' default and leaves the others alone.
    from physical.attacks.spec import targets_defaults

    assert targets_defaults("all", ["fast", "cw", "pgd"]) == {"cw": {"target": "all"}, "pgd": {"target": "all"}}
    with pytest.raises(ValueError, match="none of the methods is targeted"):
        targets_defaults("all", ["fast", "bim"])
    with pytest.raises(ValueError, match="choose ll"):
        targets_defaults("some", ["cw"])


def test_targets_all_end_to_end_the_grid_and_the_targeted_success(tmp_path):
    """--targets all with pgd: a variant per class with its target recorded, the diagonal the picture
    itself, target-grid.pdf drawn, and the report's targeted success counted from exactly those files."""
    import pypdfium2 as pdfium

    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", count=3, methods=["pgd:steps=5"], eps=[8], targets="all", seed=3)
    m = r.manifest
    assert m["attack"]["targets"] == "all" and m["layout"]["target_grid"] == "target-grid.pdf"
    assert len(pdfium.PdfDocument(str(tmp_path / "p" / "target-grid.pdf"))) == 1
    hits, n = 0, 0
    for rec in m["images"]:
        by = {v["name"]: v for v in rec["variants"]}
        assert [by[f"pgd-steps5_t{k}_e8"]["target"] for k in range(10)] == list(range(10))
        assert {by[f"pgd-steps5_t{k}_e8"]["target_group"] for k in range(10)} == {"pgd-steps5_e8"}
        own = by[f"pgd-steps5_t{rec['label']}_e8"]
        assert own["perturbation"] == {"l0": 0, "l2": 0.0, "linf": 0}      # the diagonal: the picture itself
        for k in range(10):
            if k != rec["label"]:
                n += 1
                hits += by[f"pgd-steps5_t{k}_e8"]["top5"][0]["index"] == k
    assert hits >= n // 2                          # 5 steps at eps 8 reach most targets on the demo model

    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest

    simulate_photos(tmp_path / "p", tmp_path / "photos", seed=1)
    ingest(tmp_path / "photos", printouts=tmp_path / "p", out=tmp_path / "c")
    rep = make_report(tmp_path / "c", printouts=tmp_path / "p", artificial=False)
    rows = [f for f in rep.figures if f["table"] == "targeted" and f["variant"] == "digital_adv"
            and f["source"] == "photo"]
    assert len(rows) == 10
    assert sum(f["k"] for f in rows) == hits and sum(f["n"] for f in rows) == n
    # The terminal pools the targets: the digital cell counts each picture and target once (not once a source).
    from rich.console import Console

    from physical.report.terminal import render_targeted

    console = Console(width=200, record=True)
    for table in render_targeted(rep.figures, m, "demo"):
        console.print(table)
    assert f"{round(100 * hits / n)}%  n={n}" in console.export_text()
    photo = [f for f in rep.figures if f["table"] == "targeted" and f["variant"] == "transformed_adv"
             and f["source"] == "photo"]
    assert sum(f["n"] for f in photo) >= 1 and all(f["k"] <= f["n"] for f in photo)
    # The photographed grid: a cell per crop of a grid picture's targeted variant.
    html = (rep.out / "report.html").read_text(encoding="utf-8")
    grid = html[html.index('id="target-grid"'):]
    grid = grid[:grid.index("</table>")]
    import csv

    from physical.sheets.target_grid import grid_rows

    rows_shown = {rec["id"] for rec in grid_rows(m["images"])}    # the first picture of each class

    preds = list(csv.DictReader((rep.out / "predictions.csv").open(encoding="utf-8")))
    want = {(p["image_id"], p["variant"]) for p in preds if p["model"] == "demo" and p["image_id"] in rows_shown
            and p["variant"].startswith("pgd-steps5_t")}
    assert grid.count("<img ") == len(want) > 0
    # Made again without targets: the old grid goes with the old experiment.
    make_sheets(tmp_path / "p", count=1, methods=["fast"], eps=[8], force=True)
    assert not (tmp_path / "p" / "target-grid.pdf").exists()


def test_experiments_made_before_targets_were_recorded_still_count_their_least_likely_target():
    from physical.report.figures import variant_targets

    manifest = {"images": [{"id": "a", "label": 1, "least_likely": 7, "variants": [
        {"name": "clean", "method": None}, {"name": "cw", "method": "cw", "params": {"target": "least-likely"}},
        {"name": "lbfgs", "method": "lbfgs", "params": {"target": "least-likely"}},
        {"name": "pgd_e8", "method": "pgd", "params": {"eps": 8}}]}]}
    assert variant_targets(manifest) == {("a", "cw"): 7, ("a", "lbfgs"): 7}


def test_the_iterative_least_likely_method_aims_at_any_class(demo_model, demo_batch):
    """ll:target=all: the paper's iteration (alpha one level, its steps) towards each class in turn; the bare
    ll keeps the least-likely class (attack_grid's)."""
    from physical.attacks import attack_grid, least_likely, least_likely_class
    from physical.attacks.spec import targeted_methods
    from physical.sheets.variants import AttackSettings, run_attack

    assert targeted_methods() == ("ll", "pgd", "cw", "cw_l0", "cw_linf", "lbfgs")
    x, y = demo_batch[0][:4], demo_batch[1][:4]
    variants = plan_variants(parse_methods("ll:target=all"), [4], classes=[str(k) for k in range(10)])[1:]
    y_ll = least_likely_class(demo_model, x)
    for v in variants[:3]:
        got = run_attack(v, demo_model, x, y, y_ll, AttackSettings(), 0)
        want = least_likely(demo_model, x, 4 / 255, target=torch.full_like(y, v.target_class))
        assert torch.equal(got, want)
    grid = attack_grid(demo_model, x, y, [4 / 255], ["ll"])[("ll", 4 / 255)]
    assert (grid - least_likely(demo_model, x, 4 / 255)).abs().max().item() < 1e-6


def test_an_experiment_made_before_specs_still_reports(tmp_path):
    """The format-1 printouts of the test data (no setting, params, perturbation or specs) report as before,
    with the new columns filled from their PNG files."""
    import shutil

    from physical.report.run import make_report

    shutil.copytree(Path(__file__).parent / "data" / "printouts-format1", tmp_path / "p")
    rep = make_report(tmp_path / "c", printouts=tmp_path / "p", simulated_only=True, artificial=False)
    rows = [f for f in rep.figures if f["attack"] == "fast_e8" and f["table"] == "accuracy"]
    assert rows and all(f["setting"] == "ε=8" and f["l0"] is not None and f["l0"] > 0 for f in rows)
    assert not [f for f in rep.figures if f["table"] in ("targeted", "transfer")]


def test_per_class_keeps_the_first_pictures_of_each_class(demo_model):
    from physical.errors import PhysicalError
    from physical.sheets.pictures import load_pictures

    pictures, _ = load_pictures(demo_model, per_class=1)
    assert [p.label for p in pictures] == list(range(10))
    assert [p.source for p in pictures][:3] == ["airplane_0755.png", "automobile_0459.png", "bird_0565.png"]
    two, _ = load_pictures(demo_model, per_class=2, count=5, seed=1)
    assert len(two) == 5
    with pytest.raises(PhysicalError, match="--per-class needs labelled pictures"):
        load_pictures(demo_model, Path(__file__).parent / "data" / "printouts-format1" / "images", "predicted",
                      per_class=1)
