"""The attacks, as plain functions on images in [0, 1], NCHW (the paper's section 2).

Images are tensors in [0, 1]; ``eps`` and ``alpha`` are in the same units (the
paper's eps = 8 intensity levels is ``8 / 255`` here). Every function is pure:
the model is used as it is (put it in eval mode), only the gradient with
respect to the input is computed, and no parameter ``.grad`` is touched.

One module per attack family:

- :mod:`.fgsm`: :func:`fast` (FGSM), ``clip01(x + eps * sign(grad J(x, y)))``;
- :mod:`.iterative`: :func:`basic_iterative` and :func:`least_likely`;
- :mod:`.grid`: :func:`attack_grid`, every (method, eps) of the three at once;
- :mod:`.eot`: :func:`eot` and :func:`eot_ll`, the iterative methods with Expectation over
  Transformation through the simulated print-and-photo channel (:mod:`physical.channel`);
- :mod:`.pgd`: :func:`pgd`, L-infinity PGD with a random start and restarts (Madry et al. 2018);
- :mod:`.cw`: Carlini and Wagner's attacks: :func:`cw` (L2, with a binary search over c),
  :func:`cw_l0` (the L2 attack on a shrinking set of pixels) and :func:`cw_linf` (a penalty on
  every change past tau, tau lowered while it succeeds);
- :mod:`.lbfgs`: :func:`lbfgs`, Szegedy et al.'s box-constrained L-BFGS (scipy) with a line search over c;
- :mod:`.onepixel`: :func:`onepixel`, the d-pixel attack by differential evolution (black box);
- :mod:`.lspga`: :func:`lspga`, Buckman et al.'s logit-space attack on a thermometer-encoded model
  (the encoding's own, non-adaptive attack);
- :mod:`.gradient`: the input gradient and ``Clip_{X,eps}`` they share;
- :mod:`.methods`: method names and order, the eps rule, ``--eps`` parsing.
"""
from .fgsm import fast
from .gradient import clip_eps, input_gradient
from .eot import EOT_DIGITAL, EOT_SAMPLES, eot, eot_gradient, eot_ll
from .cw import cw, cw_l0, cw_linf
from .grid import attack_grid
from .lbfgs import lbfgs
from .lspga import lspga
from .onepixel import onepixel
from .pgd import pgd
from .iterative import basic_iterative, least_likely, least_likely_class
from .methods import (CHANNEL_METHODS, EPS_MAX, EPS_METHODS, EPS_MIN, METHOD_SHORT, METHOD_TITLES, METHODS, PAPER_METHODS,
                      eps_steps, method_rank, parse_eps_levels)

__all__ = ["EPS_METHODS", "cw", "cw_l0", "cw_linf", "lbfgs", "lspga", "onepixel", "pgd", "CHANNEL_METHODS", "EOT_DIGITAL", "EOT_SAMPLES", "EPS_MAX", "EPS_MIN", "METHODS", "PAPER_METHODS", "eot", "eot_gradient",
           "eot_ll", "METHOD_SHORT", "METHOD_TITLES", "attack_grid", "basic_iterative",
           "clip_eps", "eps_steps", "fast", "input_gradient", "least_likely", "least_likely_class", "method_rank",
           "parse_eps_levels"]
