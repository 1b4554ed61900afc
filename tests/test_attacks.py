"""The paper's attacks: step rule, projection, agreement with torchattacks, grid sharing."""
from __future__ import annotations

import pytest
import torch

from physical import attacks
from physical.attacks import (attack_grid, basic_iterative, clip_eps, eps_steps, fast, least_likely,
                              least_likely_class, parse_eps_levels)

EPS = [2 / 255, 4 / 255, 8 / 255, 16 / 255]


@pytest.mark.parametrize("levels, steps", [(1, 1), (2, 2), (3, 3), (4, 5), (8, 10), (16, 20),
                                            (20, 24), (32, 36), (64, 68)])
def test_eps_step_rule(levels, steps):
    # floor(min(eps + 4, 1.25 eps)), eps in levels; the paper's 2,4,8,16 -> 2,5,10,20.
    assert eps_steps(levels / 255) == steps


def test_clip_eps_is_the_papers_clip():
    x = torch.tensor([0.0, 0.5, 1.0, 0.02, 0.99])
    x_adv = torch.tensor([0.5, 0.9, 0.0, -0.3, 1.4])
    eps = 0.1
    expected = torch.tensor([0.1, 0.6, 0.9, 0.0, 1.0])  # min(1, x+eps, max(0, x-eps, x'))
    assert torch.allclose(clip_eps(x_adv, x, eps), expected)


def test_projection_bounds_every_method_and_eps(demo_model, demo_batch):
    x, y = demo_batch
    grid = attack_grid(demo_model, x, y, EPS)
    assert len(grid) == 12
    for (method, eps), adv in grid.items():
        assert adv.shape == x.shape
        assert adv.min() >= 0 and adv.max() <= 1, method
        assert (adv - x).abs().max() <= eps + 1e-6, (method, eps)
        # Every method uses its whole budget somewhere.
        assert (adv - x).abs().max() >= eps - 1e-6, (method, eps)


def test_grid_equals_one_eps_at_a_time(demo_model, demo_batch):
    x, y = demo_batch
    grid = attack_grid(demo_model, x, y, EPS)
    for eps in EPS:
        torch.testing.assert_close(grid[("fast", eps)], fast(demo_model, x, y, eps), atol=1e-6, rtol=0)
        torch.testing.assert_close(grid[("bim", eps)], basic_iterative(demo_model, x, y, eps), atol=1e-6, rtol=0)
        torch.testing.assert_close(grid[("ll", eps)], least_likely(demo_model, x, eps), atol=1e-6, rtol=0)


def test_grid_needs_43_batch_passes_not_78(demo_model, demo_batch):
    # 1 gradient for all fast eps + 21 steps shared by bim and ll (one batch each step).
    x, y = demo_batch
    seen = []

    class Counting(torch.nn.Module):
        def forward(self, inp):
            seen.append(inp.shape[0])
            return demo_model(inp)

    attack_grid(Counting(), x, y, EPS)
    assert sum(seen) == 43 * len(x)
    assert len(seen) == 21  # 1 fast + 20 steps (step 10 carries two points: eps 8 branched, eps 16 shared)


def test_matches_torchattacks(demo_model, demo_batch):
    """Same tensors as torchattacks' FGSM and BIM (and BIM targeted at y_LL), image by image.

    Image by image because torchattacks averages the loss over the batch while
    physical sums it (so that an image's gradient does not depend on its batch):
    in a batch the two round differently, and a sign flip of a gradient
    component ~1e-8 of the largest can send a 20-step trajectory elsewhere. With
    one image the two losses are the same computation, bit for bit.
    """
    torchattacks = pytest.importorskip("torchattacks")
    x_all, y_all = demo_batch
    for i in range(len(x_all)):
        x, y = x_all[i:i + 1], y_all[i:i + 1]
        y_ll = least_likely_class(demo_model, x)
        for eps in (4 / 255, 16 / 255):
            steps = eps_steps(eps)
            ref_fgsm = torchattacks.FGSM(demo_model, eps=eps)(x, y)
            torch.testing.assert_close(fast(demo_model, x, y, eps), ref_fgsm, atol=1e-6, rtol=0)
            ref_bim = torchattacks.BIM(demo_model, eps=eps, alpha=1 / 255, steps=steps)(x, y)
            torch.testing.assert_close(basic_iterative(demo_model, x, y, eps), ref_bim, atol=1e-6, rtol=0)
            ll = torchattacks.BIM(demo_model, eps=eps, alpha=1 / 255, steps=steps)
            ll.set_mode_targeted_by_function(lambda images, labels: y_ll)
            torch.testing.assert_close(least_likely(demo_model, x, eps), ll(x, y), atol=1e-6, rtol=0)


def test_least_likely_target_is_fixed_from_the_clean_image(demo_model, demo_batch):
    x, _ = demo_batch
    eps = 16 / 255
    y_ll = demo_model(x).argmin(1)
    adv = least_likely(demo_model, x, eps)
    # Re-choosing the least likely class at every step would be a different
    # attack: compare with the explicit loop using the clean target throughout.
    x_ref = x.clone()
    for _ in range(eps_steps(eps)):
        _, g = attacks.input_gradient(demo_model, x_ref, y_ll)
        x_ref = clip_eps(x_ref - g.sign() / 255, x, eps)
    torch.testing.assert_close(adv, x_ref, atol=1e-6, rtol=0)
    # And it works: most pictures now go to their clean least-likely class.
    with torch.no_grad():
        hit = (demo_model(adv).argmax(1) == y_ll).float().mean().item()
    assert hit >= 0.5


def test_fast_lowers_demo_accuracy_on_bundled_pictures(demo_model, demo_batch):
    x, y = demo_batch
    with torch.no_grad():
        clean = (demo_model(x).argmax(1) == y).float().mean().item()
        adv = (demo_model(fast(demo_model, x, y, 8 / 255)).argmax(1) == y).float().mean().item()
    assert clean >= 0.7
    assert adv <= clean - 0.3


def test_attacks_leave_model_untouched(demo_model, demo_batch):
    x, y = demo_batch
    before = {k: v.clone() for k, v in demo_model.state_dict().items()}
    attack_grid(demo_model, x[:4], y[:4], EPS)
    assert not demo_model.training
    assert all(p.grad is None for p in demo_model.parameters())
    assert all(torch.equal(before[k], v) for k, v in demo_model.state_dict().items())


@pytest.mark.parametrize("text, expected", [("2,4,8,16", [2, 4, 8, 16]), ("16, 2", [2, 16]), ("1,64", [1, 64])])
def test_parse_eps_levels(text, expected):
    assert parse_eps_levels(text) == expected


@pytest.mark.parametrize("text", ["0", "65", "2.5", "x", "", "-4", "nan"])
def test_parse_eps_levels_rejects(text):
    with pytest.raises(ValueError, match="1..64"):
        parse_eps_levels(text) if text else parse_eps_levels(text + ",")


@pytest.mark.parametrize("method", ["pgd", "eot", "onepixel"])
def test_per_image_seeds_make_an_image_independent_of_its_batch(demo_model, demo_batch, method):
    # With one seed per image, an image's random draws come from its own seed alone: attacked
    # with others or alone, in another order, it gets the same draws (what lets make-sheets
    # split an experiment across processes and batches). Differences left: float reduction order.
    from physical.attacks import eot, onepixel, pgd

    x, y = demo_batch[0][:4], demo_batch[1][:4]
    seeds = [11, 22, 33, 44]
    run = {"pgd": lambda a, b, s: pgd(demo_model, a, b, 8 / 255, steps=5, seed=s),
           "eot": lambda a, b, s: eot(demo_model, a, b, 8 / 255, samples=2, steps=3, seed=s),
           "onepixel": lambda a, b, s: onepixel(demo_model, a, b, population=8, generations=3, seed=s)}[method]
    together = run(x, y, seeds)
    order = [2, 0, 3, 1]
    shuffled = run(x[order], y[order], [seeds[i] for i in order])
    alone = torch.cat([run(x[i:i + 1], y[i:i + 1], seeds[i:i + 1]) for i in range(4)])
    for other in (shuffled[torch.tensor(order).argsort()], alone):
        assert (other - together).abs().max() <= 1e-5
    # A different seed draws differently; one int still draws the batch together, as before.
    assert not torch.equal(run(x[:1], y[:1], [12]), together[:1])
    assert torch.equal(run(x, y, 5), run(x, y, 5))
    with pytest.raises(ValueError, match="3 seeds for 4 images"):
        run(x, y, seeds[:3])
