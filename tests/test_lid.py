"""The LID detector's core: the estimator, the features, the logistic regression."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from physical.defenses.lid import LIDDetector, fit_detector, lid, lid_features, roc_auc, threshold_at


def _subspace(n: int, dim: int, ambient: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(ambient, dim, generator=g, dtype=torch.float64))[0]
    return torch.rand(n, dim, generator=g, dtype=torch.float64) @ basis.T


def test_the_estimator_finds_the_dimension_of_the_data():
    # Points filling a d-dimensional cube inside 40 dimensions: the MLE is close to d, and ordered by d.
    est = {d: lid(_subspace(2000, d), _subspace(2000, d), k=20, exclude_self=True).median().item() for d in (2, 5, 10)}
    assert est[2] < est[5] < est[10]
    for d, e in est.items():
        assert 0.7 * d < e < 1.3 * d, est
    with pytest.raises(ValueError, match="needs at least 21 reference points"):
        lid(torch.rand(3, 4), torch.rand(20, 4), k=20, exclude_self=True)


def test_features_depend_on_neither_the_order_nor_the_company_of_the_images(demo_model, demo_batch):
    x = demo_batch[0]
    reference, query = x, x[:6]
    f = lid_features(demo_model, query, reference, k=5)
    assert f.shape == (6, 20)           # 19 ReLU modules of the ResNet-20, and the logits
    perm = torch.randperm(len(reference), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lid_features(demo_model, query, reference[perm], k=5), f)
    assert torch.allclose(lid_features(demo_model, query.flip(0), reference, k=5), f.flip(0))
    assert torch.allclose(lid_features(demo_model, query, reference, k=5, batch_size=4), f)
    assert torch.isfinite(f).all() and (f > 0).all()


def test_the_regression_separates_what_differs_and_saves_exactly(tmp_path):
    g = np.random.default_rng(0)
    clean = g.normal(0, 1, size=(300, 4))
    adv = g.normal(0, 1, size=(300, 4)) + np.array([2.0, 0, 0, 1.0])
    det = fit_detector(np.vstack([clean, adv]), [False] * 300 + [True] * 300, torch.rand(3, 3, 4, 4))
    s_clean, s_adv = det.score(clean), det.score(adv)
    assert roc_auc(s_clean, s_adv) > 0.9
    t = threshold_at(s_clean, 0.05)
    assert abs((s_clean > t).mean() - 0.05) < 0.01
    det.save(tmp_path / "d.npz")
    back = LIDDetector.load(tmp_path / "d.npz")
    assert (back.mean, back.std, back.coef, back.intercept, back.k) == (det.mean, det.std, det.coef, det.intercept, det.k)
    assert np.array_equal(back.reference, det.reference) and back.reference.dtype == np.uint8
    (tmp_path / "bad.npz").write_bytes(b"not a detector")
    with pytest.raises(ValueError, match="not an LID detector written by physical"):
        LIDDetector.load(tmp_path / "bad.npz")
    assert roc_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0.5]), np.array([0.5])) == 0.5


def test_a_detector_trained_on_the_demo_keeps_its_reference_and_scores_any_image(demo_model, demo_batch):
    """8 bundled pictures as the reference, 6 to train on (clean, Gaussian noise, bim at eps 8), 6 to score:
    the recipe's mechanics (how well it detects needs hundreds of pictures: the benchmark's, not a test's)."""
    from physical.attacks import basic_iterative

    x, y = demo_batch
    g = torch.Generator().manual_seed(0)
    noisy = (x + torch.randn(x.shape, generator=g) * 8 / 255).clamp(0, 1)
    adv = basic_iterative(demo_model, x, y, 8 / 255)
    reference, train, test = slice(0, 8), slice(8, 14), slice(14, 20)
    from physical.defenses.lid import training_features

    f, labels = training_features(demo_model, x[reference], x[train], noisy[train], adv[train], k=5)
    assert f.shape == (18, 20) and labels.tolist() == [False] * 12 + [True] * 6
    det = fit_detector(f, labels, x[reference], k=5, model_id="demo")
    assert torch.equal(det.reference_images(), (x[reference] * 255).round() / 255)
    s_clean, s_adv = det.detect(demo_model, x[test]), det.detect(demo_model, adv[test])
    assert s_clean.shape == s_adv.shape == (6,) and ((0 <= s_adv) & (s_adv <= 1)).all()
    # A picture's score does not depend on the others scored with it.
    assert np.allclose(det.detect(demo_model, adv[test][:2]), s_adv[:2])
