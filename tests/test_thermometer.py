"""Thermometer encoding (Buckman et al. 2018): the code, its BPDA gradient, the network behind it."""
from __future__ import annotations

import torch

from physical.models.demo_net import CIFAR10_MEAN, CIFAR10_STD, ResNet20, build_net
from physical.models.thermometer import ThermometerNet, soft_thermometer, thermometer, thresholds


def test_the_code_is_the_value_in_unary_with_thresholds_between_levels():
    x = torch.tensor([0.0, 0.5, 1.0, 39 / 255]).view(1, 4, 1, 1)
    code = thermometer(x, 16).view(4, 16)
    assert code[0].sum() == 0 and code[2].sum() == 16
    assert code[1].tolist() == [1.0] * 8 + [0.0] * 8           # 0.5 >= (k + 1/2) / 16 for k <= 7
    assert code[3].tolist() == [1.0] * 2 + [0.0] * 14           # 39/255 = 0.153: above 1/32 and 3/32, below 5/32
    # No threshold is an 8-bit value: saving or printing an image cannot flip a bit by a hair.
    levels = thresholds(16).flatten() * 255
    assert ((levels - levels.round()).abs() > 0.01).all()


def test_the_backward_pass_is_the_soft_encodings_gradient():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 48, 4, 4, dtype=torch.float64)
    (thermometer(x, 16) * w).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (soft_thermometer(x, 16) * w).sum().backward()
    assert torch.equal(ours, x.grad)
    assert ours.abs().sum() > 0                                   # a gradient BPDA can follow
    assert torch.autograd.gradcheck(lambda z: soft_thermometer(z, 4), (torch.rand(1, 1, 2, 2, dtype=torch.float64) * 0.9
                                                                       + 0.05).requires_grad_(True))


def test_the_network_takes_standardised_images_like_every_demo_net():
    torch.manual_seed(0)
    net = build_net("ResNet20", None, 16).eval()
    assert isinstance(net, ThermometerNet) and net.net.stem[0].in_channels == 48
    x01 = torch.rand(3, 3, 32, 32)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(net((x01 - mean) / std), net.net(thermometer(x01, 16)), atol=1e-6)
    assert isinstance(net.net, ResNet20)
    # Its weights are the inner network's: the encoding has none.
    assert all(k.startswith("net.") for k in net.state_dict())


# --- LS-PGA, the encoding's own attack ---------------------------------------------------------

def _classifier(levels: int = 16):
    from physical.models import Classifier

    torch.manual_seed(0)
    net = build_net("ResNet20", 8, levels).eval()
    from physical.models.demo_net import CIFAR10_CLASSES

    return Classifier(net, model_id="t", class_names=CIFAR10_CLASSES, input_size=(32, 32),
                      resize_size=32, mean=CIFAR10_MEAN, std=CIFAR10_STD, weights_sha256="x", interpolation="bilinear")


def test_the_levels_within_eps_and_their_nearest_8_bit_values():
    from physical.attacks.lspga import reachable

    x = torch.tensor([128 / 255, 0.0]).view(1, 2, 1, 1)
    mask, value = reachable(x, 8 / 255, thresholds(16))
    # 120..136 around 128: bit 7 turns on at 119.5, bit 8 at 135.5 -> levels 8 (120..135) and 9 (136).
    assert mask[0, 0, 0, 0].nonzero().flatten().tolist() == [8, 9]
    assert (value[0, 0, 0, 0, [8, 9]] * 255).round().tolist() == [128, 136]
    # 0..8 around 0: level 0 (below 7.97) and level 1 (8).
    assert mask[0, 1, 0, 0].nonzero().flatten().tolist() == [0, 1]
    assert (value[0, 1, 0, 0, [0, 1]] * 255).round().tolist() == [0, 8]


def test_the_relaxed_code_of_a_certain_level_is_that_levels_thermometer_code():
    from physical.attacks.lspga import reachable, relaxed_code

    x = (torch.rand(2, 3, 4, 4) * 255).round() / 255
    mask, value = reachable(x, 16 / 255, thresholds(16))
    pick = torch.where(mask, torch.rand(mask.shape), torch.full(mask.shape, -torch.inf)).argmax(-1, keepdim=True)
    z = torch.full(mask.shape, -1e9).scatter(-1, pick, 0.0)
    assert torch.equal(relaxed_code(z, 1.0), thermometer(value.gather(-1, pick)[..., 0], 16))


def test_lspga_stays_in_the_ball_on_the_8_bit_grid_and_is_seeded():
    import pytest

    from physical.attacks import lspga

    clf = _classifier()
    x = (torch.rand(3, 3, 32, 32) * 255).round() / 255
    y = torch.tensor([1, 2, 3])
    adv = lspga(clf, x, y, 8 / 255, steps=3, seed=[4, 5, 6])
    assert (adv - x).abs().max().item() <= 8 / 255 + 1e-6
    assert torch.equal(adv * 255, (adv * 255).round())
    assert (adv != x).any()
    assert torch.equal(adv, lspga(clf, x, y, 8 / 255, steps=3, seed=[4, 5, 6]))
    from physical import load_model

    with pytest.raises(ValueError, match="thermometer-encoded model"):
        lspga(load_model("demo", device="cpu"), x, y, 8 / 255)


def test_make_sheets_runs_lspga_on_an_encoded_model_and_refuses_it_elsewhere(tmp_path):
    import pytest

    from physical.errors import PhysicalError
    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", model=_classifier(), methods=["bim", "lspga:steps=2"], eps=[8], count=2)
    rec = r.manifest["images"][0]
    by = {v["name"]: v for v in rec["variants"]}
    assert by["lspga-steps2_e8"]["params"] == {"eps": 8, "steps": 2, "step_size": 1.0, "anneal": 1.2}
    assert 0 < by["lspga-steps2_e8"]["perturbation"]["linf"] <= 8
    with pytest.raises(PhysicalError, match="--methods lspga: lspga attacks a thermometer-encoded model"):
        make_sheets(tmp_path / "q", methods=["lspga"], eps=[8], count=1)
