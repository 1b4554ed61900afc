"""Defenses that transform the input, wrapped around any model (issue 20).

A defense wraps a model and is a model (:func:`defend` returns a
:class:`~physical.models.Classifier`); attacks see a model and never import this
package. :mod:`.transforms` holds the steps as pure functions on [0, 1] NCHW images
and BPDA's straight-through estimator; :mod:`.spec` the names, parameters and
gradients of ``--defense SPEC``; :mod:`.model` the defended model, adaptive by
construction (BPDA, and EoT over its randomness with ``samples`` > 1).
"""
from .model import DefendedNet, defend, papers_attacker
from .spec import DEFENSE_DRAWS, DEFENSE_SAMPLES, KINDS, Step, describe, parse_defense, spec_text
from .transforms import (TVM_ITERS, TVM_LAMBDA, bit_depth, draw_randomize, draw_tvm, jpeg, median, padded_size, randomize,
                         straight_through, tv_energy, tvm)

__all__ = ["DEFENSE_DRAWS", "DEFENSE_SAMPLES", "DefendedNet", "KINDS", "Step", "TVM_ITERS", "TVM_LAMBDA", "bit_depth", "defend",
           "describe", "draw_randomize", "papers_attacker", "draw_tvm", "jpeg", "median", "padded_size", "parse_defense", "randomize",
           "spec_text", "straight_through", "tv_energy", "tvm"]
