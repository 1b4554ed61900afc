"""Expectation over Transformation through the channel: gradients, the attack's contract, make-sheets."""
from __future__ import annotations

import json

import pytest
import torch

from physical.attacks import eot, eot_gradient, eot_ll, least_likely_class
from physical.channel import NO_JPEG, apply_channel, sample_params
from physical.errors import PhysicalError


def test_gradient_through_the_channel_agrees_with_finite_differences():
    """Warp, print and light, blur (the smooth steps; no noise, no JPEG), float64, per-image params."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    p = sample_params(2, "harsh", seed=4)
    p["read_noise"].zero_()
    p["shot_noise"].zero_()
    p["jpeg_quality"].fill_(NO_JPEG)
    p = {k: v.double() if v.is_floating_point() else v for k, v in p.items()}

    def f(inp: torch.Tensor) -> torch.Tensor:
        return apply_channel(inp, p, differentiable=True)

    # Away from the clamp to [0, 1] (where the function has kinks), the gradient must be exact.
    assert bool(((f(x) > 0.01) & (f(x) < 0.99)).all())
    assert torch.autograd.gradcheck(f, (x.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_eot_gradient_reaches_the_input_and_is_the_sum_over_samples(demo_model, demo_batch):
    x, y = demo_batch
    x, y = x[:4], y[:4]
    g = eot_gradient(demo_model, x, y, 1.0, "typical", samples=3, seed=7)
    assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0
    # Chunking (a batch smaller than the K samples of one image) does not change the sum.
    g_small = eot_gradient(demo_model, x, y, 1.0, "typical", samples=3, seed=7, batch=2)
    assert torch.allclose(g, g_small, atol=1e-5, rtol=1e-4)
    # The same seed gives the same draws; another seed other ones.
    assert torch.equal(g, eot_gradient(demo_model, x, y, 1.0, "typical", samples=3, seed=7))
    assert not torch.allclose(g, eot_gradient(demo_model, x, y, 1.0, "typical", samples=3, seed=8))


def test_eot_stays_in_the_eps_ball_and_box_and_leaves_the_model_alone(demo_model, demo_batch):
    x, y = demo_batch
    x, y = x[:6], y[:6]
    before = {k: v.clone() for k, v in demo_model.state_dict().items()}
    eps = 8 / 255
    for adv in (eot(demo_model, x, y, eps, "typical", samples=2, steps=3),
                eot_ll(demo_model, x, eps, "typical", samples=2, steps=3)):
        assert adv.shape == x.shape
        assert float((adv - x).abs().max()) <= eps + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert float((adv - x).abs().max()) > 0
    assert all(torch.equal(v, demo_model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in demo_model.parameters())


def test_eot_fools_the_model_through_the_channel_more_than_bim(demo_model, demo_batch):
    """What EoT is for: after the channel, its images stay adversarial more often than bim's."""
    from physical.attacks import basic_iterative
    from physical.channel import simulate

    x, y = demo_batch
    with torch.no_grad():
        right = demo_model(x).argmax(1) == y
    x, y = x[right], y[right]
    eps = 8 / 255
    adv_bim = basic_iterative(demo_model, x, y, eps)
    adv_eot = eot(demo_model, x, y, eps, "typical", samples=8)
    survived = {}
    for name, adv in (("bim", adv_bim), ("eot", adv_eot)):
        wrong = 0
        with torch.no_grad():
            for seed in range(5):      # channel draws other than those the attack used
                wrong += int((demo_model(simulate(adv, "typical", seed=100 + seed)).argmax(1) != y).sum())
        survived[name] = wrong
    assert survived["eot"] > survived["bim"], survived


def test_eot_ll_targets_the_least_likely_class(demo_model, demo_batch):
    x, _ = demo_batch
    x = x[:8]
    adv = eot_ll(demo_model, x, 16 / 255, "typical", samples=4)
    with torch.no_grad():
        hit = demo_model(adv).argmax(1) == least_likely_class(demo_model, x)
    assert int(hit.sum()) >= 4


def test_eot_rejects_no_samples(demo_model, demo_batch):
    x, y = demo_batch
    with pytest.raises(ValueError, match="samples"):
        eot(demo_model, x[:1], y[:1], 8 / 255, samples=0)


def test_make_sheets_with_eot_records_channel_and_samples(tmp_path):
    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", count=4, methods=["bim", "eot", "eot_ll"], eps=[8], eot_samples=2)
    m = r.manifest
    assert m["attack"]["eot"] == {"channel": "typical", "samples": 2, "digital": 0.2, "steps": {"8": 10},
                                  "profile_fitted_on": None,
                                  "jpeg_gradient": "straight through"}
    names = [v["name"] for v in m["images"][0]["variants"]]
    assert names == ["clean", "bim_e8", "eot_e8", "eot_ll_e8"]
    again = make_sheets(tmp_path / "q", count=4, methods=["eot"], eps=[8], eot_samples=2)
    # Seeded: the same command makes the same EoT images.
    a = (tmp_path / "p" / m["images"][0]["variants"][2]["file"]).read_bytes()
    b = (tmp_path / "q" / again.manifest["images"][0]["variants"][1]["file"]).read_bytes()
    assert a == b
    with pytest.raises(PhysicalError, match="--channel"):
        make_sheets(tmp_path / "r", count=2, methods=["eot"], eps=[8], channel="nosuch")
    with pytest.raises(PhysicalError, match="--eot-samples"):
        make_sheets(tmp_path / "s", count=2, methods=["eot"], eps=[8], eot_samples=0)
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["attack"]["methods"] == ["bim", "eot", "eot_ll"]
