"""Destruction rate and intervals on small hand-made cases, with exact expected values."""
from __future__ import annotations

import pytest

from physical.report.metrics import Rate, accuracy, correct_at, destruction_rate, wilson_interval


def test_destruction_rate_counts_only_working_adversarial_examples():
    #            clean  adv    photo
    rows = [(True, False, True),    # destroyed by the photo      -> counts 1/1
            (True, False, False),   # survived                    -> counts 0/1
            (True, False, True),    # destroyed                   -> 1/1
            (True, True, True),     # adversarial never worked    -> excluded
            (False, False, True),   # clean already wrong         -> excluded
            (False, True, False)]   # excluded
    clean, adv, photo = zip(*rows)
    d = destruction_rate(clean, adv, photo)
    assert (d.k, d.n) == (2, 3)
    assert d.value == pytest.approx(2 / 3)


def test_empty_denominator_is_not_applicable_not_zero():
    d = destruction_rate([True, False], [True, True], [True, False])
    assert (d.k, d.n) == (0, 0)
    assert d.value is None and d.interval is None
    assert d.format() == "n/a (n=0)"
    assert d.as_dict() == {"k": 0, "n": 0, "value": None, "ci_low": None, "ci_high": None}
    assert destruction_rate([], [], []).format() == "n/a (n=0)"


def test_wilson_interval_exact_values():
    # Published Wilson 95% intervals (4 decimals): 2/3, 51/102, 0/10, 10/10.
    lo, hi = wilson_interval(2, 3)
    assert lo == pytest.approx(0.2077, abs=1e-4) and hi == pytest.approx(0.9385, abs=1e-4)
    lo, hi = wilson_interval(51, 102)
    assert lo == pytest.approx(0.4047, abs=1e-4) and hi == pytest.approx(0.5953, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_rate_formatting():
    assert Rate(2, 3).format() == "66.7% [20.8, 93.9] n=3"
    assert Rate(51, 102).format(0) == "50% [40, 60] n=102"


def test_accuracy_and_topk():
    assert accuracy([True, False, True, True]) == Rate(3, 4)
    assert correct_at([4, 1, 7, 0, 2], 7, 1) is False
    assert correct_at([4, 1, 7, 0, 2], 7, 5) is True
    assert correct_at([4, 1, 7, 0, 2], 4, 1) is True


def test_lengths_must_agree():
    with pytest.raises(ValueError):
        destruction_rate([True], [False, False], [True])
