"""Carlini and Wagner's L0 and L-infinity attacks (beside their L2 attack, tests/test_lecture_attacks.py).

On a linear two-class model the optimum is known in closed form: the smallest
L-infinity change is ``|margin| / ||w||_1`` (every value moved by it, along
sign w), and the fewest pixels are found greedily (the pixels that can move the
margin most, each taken to its box limit, until the margin flips). On the demo
model: targeted success as saved (8 bits), and each attack beats the L2 attack
on its own norm.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from physical.attacks import cw, cw_l0, cw_linf
from physical.attacks.cw import CW_LINF_TAU_DECAY, margin
from physical.photo_io import quantize_8bit

H = W = 4
# One weight per pixel (its three channels alike), all distinct: the order of the pixels'
# worth is unambiguous. Permuted so that the best pixels are not the first ones.
PIXEL_W = (1 + 0.25 * torch.arange(H * W, dtype=torch.float32))[torch.randperm(H * W, generator=torch.Generator().manual_seed(0))]
WEIGHT = PIXEL_W.view(1, H, W).expand(3, H, W).reshape(-1)
# Two images on the 8-bit grid, uniform grey (so a pixel's worth is its weight times its room).
LEVELS = (128, 120)


def _linear(need: float) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Logits (0, w.x + b): class 1 needs ``w.x`` to rise by more than ``need`` from the first image.
    Returns the model, the images (2, 3, H, W) and their margins for class 1 (negative: class 0)."""
    x = torch.stack([torch.full((3, H, W), v / 255) for v in LEVELS])
    lin = nn.Linear(3 * H * W, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[1] = WEIGHT
        lin.bias[1] = -(WEIGHT @ x[0].flatten()) - need
    model = nn.Sequential(nn.Flatten(), lin).eval().requires_grad_(False)
    with torch.no_grad():
        m = model(x)[:, 1] - model(x)[:, 0]
    return model, x, m


def _fewest_pixels(x: torch.Tensor, m: float) -> int:
    """The fewest pixels that flip the margin m < 0: every weight is positive, so a pixel at most
    adds 3 w (1 - x) (all channels to 1); take the largest first until the sum passes -m."""
    gain = (PIXEL_W * 3 * (1 - x[0].flatten())).sort(descending=True).values
    return int((gain.cumsum(0) <= -m).sum()) + 1


def _pixels(adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (adv != x).any(dim=1).flatten(1).sum(dim=1)


def _linf(adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (adv - x).abs().flatten(1).amax(dim=1)


@torch.no_grad()
def _class1_margin(model: nn.Module, adv: torch.Tensor) -> torch.Tensor:
    logits = model(adv)
    return logits[:, 1] - logits[:, 0]


# --- linear model: the closed-form optimum -----------------------------------------------------

def test_cw_linf_finds_the_smallest_linf_change_of_a_linear_model():
    model, x, m = _linear(2.0)
    y = torch.zeros(2, dtype=torch.long)
    eps = -m / WEIGHT.abs().sum()                          # the closed form, per image
    assert (eps * 255).tolist() == pytest.approx([3.696, 11.696], abs=1e-3)

    # Unrounded: tau comes down by tau_decay while a round succeeds, so it ends within that factor.
    adv = cw_linf(model, x, y, grid8=False)
    assert (_class1_margin(model, adv) > 0).all()
    assert (_linf(adv, x) >= eps - 1e-6).all()
    assert (_linf(adv, x) <= eps / CW_LINF_TAU_DECAY + 1e-6).all()

    # On the 8-bit grid the optimum is the smallest level k with k / 255 * ||w||_1 > -m: found exactly.
    adv8 = cw_linf(model, x, y, target=torch.ones(2, dtype=torch.long))
    levels = [math.floor(v) + 1 for v in (eps * 255).tolist()]
    assert levels == [4, 12]
    assert (_linf(adv8, x) * 255).round().tolist() == levels
    assert torch.equal(adv8, quantize_8bit(adv8))
    assert (_class1_margin(model, adv8) > 0).all()


def test_cw_l0_finds_the_fewest_pixels_of_a_linear_model_or_one_more():
    model, x, m = _linear(19.0)
    fewest = [_fewest_pixels(x[i], float(m[i])) for i in range(2)]
    assert fewest == [3, 4]
    adv = cw_l0(model, x, torch.zeros(2, dtype=torch.long), steps=100, search_steps=4, lr=0.05)
    assert (_class1_margin(model, adv) > 0).all()
    got = _pixels(adv, x).tolist()
    assert all(f <= g <= f + 1 for f, g in zip(fewest, got)), (got, fewest)
    # The pixels kept are the ones worth most.
    top = PIXEL_W.argsort(descending=True)[:fewest[0]]
    assert set((adv[0] != x[0]).any(dim=0).flatten().nonzero()[:, 0].tolist()) >= set(top.tolist())
    # The L2 attack, unrestricted, spreads its change over (nearly) every pixel.
    assert (_pixels(cw(model, x, torch.zeros(2, dtype=torch.long), steps=100, search_steps=4), x) > 8).all()


def test_cw_with_a_mask_changes_only_the_masked_pixels():
    model, x, m = _linear(5.0)
    mask = torch.zeros(2, 1, H, W)
    mask[:, :, :2] = 1                                   # the top half of the picture
    adv = cw(model, x, torch.zeros(2, dtype=torch.long), steps=100, search_steps=3, mask=mask)
    assert (_class1_margin(model, adv) > 0).all()
    assert torch.equal(adv[:, :, 2:], x[:, :, 2:])
    assert (adv[:, :, :2] != x[:, :, :2]).any()
    # A picture off the 8-bit grid stays as it is outside the mask, rounded as it is.
    off = (x + 0.3 / 255).clamp(0, 1)
    adv = cw(model, off, torch.zeros(2, dtype=torch.long), steps=50, search_steps=3, mask=mask)
    assert torch.equal(adv[:, :, 2:], off[:, :, 2:])


# --- the demo model: success as saved, and each norm's attack beats L2 on it -----------------------

@pytest.fixture(scope="module")
def demo_attacks(demo_model, demo_batch):
    """Three pictures the model gets right, a random other class each, and the three attacks."""
    x, y = demo_batch
    with torch.no_grad():
        right = demo_model(x).argmax(dim=1) == y
    x, y = x[right][:3], y[right][:3]
    target = (y + torch.randint(1, 10, (3,), generator=torch.Generator().manual_seed(1))) % 10
    kw = dict(target=target, steps=20, search_steps=3, lr=0.05)          # a coarse, quick L2 attack
    return x, y, target, {"l2": cw(demo_model, x, y, **kw), "l0": cw_l0(demo_model, x, y, drop=0.2, **kw),
                          "linf": cw_linf(demo_model, x, y, target=target, steps=20)}


@pytest.mark.parametrize("name", ["l2", "l0", "linf"])
def test_targeted_success_on_the_8bit_image_and_the_box(demo_model, demo_attacks, name):
    x, y, target, adv = demo_attacks
    a = adv[name]
    assert a.min().item() >= 0 and a.max().item() <= 1
    changed = (a != x).flatten(1).any(dim=1)
    assert changed.all(), f"{name}: {int(changed.sum())} of 3 pictures attacked"
    assert torch.equal(a[changed], quantize_8bit(a[changed]))
    with torch.no_grad():
        assert torch.equal(demo_model(quantize_8bit(a[changed])).argmax(dim=1), target[changed])
        assert (margin(demo_model(a[changed]), target[changed], targeted=True) > 0).all()
    # Unchanged pictures are the ones the attack could not do: still their own class.
    with torch.no_grad():
        assert torch.equal(demo_model(a[~changed]).argmax(dim=1), y[~changed])


def test_l0_changes_fewer_pixels_and_linf_less_at_most_than_l2(demo_attacks):
    x, _, _, adv = demo_attacks
    both = (adv["l2"] != x).flatten(1).any(dim=1) & (adv["l0"] != x).flatten(1).any(dim=1) \
        & (adv["linf"] != x).flatten(1).any(dim=1)
    assert both.all()
    l0 = {k: _pixels(a[both], x[both]).float().mean().item() for k, a in adv.items()}
    linf = {k: _linf(a[both], x[both]).mean().item() * 255 for k, a in adv.items()}
    assert l0["l0"] < l0["l2"] / 2, l0
    assert linf["linf"] < linf["l2"], linf


# --- argument checks ----------------------------------------------------------------------------

BAD = [
    (cw_linf, {"steps": 0}), (cw_linf, {"confidence": -1.0}), (cw_linf, {"tau0": 0.0}), (cw_linf, {"tau0": 1.5}),
    (cw_linf, {"tau_decay": 1.0}), (cw_linf, {"tau_decay": 0.0}), (cw_linf, {"c0": 0.0}),
    (cw_linf, {"c0": 10.0, "c_max": 1.0}), (cw_linf, {"lr": 0.0}), (cw_linf, {"target": torch.zeros(3, dtype=torch.long)}),
    (cw_l0, {"steps": 0}), (cw_l0, {"search_steps": 0}), (cw_l0, {"confidence": -0.5}), (cw_l0, {"drop": 1.0}),
    (cw_l0, {"drop": -0.1}), (cw_l0, {"target": torch.zeros(2, 1, dtype=torch.long)}),
    (cw, {"mask": torch.ones(2, 2, H, W)}), (cw, {"mask": torch.full((2, 1, H, W), 0.5)}),
]


@pytest.mark.parametrize("attack, kwargs", BAD, ids=[f"{a.__name__}-{'-'.join(k)}" for a, k in BAD])
def test_bad_arguments_raise_value_error(attack, kwargs):
    model, x, _ = _linear(1.0)
    with pytest.raises(ValueError):
        attack(model, x, torch.zeros(2, dtype=torch.long), **kwargs)


@pytest.mark.parametrize("attack", [cw_l0, cw_linf])
def test_images_outside_the_box_or_not_nchw_raise_value_error(attack):
    model, x, _ = _linear(1.0)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(model, x * 2, y)
    with pytest.raises(ValueError, match="N, C, H, W"):
        attack(model, x.flatten(1), y)
    with pytest.raises(ValueError, match="y must be"):
        attack(model, x, y[:1])


# --- make-sheets ---------------------------------------------------------------------------------

def test_make_sheets_runs_the_three_norms_and_each_wins_on_its_own(tmp_path):
    """cw, cw_l0 and cw_linf as make-sheets methods: every saved image adversarial as saved, and per
    picture L0 changes the fewest pixels and L-infinity the smallest largest change (20 Adam steps)."""
    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", count=2, methods=["cw:steps=20:search_steps=2", "cw_l0:steps=20:search_steps=2",
                                                      "cw_linf:steps=20"], eps=[8])
    for rec in r.manifest["images"]:
        by = {v["method"]: v for v in rec["variants"] if v["method"]}
        assert list(by) == ["cw", "cw_l0", "cw_linf"]
        assert all(v["top5"][0]["index"] != rec["label"] for v in by.values())
        size = {m: v["perturbation"] for m, v in by.items()}
        assert size["cw_l0"]["l0"] < size["cw"]["l0"] and size["cw_l0"]["l0"] < size["cw_linf"]["l0"]
        assert size["cw_linf"]["linf"] <= size["cw"]["linf"] and size["cw_linf"]["linf"] < size["cw_l0"]["linf"]
        assert by["cw_linf"]["params"]["grid8"] is True and by["cw_l0"]["params"]["drop"] == 0.1
