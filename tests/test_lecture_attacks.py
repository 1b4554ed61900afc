"""The lecture series' other attacks: PGD, Carlini-Wagner, L-BFGS, one-pixel.

Each attack's contract (the eps-ball and the box, exactly d pixels, the 8-bit grid) and its
digital strength against an established implementation on the demo model: torchattacks'
PGD, CW and OnePixel, and scipy's L-BFGS-B run image by image.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from physical.attacks import cw, lbfgs, least_likely_class, onepixel, pgd
from physical.attacks.cw import margin
from physical.attacks.lbfgs import lbfgs_minimize, lbfgs_objective
from physical.photo_io import quantize_8bit

torchattacks = pytest.importorskip("torchattacks")


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _untouched(model, before) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and \
        all(p.grad is None for p in model.parameters())


@torch.no_grad()
def _pred(model, x):
    return model(x).argmax(dim=1)


# --- PGD -----------------------------------------------------------------------------------

def test_pgd_equals_torchattacks_from_the_same_random_start(demo_model, demo_batch):
    x, y = demo_batch
    eps = 8 / 255
    ours = pgd(demo_model, x, y, eps, steps=10, seed=5)
    torch.manual_seed(5)
    ref = torchattacks.PGD(demo_model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)(x, y)
    assert (ours - ref).abs().max().item() < 1e-6


def test_targeted_pgd_equals_torchattacks_targeted_from_the_same_random_start(demo_model, demo_batch):
    x, y = demo_batch
    t = least_likely_class(demo_model, x)
    ours = pgd(demo_model, x, y, 8 / 255, steps=10, seed=5, target=t)
    torch.manual_seed(5)
    atk = torchattacks.PGD(demo_model, eps=8 / 255, alpha=2.5 * 8 / 255 / 10, steps=10, random_start=True)
    atk.set_mode_targeted_by_label(quiet=True)
    assert (ours - atk(x, t)).abs().max().item() < 1e-6
    # 40 steps at eps 8 take every bundled picture to its least-likely class (measured: 20 of 20).
    hit = _pred(demo_model, pgd(demo_model, x, y, 8 / 255, seed=5, target=t)) == t
    assert int(hit.sum()) >= 18


def test_pgds_objectives_on_known_logits():
    from physical.attacks.pgd import objective

    z = torch.tensor([[2.0, 5.0, 1.0]])
    y1, y0, t2 = torch.tensor([1]), torch.tensor([0]), torch.tensor([2])
    # Untargeted margin: -max(Z_y - max_other + kappa, 0).
    assert objective(z, y1, None, "cw", 0.0).item() == -3.0
    assert objective(z, y1, None, "cw", 1.0).item() == -4.0
    assert objective(z, y0, None, "cw", 0.0).item() == 0.0       # already adversarial by 3
    assert objective(z, y0, None, "cw", 5.0).item() == -2.0      # 2 short of kappa 5
    # Targeted at 2: -max(max_other - Z_t + kappa, 0) = -(5 - 1).
    assert objective(z, y1, t2, "cw", 0.0).item() == -4.0
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(objective(z, y1, t2, "ce", 0.0), -ce(z, t2, reduction="none"))
    assert torch.allclose(objective(z, y1, None, "ce", 0.0), ce(z, y1, reduction="none"))


def test_pgd_on_the_cw_margin_with_confidence_goes_further_past_the_boundary(demo_model, demo_batch):
    """Madry et al.'s CW and CW+: PGD on the margin loss fools as PGD does, and a high kappa leaves the
    images much further past the boundary (kappa 0 stops pushing once adversarial)."""
    x, y = demo_batch
    ok = _pred(demo_model, x) == y
    plain = pgd(demo_model, x, y, 8 / 255, seed=0)
    cw0 = pgd(demo_model, x, y, 8 / 255, seed=0, loss="cw")
    cw20 = pgd(demo_model, x, y, 8 / 255, seed=0, loss="cw", confidence=20.0)
    fooled = [int((ok & (_pred(demo_model, a) != y)).sum()) for a in (plain, cw0, cw20)]
    assert fooled[1] >= fooled[0] - 1 and fooled[2] >= fooled[0] - 1
    with torch.no_grad():
        past0, past20 = (margin(demo_model(a), y, False)[ok] for a in (cw0, cw20))
    assert past20.mean().item() > past0.mean().item() + 3
    assert (past0 < 3).float().mean().item() >= 0.75    # kappa 0: most stop just past the boundary


def test_pgd_stays_in_the_eps_ball_and_the_box_and_leaves_the_model_alone(demo_model, demo_batch):
    x, y = demo_batch
    before = _params(demo_model)
    adv = pgd(demo_model, x, y, 4 / 255, steps=5, restarts=2, seed=1)
    assert (adv - x).abs().max().item() <= 4 / 255 + 1e-6
    assert adv.min().item() >= 0 and adv.max().item() <= 1
    assert (adv != x).any()
    assert _untouched(demo_model, before)
    # The same seed gives the same images.
    assert torch.equal(adv, pgd(demo_model, x, y, 4 / 255, steps=5, restarts=2, seed=1))


def test_pgd_restarts_keep_the_highest_loss_per_image(demo_model, demo_batch):
    x, y = demo_batch
    eps = 2 / 255          # small: images differ in which start is best

    def loss(a):
        with torch.no_grad():
            return F.cross_entropy(demo_model(a), y, reduction="none")

    single = torch.stack([loss(pgd(demo_model, x, y, eps, steps=3, seed=s)) for s in (10, 11, 12)])
    best_of_three = loss(pgd(demo_model, x, y, eps, steps=3, restarts=3, seed=10))
    assert torch.allclose(best_of_three, single.max(dim=0).values)
    assert (single.argmax(dim=0) > 0).any()        # a later restart won somewhere


# --- Carlini-Wagner ------------------------------------------------------------------------

def test_margin_is_positive_exactly_when_adversarial():
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5]])
    y = torch.tensor([0, 0])
    assert margin(logits, y, targeted=False).tolist() == [-2.0, 1.0]
    assert margin(logits, torch.tensor([1, 1]), targeted=True).tolist() == [-2.0, 1.0]


def test_cw_matches_torchattacks_success_and_l2(demo_model, demo_batch):
    """Same pictures, the same number of Adam steps in all (torchattacks has no search over c)."""
    x, y = demo_batch
    ok = _pred(demo_model, x) == y
    before = _params(demo_model)
    ours = cw(demo_model, x, y, steps=100, search_steps=5)
    ref = torchattacks.CW(demo_model, c=1, kappa=0, steps=500, lr=0.01)(x, y)
    assert _untouched(demo_model, before)
    ours_ok = ok & (_pred(demo_model, ours) != y)
    ref_ok = ok & (_pred(demo_model, quantize_8bit(ref)) != y)   # as it would be printed
    assert ours_ok.sum() >= ref_ok.sum()
    both = ours_ok & ref_ok
    l2 = lambda a: (a - x)[both].flatten(1).norm(dim=1).mean()  # noqa: E731
    assert l2(ours) <= 1.1 * l2(ref)


def test_cw_keeps_the_box_and_what_it_returns_is_adversarial_on_the_8bit_grid(demo_model, demo_batch):
    x, y = demo_batch
    x, y = x[:6], y[:6]
    adv = cw(demo_model, x, y, steps=30, search_steps=2, confidence=1.0)
    assert adv.min().item() >= 0 and adv.max().item() <= 1
    changed = (adv != x).flatten(1).any(dim=1)
    assert changed.any()
    assert torch.equal(adv[changed], quantize_8bit(adv[changed]))
    with torch.no_grad():
        assert (margin(demo_model(adv[changed]), y[changed], targeted=False) >= 1.0).all()
    # Without the 8-bit grid the attack keeps float images; with it never an image that rounds back.
    float_adv = cw(demo_model, x, y, steps=30, search_steps=2, grid8=False)
    assert not torch.equal(float_adv, quantize_8bit(float_adv))


def test_cw_targeted_at_the_least_likely_class(demo_model, demo_batch):
    x, _ = demo_batch
    x = x[:4]
    t = least_likely_class(demo_model, x)
    adv = cw(demo_model, x, _pred(demo_model, x), steps=60, search_steps=3, c=1.0, target=t)
    changed = (adv != x).flatten(1).any(dim=1)
    assert changed.any()
    assert torch.equal(_pred(demo_model, adv[changed]), t[changed])


# --- L-BFGS --------------------------------------------------------------------------------

def test_lbfgs_hands_scipy_the_exact_gradient(demo_model, demo_batch):
    """The objective scipy minimises, in float64: its gradient against central differences."""
    model = copy.deepcopy(demo_model).double()
    x = demo_batch[0][:1].double()
    t = least_likely_class(model, x)
    f = lbfgs_objective(model, x, t, 3.0)
    rng = np.random.default_rng(0)
    v = np.clip(x.numpy().ravel() + rng.normal(0, 0.02, x.numel()), 0, 1)
    _, g = f(v)
    for _ in range(3):
        d = rng.normal(size=v.size)
        d /= np.linalg.norm(d)
        h = 1e-7          # small against the ReLUs' kinks: a step of 1e-7 in input space
        numeric = (f(v + h * d)[0] - f(v - h * d)[0]) / (2 * h)
        assert numeric == pytest.approx(float(g @ d), rel=1e-5)


def test_lbfgs_runs_in_lockstep_find_what_scipy_finds_image_by_image(demo_model, demo_batch):
    """The batched, threaded runs against the reference: scipy's L-BFGS-B on one image at a
    time, with the objective written out here (float64, a different c per image)."""
    model = copy.deepcopy(demo_model).double()
    x = demo_batch[0][:3].double()
    t = least_likely_class(model, x)
    c = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    ours = lbfgs_minimize(model, x, t, c, max_iter=15)

    for i in range(3):
        xi = x[i:i + 1]

        def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
            xa = torch.from_numpy(v).view_as(xi).requires_grad_(True)
            f = c[i] * ((xa - xi) ** 2).sum() + F.cross_entropy(model(xa), t[i:i + 1])
            f.backward()
            return f.item(), xa.grad.numpy().ravel()

        ref = scipy.optimize.minimize(objective, xi.numpy().ravel(), jac=True, method="L-BFGS-B",
                                      bounds=[(0.0, 1.0)] * xi.numel(), options={"maxiter": 15})
        assert ref.nit == 15 or ref.success
        np.testing.assert_allclose(ours[i].numpy().ravel(), ref.x, atol=1e-6)
        assert not np.allclose(ref.x, xi.numpy().ravel(), atol=1e-3)     # it went somewhere


def test_lbfgs_reaches_the_least_likely_class_inside_the_box(demo_model, demo_batch):
    x, _ = demo_batch
    x = x[:3]
    before = _params(demo_model)
    adv = lbfgs(demo_model, x, search_steps=2, max_iter=30)
    assert _untouched(demo_model, before)
    assert adv.min().item() >= 0 and adv.max().item() <= 1
    t = least_likely_class(demo_model, x)
    changed = (adv != x).flatten(1).any(dim=1)
    assert changed.sum() >= 2
    assert torch.equal(_pred(demo_model, adv[changed]), t[changed])
    assert torch.equal(adv, quantize_8bit(adv))


# --- one-pixel -----------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 3])
def test_onepixel_changes_exactly_d_pixels(demo_model, demo_batch, d):
    x, y = demo_batch
    x, y = x[:5], y[:5]
    adv = onepixel(demo_model, x, y, pixels=d, population=20, generations=3, seed=2)
    changed = (adv != x).any(dim=1).flatten(1).sum(dim=1)
    assert changed.tolist() == [d] * 5
    assert torch.equal(adv, quantize_8bit(adv))
    assert torch.equal(adv, onepixel(demo_model, x, y, pixels=d, population=20, generations=3, seed=2))


def test_onepixel_is_as_strong_as_torchattacks(demo_model, demo_batch):
    """The same budget (population 50, 6 generations) on the 20 bundled pictures."""
    x, y = demo_batch
    ok = _pred(demo_model, x) == y
    ours = onepixel(demo_model, x, y, pixels=1, population=50, generations=6, seed=0)
    torch.manual_seed(0)
    np.random.seed(0)
    ref = torchattacks.OnePixel(demo_model, pixels=1, steps=6, popsize=50, inf_batch=512)(x, y)
    ours_n = int((ok & (_pred(demo_model, ours) != y)).sum())
    ref_n = int((ok & (_pred(demo_model, ref) != y)).sum())
    assert ref_n >= 1                 # the budget can fool this model at all
    assert ours_n >= ref_n - 1        # a sample of 16 pictures: one picture's luck either way


# --- make-sheets ---------------------------------------------------------------------------

def test_make_sheets_records_every_variant_its_parameters_and_its_printed_perturbation(tmp_path):
    from PIL import Image

    from physical.sheets.run import make_sheets

    r = make_sheets(tmp_path / "p", count=2, methods=["bim", "pgd", "cw", "lbfgs", "onepixel"], eps=[8],
                    pgd_steps=5, cw_steps=10, cw_search_steps=1, onepixel_pixels=[1, 3],
                    onepixel_population=10, onepixel_generations=1)
    rec = r.manifest["images"][0]
    by_name = {v["name"]: v for v in rec["variants"]}
    assert list(by_name) == ["clean", "bim_e8", "pgd_e8", "cw", "lbfgs", "onepixel_d1", "onepixel_d3"]
    assert [by_name[n]["eps"] for n in by_name] == [0, 8, 8, None, None, None, None]
    # The setting shows every option away from its default (here set by the flags).
    assert [by_name[n]["setting"] for n in by_name] == [
        "", "ε=8", "ε=8, steps=5", "κ=0, steps=10, search_steps=1", "target ll",
        "d=1, population=10, generations=1", "d=3, population=10, generations=1"]
    assert by_name["pgd_e8"]["params"] == {"eps": 8, "steps": 5, "restarts": 1, "alpha": 4.0, "random_start": True,
                                           "loss": "ce", "confidence": 0.0, "target": "none"}
    assert by_name["onepixel_d3"]["params"]["pixels"] == 3
    assert by_name["cw"]["params"]["steps"] == 10 and by_name["cw"]["params"]["target"] == "none"
    clean = np.asarray(Image.open(tmp_path / "p" / by_name["clean"]["file"]), dtype=np.int64)
    for name, v in by_name.items():
        img = np.asarray(Image.open(tmp_path / "p" / v["file"]), dtype=np.int64)
        d = img - clean
        # The manifest's perturbation is the saved PNG's, in 0-255 units.
        assert v["perturbation"] == {"l0": int((np.abs(d).max(axis=2) > 0).sum()),
                                     "l2": round(float(np.sqrt((d ** 2).sum())), 3), "linf": int(np.abs(d).max())}
    assert by_name["onepixel_d1"]["perturbation"]["l0"] == 1
    assert by_name["onepixel_d3"]["perturbation"]["l0"] == 3
    assert by_name["pgd_e8"]["perturbation"]["linf"] <= 8
