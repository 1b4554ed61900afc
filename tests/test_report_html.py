"""report.html: self-contained, shows every figure, escapes data, picks the gallery's examples."""
from __future__ import annotations

import copy
import csv
import json
import re

import pytest
from PIL import Image

from conftest import build_small_experiment
from physical.report.metrics import Rate
from physical.report.html import choose_examples, notes_from_meta, render_html, write_html


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small real experiment: 4 pictures, fast and ll at eps 8, one simulated photo per page, reported."""
    from physical.report.run import make_report

    folder = build_small_experiment(tmp_path_factory.mktemp("html") / "d")
    make_report(folder / "captures", printouts=folder / "printouts", device="cpu", simulated=None)
    rep = folder / "captures" / "report"
    meta = json.loads((rep / "figures.json").read_text(encoding="utf-8"))
    with open(rep / "predictions.csv", newline="", encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    return {"folder": folder, "manifest": json.loads((folder / "printouts" / "manifest.json").read_text()),
            "figures": meta.pop("figures"), "meta": meta, "predictions": predictions}


def page(small, **kw):
    args = {"manifest": small["manifest"], "figures": small["figures"], "predictions": small["predictions"],
            "captures": small["folder"] / "captures", "printouts": small["folder"] / "printouts",
            "notes": notes_from_meta(small["meta"]), **kw}
    return render_html(**args)


def cards(text: str) -> int:
    return len(re.findall(r'<article class="card ', text))


def test_written_atomically_and_self_contained(small, tmp_path):
    plot = tmp_path / "dr.png"
    Image.new("RGB", (60, 40), (200, 30, 30)).save(plot)
    jpeg = tmp_path / "photo-plot.jpg"
    Image.new("RGB", (60, 40), (30, 30, 200)).save(jpeg)
    out = write_html(tmp_path / "rep" / "report.html", manifest=small["manifest"], figures=small["figures"],
                     predictions=small["predictions"], captures=small["folder"] / "captures",
                     printouts=small["folder"] / "printouts", plots=[plot, jpeg],
                     notes=notes_from_meta(small["meta"]))
    assert out == tmp_path / "rep" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    low = text.lower()
    for bad in ('src="http', "<link", "<script", "url(", "@import", "http://", "https://"):
        assert bad not in low, bad
    imgs = re.findall(r"<img\b[^>]*>", text)
    # 2 plots + 3 images per gallery example
    assert len(imgs) == 2 + 3 * cards(text) and cards(text) > 0
    for tag in imgs:
        src = re.search(r'src="([^"]*)"', tag).group(1)
        assert src.startswith("data:image/png;base64,"), tag[:80]
    assert "Figure 1. dr.png" in text and "Figure 2. photo-plot.jpg" in text
    # the header: experiment id, counting rule and prefilter definition
    assert small["manifest"]["experiment_id"] in text
    assert "each photo of a slot is one observation" in text and "confidence &gt;= 0.8" in text


def test_every_destruction_figure_and_na(small):
    figures = copy.deepcopy(small["figures"])
    # Make sure at least one empty denominator is present.
    row = next(f for f in figures if f["table"] == "destruction" and f["case"] == "prefiltered")
    row.update(k=0, n=0, value=None, ci_low=None, ci_high=None)
    text = page(small, figures=figures)
    dr = [f for f in figures if f["table"] == "destruction"]
    for f in dr:
        formatted = Rate(f["k"], f["n"]).format(0)
        assert formatted in text, formatted
    assert text.count("n/a (n=0)") == sum(f["n"] == 0 for f in dr) >= 1
    assert "0% [0, 0] n=0" not in text and "0 / 0<span class=\"n\">n=0" not in text
    # accuracy cells: "top-1 / top-5" and n
    acc = {(f["method"], f["eps"], f["variant"], f["metric"]): f for f in figures
           if f["table"] == "accuracy" and f["case"] == "average"}
    one, five = acc[("fast", 8, "transformed_adv", "top1")], acc[("fast", 8, "transformed_adv", "top5")]
    assert f'{100 * one["value"]:.0f} / {100 * five["value"]:.0f}<span class="n">n={one["n"]}</span>' in text


def test_simulated_source_next_to_photo(small):
    sim = [dict(f, source="simulated:phone", k=f["k"] if f["variant"].startswith("digital") else f["n"] // 2)
           for f in small["figures"]]
    text = page(small, figures=small["figures"] + sim)
    assert "simulated (phone)" in text
    # the digital figures agree between the sources: one digital column per clean/adversarial group of the
    # two accuracy tables, the robust-accuracy table's one and the targeted table's (ll aims at a class)
    assert text.count('class="dig">digital</th>') == 4 + 1 + 1 and "set</small>" not in text
    for f in sim:
        if f["table"] == "destruction":
            assert Rate(f["k"], f["n"]).format(0) in text
    # when they differ (e.g. not every page photographed), each source gets its own digital column
    other = [dict(f, k=f["n"] - f["k"]) if f["variant"].startswith("digital") else f for f in sim]
    diff = page(small, figures=small["figures"] + other)
    assert diff.count("photo set</small>") == 4 and diff.count("simulated (phone) set</small>") == 4
    # photo section first, simulated row right under the photo row of the same method and eps
    dr = text[text.index('class="fig dr multi"'):]
    first = dr.index("</tr>", dr.index("<tbody>"))
    assert ">photo<" in dr[:first] and "simulated (phone)" in dr[first:dr.index("</tr>", first + 5)]


def test_label_warning_and_escaping(small):
    assert "not ground truth" not in page(small)
    manifest = copy.deepcopy(small["manifest"])
    n_classes = len(manifest["model"]["class_names"])
    manifest["model"]["class_names"] = [f"<script>alert({i})</script>" for i in range(n_classes)]
    for rec in manifest["images"]:
        rec["label_from"] = "predicted"
        rec["source"] = 'x"><img src=http://evil/>.png'
    preds = [dict(p, true_name=f"<script>alert({p['true_label']})</script>") for p in small["predictions"]]
    text = page(small, manifest=manifest, predictions=preds, notes=["<b>note</b> & co"])
    assert "<script" not in text.lower() and "<img src=http://evil" not in text
    assert "&lt;script&gt;alert(" in text
    assert "x&quot;&gt;&lt;img src=http://evil/&gt;.png" in text
    assert "&lt;b&gt;note&lt;/b&gt; &amp; co" in text
    assert "not ground truth" in text


def test_gallery_count_and_missing_files(small, tmp_path):
    primary = small["manifest"]["model"]["id"]
    adv_crops = [p for p in small["predictions"] if p["model"] == primary and p["method"]]
    assert cards(page(small)) == min(8, len(adv_crops))
    assert cards(page(small, gallery=3)) == 3
    assert cards(page(small, gallery=0)) == 0
    # A missing crop is shown as such, not a crash.
    text = page(small, captures=tmp_path / "nowhere", gallery=2)
    assert cards(text) == 2 and text.count("missing<br>") == 2


def _row(image, variant, method, label, digital, photo):
    return {"model": "m", "crop": f"crops/{image}_{variant}.png", "photo": "p.jpg", "image_id": image,
            "variant": variant, "method": method, "eps": "8", "true_label": str(label), "true_name": "x",
            "digital_top5": " ".join(map(str, digital)), "digital_top5_probs": "0.9 0.05 0.03 0.01 0.01",
            "photo_top5": " ".join(map(str, photo)), "photo_top5_probs": "0.8 0.1 0.05 0.03 0.02"}


def test_choose_examples_kinds_and_balance():
    right, wrong = [0, 1, 2, 3, 4], [1, 0, 2, 3, 4]
    preds = []
    for i in range(6):
        img = f"img{i}"
        preds.append(_row(img, "clean", "", 0, right if i < 5 else wrong, right))
        # img0-1: destroyed; img2-4: survived; img5: clean already wrong (not fooled)
        preds.append(_row(img, "fast_e8", "fast", 0, wrong, right if i < 2 else wrong))
    got = choose_examples(preds, "m", 4)
    assert [k for k, _ in got] == ["destroyed", "destroyed", "survived", "survived"]
    assert len({p["image_id"] for _, p in got}) == 4
    kinds = {p["image_id"]: k for k, p in choose_examples(preds, "m", 10)}
    assert kinds == {"img0": "destroyed", "img1": "destroyed", "img2": "survived", "img3": "survived",
                     "img4": "survived", "img5": "not fooled"}
    assert choose_examples(preds, "other-model", 4) == []


def test_gallery_of_a_method_without_eps(small):
    """predictions.csv rows of a method without eps (eps empty) are chosen and labelled with their setting."""
    preds = [dict(p, variant="cw", method="cw", eps="", setting="κ=0") if p["method"] == "ll" else p
             for p in small["predictions"]]
    got = choose_examples(preds, small["manifest"]["model"]["id"], 8)
    assert {p["method"] for _, p in got} == {"fast", "cw"}
    text = page(small, predictions=preds)
    assert cards(text) == 8
    headers = re.findall(r"&middot; ([^&]*(?:&amp;[^&]*)?) &middot; true label", text)
    assert sorted(set(headers)) == ["C&amp;W κ=0", "fast ε=8"]
    # predictions.csv written before the setting column: eps gives it
    old = [{k: v for k, v in p.items() if k != "setting"} for p in small["predictions"]]
    assert "fast ε=8 &middot;" in page(small, predictions=old)
