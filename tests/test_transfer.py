"""Transfer tables (Szegedy et al., Madry et al.'s sources A, A', B): one experiment attacked on several
source models, every crop classified by several models, with Gaussian noise of the same size as control.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from physical.sheets.variants import gaussian_like


def test_the_noise_has_the_adversarial_images_l2_picture_by_picture():
    clean = torch.full((3, 3, 8, 8), 0.5)
    adv = clean.clone()
    adv[0, 0, 0, 0] += 0.3                     # L2 0.3
    adv[1] += 0.01                             # L2 0.01 * sqrt(192)
    noise = gaussian_like(adv, clean, [1, 2, 3])
    for i, want in enumerate([0.3, 0.01 * 192 ** 0.5, 0.0]):
        assert abs((noise[i] - clean[i]).pow(2).sum().sqrt().item() - want) < 1e-5
    assert torch.equal(noise, gaussian_like(adv, clean, [1, 2, 3]))          # seeded
    assert (noise[0] - clean[0]).ne(0).float().mean() > 0.9                    # spread, not one pixel


@pytest.fixture(scope="module")
def transfer_experiment(tmp_path_factory):
    """Three sources (demo, demo-adv, demo-distilled), printed, photographed by the virtual camera, ingested,
    and classified by four models (the three and demo behind 4-bit depth reduction)."""
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    root = tmp_path_factory.mktemp("transfer")
    sheets = make_sheets(root / "printouts", count=3, methods=["bim"], eps=[8], seed=2,
                         sources=["demo-adv", "demo-distilled"])
    simulate_photos(root / "printouts", root / "photos", seed=4)
    ingest(root / "photos", printouts=root / "printouts", out=root / "captures")
    report = make_report(root / "captures", printouts=root / "printouts", artificial=False,
                         models=["demo-adv", "demo-distilled", "demo+bits:4"])
    return root, sheets.manifest, report


def test_each_source_makes_its_own_variants_and_the_noise_control(transfer_experiment):
    root, m, _ = transfer_experiment
    assert m["attack"]["sources"] == ["demo-adv", "demo-distilled"]
    names = [v["name"] for v in m["images"][0]["variants"]]
    assert names == ["clean", "bim_e8", "bim_e8_from-demo-adv", "bim_e8_from-demo-distilled", "noise-bim_e8",
                     "noise-bim_e8_from-demo-adv", "noise-bim_e8_from-demo-distilled"]
    for rec in m["images"]:
        by = {v["name"]: v for v in rec["variants"]}
        assert by["bim_e8_from-demo-adv"]["source"] == "demo-adv" and "source" not in by["bim_e8"]
        assert by["bim_e8_from-demo-adv"]["setting"] == "ε=8, from demo-adv"
        for name in ("bim_e8", "bim_e8_from-demo-adv"):
            # The noise's printed L2 is the attack's, to within the 8-bit rounding and the [0, 1] clip.
            want, got = by[name]["perturbation"]["l2"], by[f"noise-{name}"]["perturbation"]["l2"]
            assert abs(got - want) <= 0.03 * want + 8, (name, want, got)
    # The source's images are its own attack: the basic iterative method on demo-adv, exactly.
    from physical.attacks import basic_iterative
    from physical.models import load_model, quantize_8bit

    rec = m["images"][0]
    png = lambda name: torch.from_numpy(np.array(Image.open(root / "printouts" / f"images/{rec['id']}_{name}.png"))
                                        ).permute(2, 0, 1).float()[None] / 255   # noqa: E731
    adv_model = load_model("demo-adv", device="cpu")
    want = quantize_8bit(basic_iterative(adv_model, png("clean"), torch.tensor([rec["label"]]), 8 / 255))
    assert (png("bim_e8_from-demo-adv") - want).abs().max().item() <= 1 / 255 + 1e-6


def test_the_transfer_table_counts_every_model_on_every_sources_images(transfer_experiment):
    _, m, report = transfer_experiment
    rows = [f for f in report.figures if f["table"] == "transfer"]
    models = ["demo", "demo-adv", "demo-distilled", "demo+bits:4"]
    assert list(dict.fromkeys(r["model"] for r in rows)) == models
    assert {r["source"] for r in rows} == {"digital", "photo", "simulated:typical"}
    attacks = [v["name"] for v in m["images"][0]["variants"] if v["method"]]
    for model in models:
        for source in ("digital", "photo"):
            assert [r["attack"] for r in rows if r["model"] == model and r["source"] == source] == attacks
    # A digital cell is exactly the errors of that model on those files; the experiment's own model's are
    # make-sheets' recorded predictions.
    for attack in attacks:
        cell = next(r for r in rows if r["model"] == "demo" and r["source"] == "digital" and r["attack"] == attack)
        wrong = sum(next(v for v in rec["variants"] if v["name"] == attack)["top5"][0]["index"] != rec["label"]
                    for rec in m["images"])
        assert (cell["k"], cell["n"]) == (wrong, 3)
    # The photographed cells count the crops, and say so with n.
    photo = [r for r in rows if r["source"] == "photo"]
    assert all(r["n"] >= 1 for r in photo) and all(0 <= r["k"] <= r["n"] for r in photo)
    # In the terminal, with the white-box cells marked.
    from rich.console import Console

    from physical.report.terminal import render_transfer

    console = Console(width=200, record=True)
    for table in render_transfer(report.figures, m):
        console.print(table)
    text = console.export_text()
    assert "Transfer: error rate" in text and "noise like demo-adv" in text and text.count("*") >= 3 * 3
    html = (report.out / "report.html").read_text(encoding="utf-8")
    assert 'id="transfer"' in html and html.count("made on</th>") == 3
