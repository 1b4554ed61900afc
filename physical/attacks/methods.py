"""The attack methods' names, order and eps rule: the one place every stage reads them from.

``METHODS`` is the order of every table, plot and label: the paper's three
(fast, basic iterative, least-likely; ``PAPER_METHODS``, make-sheets' default),
then the EoT methods, then the lecture series' other attacks (PGD, Carlini-Wagner,
L-BFGS, one-pixel). ``EPS_METHODS`` take an eps (one variant per eps); the others
find their own perturbation size. Eps is given in 0-255 intensity levels on the
command line and in [0, 1] to the attack functions.
"""
from __future__ import annotations

import math
from typing import Iterable

PAPER_METHODS = ("fast", "bim", "ll")
# Every method make-sheets knows, in the order of every table, plot and label: the paper's three,
# then Expectation over Transformation through the channel (attacks/eot.py), each beside the
# paper's method it extends.
METHODS = ("fast", "bim", "ll", "eot", "eot_ll", "pgd", "cw", "cw_l0", "cw_linf", "lbfgs", "onepixel", "lspga")
CHANNEL_METHODS = ("eot", "eot_ll")    # methods that attack through the simulated channel
EPS_METHODS = ("fast", "bim", "ll", "eot", "eot_ll", "pgd", "lspga")
METHOD_TITLES = {"fast": "fast (FGSM)", "bim": "basic iterative", "ll": "iterative least-likely",
                 "eot": "basic iterative, EoT", "eot_ll": "least-likely, EoT",
                 "pgd": "PGD (random start)", "cw": "Carlini-Wagner L2", "cw_l0": "Carlini-Wagner L0",
                 "cw_linf": "Carlini-Wagner L-inf", "lbfgs": "box-constrained L-BFGS",
                 "onepixel": "one-pixel (DE)", "lspga": "LS-PGA (thermometer's own)",
                 # not an attack: Szegedy et al.'s control beside transfer tables (make-sheets --source)
                 "noise": "Gaussian noise of the same L2"}
METHOD_SHORT = {"fast": "fast", "bim": "basic iter.", "ll": "least-likely", "eot": "EoT", "eot_ll": "EoT ll",
                "pgd": "PGD", "cw": "C&W", "cw_l0": "C&W L0", "cw_linf": "C&W L∞", "lbfgs": "L-BFGS", "onepixel": "one-pixel", "lspga": "LS-PGA",
                "noise": "noise"}


def method_rank(method: str) -> int:
    """Position in METHODS (the paper's three first); unknown names last."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def eps_steps(eps: float) -> int:
    """The paper's number of iterations: ``floor(min(eps*255 + 4, 1.25 * eps*255))``.

    ``eps`` is in [0, 1]; eps 2, 4, 8, 16 (/255) give 2, 5, 10, 20 steps.
    """
    # Round first: 4/255*255 is 3.9999999999999996 in floating point.
    levels = round(eps * 255, 6)
    return math.floor(min(levels + 4, 1.25 * levels))


EPS_MIN, EPS_MAX = 1, 64


def parse_eps_levels(values: str | Iterable[int | float | str]) -> list[int]:
    """Eps in 0-255 levels from ``"2,4,8,16"`` or a sequence; each a whole number in 1..64.

    Raises ValueError naming the bad value. Returns sorted unique levels.
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    levels: list[int] = []
    for item in items:
        text = str(item).strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value == value and value.is_integer() and EPS_MIN <= value <= EPS_MAX):
            raise ValueError(f"eps '{text}' is not a whole number of intensity levels in "
                             f"{EPS_MIN}..{EPS_MAX} (the paper uses 2,4,8,16)")
        levels.append(int(value))
    if not levels:
        raise ValueError("no eps given; e.g. --eps 2,4,8,16")
    return sorted(set(levels))
