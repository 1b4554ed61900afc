"""The paper's figures: accuracy and destruction rate, with 95% intervals.

Pure functions on per-observation booleans, so they can be checked by hand.
An observation is one (image, variant) as the model saw it digitally, and one
transformed copy of it (a photo crop, or a simulated/artificial transform).

Destruction rate (Kurakin et al. 2016, Eq. 1), for top-1 or top-5 correctness C::

    d = sum_k C(X_k) (1 - C(Xadv_k)) C(T(Xadv_k)) / sum_k C(X_k) (1 - C(Xadv_k))

the fraction of adversarial examples that were working digitally (clean
correct, adversarial wrong) and that the transformation made correct again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    """k successes out of n, with its Wilson 95% interval; ``value`` is None when n == 0."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.k, self.n)

    def format(self, digits: int = 1) -> str:
        """``"42.0% [30.1, 54.9] n=50"``, or ``"n/a (n=0)"`` for an empty denominator."""
        if not self.n:
            return "n/a (n=0)"
        lo, hi = self.interval
        return f"{100 * self.value:.{digits}f}% [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}] n={self.n}"

    def as_dict(self) -> dict:
        lo_hi = self.interval
        return {"k": self.k, "n": self.n, "value": self.value,
                "ci_low": lo_hi[0] if lo_hi else None, "ci_high": lo_hi[1] if lo_hi else None}


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion k/n; None when n == 0.

    Chosen over the normal approximation because it stays inside [0, 1] and is
    sensible at k = 0 or k = n, which small destruction-rate cells often are.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clamp rounding noise: the exact interval contains 0 when k == 0 and 1 when k == n.
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def accuracy(correct: Iterable[bool]) -> Rate:
    values = [bool(c) for c in correct]
    return Rate(sum(values), len(values))


def destruction_rate(clean_ok: Sequence[bool], adv_ok: Sequence[bool],
                     transformed_ok: Sequence[bool]) -> Rate:
    """Eq. 1: among observations with clean correct and adversarial wrong, the share made correct again."""
    if not len(clean_ok) == len(adv_ok) == len(transformed_ok):
        raise ValueError("clean_ok, adv_ok and transformed_ok must have the same length")
    eligible = [t for c, a, t in zip(clean_ok, adv_ok, transformed_ok) if c and not a]
    return Rate(sum(bool(t) for t in eligible), len(eligible))


def correct_at(top_indices: Sequence[int], label: int, k: int) -> bool:
    """Top-k correctness: the true label is among the first k predicted indices."""
    return label in list(top_indices)[:k]
