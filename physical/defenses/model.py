"""A defended model: the defense's steps, then the model, as a Classifier like any other.

:func:`defend` wraps a :class:`~physical.models.Classifier`: everything that takes a
model (the attacks, make-sheets' predictions, the report) takes the defended one. Its
gradient is the adaptive attacker's: BPDA through the steps without a useful gradient
(:data:`~physical.defenses.spec.KINDS` says which) and, with ``samples`` K > 1, the
expectation over K draws of the random steps (EoT, Athalye et al. 2018): each image is
passed K times with fresh draws and the logits averaged, so that any gradient of the
logits is the mean of the K per-draw gradients. The draws come from the module's own
generator, seeded: the same calls give the same draws.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import PhysicalError
from ..models import Classifier
from .sap import activation_modules, prune_activations
from .spec import Step, describe, spec_text
from .transforms import (bit_depth, draw_randomize, draw_tvm, jpeg, median, padded_size, randomize, straight_through,
                         tvm)


class DefendedNet(nn.Module):
    """x in [0, 1] -> the steps -> ``model`` -> logits, averaged over ``samples`` draws.

    Shape:
        - x: (N, 3, H, W) in [0, 1] at the model's input size. Output: (N, C) logits.
          (After ``randomize`` the model sees the padded square, larger than H.)
    """

    def __init__(self, model: Classifier, steps: Sequence[Step], samples: int = 1, seed: int = 0) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        self.model, self.steps, self.samples = model, list(steps), int(samples)
        self.generator = torch.Generator().manual_seed(seed)
        self.random = any(s.kind.random for s in self.steps)
        sap = [s for s in self.steps if s.name == "sap"]
        if sap:
            # A copy: the hooks must not prune the bare model that others (a non-adaptive attack) still use.
            self.model = copy.deepcopy(model)
            prune_activations(self.model.net, sap[0].param, self._generator_for)

    def _generator_for(self, h: Tensor) -> torch.Generator:
        """The generator to draw with on h's device: the module's own on the CPU, elsewhere one seeded from it
        (so that reseeding the module's generator reseeds every draw)."""
        if h.device.type == "cpu":
            return self.generator
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.generator))
        return torch.Generator(device=h.device).manual_seed(seed)

    def transform(self, x: Tensor) -> Tensor:
        """The steps alone, with BPDA where declared (one draw per image for the random ones)."""
        for step in self.steps:
            if step.name == "jpeg":
                x = straight_through(x, lambda z, q=step.param: jpeg(z, q))
            elif step.name == "bits":
                x = straight_through(x, lambda z, b=step.param: bit_depth(z, b))
            elif step.name == "median":
                x = median(x, step.param)
            elif step.name == "randomize":
                side, offset = draw_randomize(x.shape[0], x.shape[-1], self.generator)
                x = randomize(x, side, offset)
            elif step.name == "tvm":
                mask = draw_tvm(x.shape[0], x.shape[-2], x.shape[-1], step.param / 100, self.generator)
                x = straight_through(x, lambda z, m=mask: tvm(z, m))
            elif step.name == "sap":
                continue                  # inside the network: the hooks of __init__
            else:  # parse_defense admits only the names above
                raise ValueError(f"unknown defense step {step.name}")
        return x

    def forward(self, x: Tensor) -> Tensor:
        k = self.samples if self.random else 1   # a deterministic defense gives the same logits every draw
        n = x.shape[0]
        logits = self.model(self.transform(x.repeat(k, 1, 1, 1) if k > 1 else x))
        return logits.view(k, n, -1).mean(0) if k > 1 else logits


def _check_takes_padded(model: Classifier) -> None:
    # Xie et al. feed the padded square to the model: one that needs its exact input size cannot.
    side = padded_size(max(model.input_size))
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, side, side, device=model.device))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PhysicalError(f"--defense randomize: model {model.model_id} does not take {side} px pictures "
                            f"(randomize feeds it the padded square, as Xie et al. did; it needs a model with "
                            f"global pooling): {first}") from None


def defend(model: Classifier, steps: Sequence[Step], samples: int = 1, seed: int = 0) -> Classifier:
    """``model`` behind the defense ``steps``: a Classifier with the model's classes, sizes and weights'
    checksum, whose id names the defense (``"demo+bits:4,jpeg:75"``); ``.defense`` holds
    :func:`~physical.defenses.spec.describe`'s record. ``samples``: draws per forward pass (EoT;
    1 to classify)."""
    steps = list(steps)
    if any(s.name == "randomize" for s in steps):
        _check_takes_padded(model)
    if any(s.name == "sap" for s in steps) and not activation_modules(model.net):
        raise PhysicalError(f"--defense sap: model {model.model_id} has no nn.ReLU module for SAP to prune after "
                            "(it reaches the demo models and torchvision's ResNets); choose one of those")
    net = DefendedNet(model, steps, samples, seed)
    out = Classifier(net, model_id=f"{model.model_id}+{spec_text(list(steps))}", class_names=model.class_names,
                     input_size=model.input_size, resize_size=model.resize_size, mean=[0.0, 0.0, 0.0],
                     std=[1.0, 1.0, 1.0], weights_sha256=model.weights_sha256, interpolation=model.interpolation,
                     wnids=model.wnids)
    out.defense = describe(list(steps), samples, seed)
    return out.to(model.device)


def papers_attacker(model: Classifier, steps: Sequence[Step], seed: int = 0) -> tuple[Classifier, str]:
    """What ``--non-adaptive`` attacks: the attack each defense's own paper reported, and its description.

    The input transformations' papers attacked the bare model (no BPDA, no EoT); SAP's attacked the pruned
    network one draw a step (no expectation over its draws), so with ``sap`` in ``steps`` it is the model
    behind SAP alone, one draw per pass, and the input transformations are ignored.
    """
    sap = [s for s in steps if s.name == "sap"]
    if sap:
        return (defend(model, sap, samples=1, seed=seed),
                "the pruned network, one draw of SAP a step (no EoT), the input transformations ignored")
    return model, "the bare model (no BPDA, no EoT)"
