"""Stochastic activation pruning (--defense sap): the draw, its place after every ReLU, EoT, refusal, end to end."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from physical.defenses import defend, parse_defense
from physical.defenses.model import DefendedNet
from physical.defenses.sap import sap
from physical.errors import PhysicalError
from physical.models import Classifier


def test_a_lone_unit_is_always_kept_whole_and_nothing_comes_from_nothing():
    g = torch.Generator().manual_seed(0)
    h = torch.zeros(2, 5)
    h[0, 3] = 2.5
    out = sap(h, 100, g)
    assert torch.equal(out, h)        # p = 1: drawn every time, scaled by 1 / (1 - 0^r) = 1


def test_kept_units_are_rescaled_so_the_layer_is_unbiased():
    h = torch.tensor([[4.0, 2.0, 1.0, 1.0, 0.0]])
    g = torch.Generator().manual_seed(1)
    r = 2                              # 40% of 5 units
    draws = torch.stack([sap(h, 40, g) for _ in range(20000)])
    p = h / h.sum()
    keep = 1 - (1 - p) ** r
    # Each kept unit is h / keep, exactly; the mean over draws is h within Monte-Carlo error.
    kept = draws[:, 0, :4] != 0
    assert torch.allclose(draws[:, 0, :4][kept], (h[0, :4] / keep[0, :4]).expand(20000, 4)[kept])
    assert (draws[:, 0, 4] == 0).all()
    assert torch.allclose(draws.mean(0), h, atol=0.08)
    assert torch.allclose(kept.float().mean(0), keep[0, :4], atol=0.01)


def test_the_eot_gradient_is_the_mean_of_the_per_draw_gradients(demo_model, demo_batch):
    """samples=K averages the logits of K draws; its gradient equals the mean over the same K draws taken
    one image row at a time (the same generator, the same rows in the same order: the same masks)."""
    x = demo_batch[0][:3]
    k = 4
    eot = DefendedNet(demo_model, parse_defense("sap"), samples=k, seed=7)
    one = DefendedNet(demo_model, parse_defense("sap"), samples=1, seed=7)

    def grad(net, xs, reduce):
        xs = xs.clone().requires_grad_(True)
        reduce(net(xs)).backward()
        return xs.grad

    g_eot = grad(eot, x, lambda z: z[:, 0].sum())
    g_rows = grad(one, x.repeat(k, 1, 1, 1), lambda z: z[:, 0].sum() / k)
    assert torch.allclose(g_eot, g_rows.view(k, *x.shape).sum(0), atol=1e-6)
    # And the draws differ: one draw's gradient is not the mean.
    assert not torch.allclose(g_rows.view(k, *x.shape)[0] * k, g_eot, atol=1e-3)


def test_sap_prunes_a_copy_and_leaves_the_bare_model_alone(demo_model, demo_batch):
    x = demo_batch[0][:4]
    with torch.no_grad():
        before = demo_model(x)
        defended = defend(demo_model, parse_defense("sap:50"), samples=1, seed=0)
        a, b = defended(x), defended(x)
        after = demo_model(x)
    assert torch.equal(before, after)
    assert not torch.equal(a, b)                         # a fresh draw each pass
    again = defend(demo_model, parse_defense("sap:50"), samples=1, seed=0)
    with torch.no_grad():
        assert torch.equal(again(x), a)                  # seeded
    assert defended.defense["steps"][0]["name"] == "sap" and defended.defense["steps"][0]["param"] == 50


def test_a_model_without_relu_modules_is_refused_in_one_line():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 32 * 32, 10)

        def forward(self, x):
            return torch.nn.functional.relu(self.fc(x.flatten(1)))

    clf = Classifier(Functional(), model_id="mine", class_names=[str(i) for i in range(10)], input_size=(32, 32),
                     resize_size=32, mean=[0, 0, 0], std=[1, 1, 1], weights_sha256="x", interpolation="bilinear")
    with pytest.raises(PhysicalError, match="--defense sap: model mine has no nn.ReLU module"):
        defend(clf, parse_defense("sap"))


def test_make_sheets_with_sap_end_to_end_through_the_virtual_camera(tmp_path):
    from physical.capture.camera import simulate_photos
    from physical.capture.run import ingest
    from physical.report.figures import robust_accuracy
    from physical.report.run import make_report
    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", count=2, methods=["bim"], eps=[8], defense="sap", defense_samples=2)
    d = r.manifest["model"]["defense"]
    assert d["spec"] == "sap:200" and d["adaptive"] and d["attack_samples"] == 2
    na = make_sheets(tmp_path / "na", count=2, methods=["bim"], eps=[8], defense="sap", non_adaptive=True)
    assert "one draw of SAP a step" in na.manifest["model"]["defense"]["non_adaptive_attack"]
    simulate_photos(tmp_path / "p", tmp_path / "photos", seed=2)
    ingest(tmp_path / "photos", printouts=tmp_path / "p", out=tmp_path / "c")
    rep = make_report(tmp_path / "c", printouts=tmp_path / "p", artificial=False, defense_draws=2)
    photo = [row for row in robust_accuracy(rep.figures) if row["source"] == "photo" and row["attack"] == "bim_e8"]
    assert len(photo) == 1 and photo[0]["model"] == "demo+sap:200" and photo[0]["n"] >= 2
