"""The paper's main finding, reproduced end to end on the demo model with virtual photos.

Kurakin et al. found that photos destroy fast-method (FGSM) adversarial
examples less often than least-likely-class ones. This runs the whole
pipeline (make-sheets, simulate-photos at normal difficulty, ingest, report)
on 200 CIFAR-10 test pictures from ../shared, so it skips without it. The
bundled 20 demo pictures give intervals of +-30 points, too wide to tell.
"""
from __future__ import annotations

import math

import pytest

from physical.capture.camera import simulate_photos
from physical.capture.run import ingest
from physical.sheets.run import make_sheets
from physical.report.figures import lookup, rate_of
from physical.report.run import make_report

N_PICTURES = 200
EPS = (2, 4, 8, 16)


@pytest.fixture(scope="module")
def photo_figures(shared_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper-finding")
    sheets = make_sheets(folder / "printouts", images=shared_dir / "data" / "cifar10" / "test",
                         count=N_PICTURES, seed=2026, methods=["fast", "ll"], eps=EPS)
    simulate_photos(folder / "printouts", folder / "photos", seed=2026, difficulty="normal")
    ingest(folder / "photos", printouts=folder / "printouts", out=folder / "captures")
    result = make_report(folder / "captures", printouts=folder / "printouts", simulated=None, artificial=False)
    assert result.n_photos == sheets.n_pages    # every page photographed and found
    return result.figures


def destruction(figures, method: str, eps: int):
    (row,) = lookup(figures, model="demo", source="photo", case="average", table="destruction",
                    method=method, eps=eps, metric="top1")
    return rate_of(row)


def test_photos_destroy_fast_examples_less_often_than_least_likely_ones(photo_figures):
    z = []
    for eps in EPS:
        fast, ll = destruction(photo_figures, "fast", eps), destruction(photo_figures, "ll", eps)
        assert fast.n >= 30 and ll.n >= 30, (eps, fast, ll)   # enough adversarial examples to compare
        assert fast.value < ll.value, (eps, fast, ll)
        # two-proportion z statistic, least-likely minus fast
        pooled = (fast.k + ll.k) / (fast.n + ll.n)
        z.append((ll.value - fast.value) / math.sqrt(pooled * (1 - pooled) * (1 / fast.n + 1 / ll.n)))
    # Stouffer's combination over the four eps: one-sided p < 0.001
    assert sum(z) / math.sqrt(len(z)) > 3.09, z
