"""``--defense SPEC``: the one place for the defenses' names, parameters and gradients.

A spec is comma-separated steps applied in order, each ``name`` or ``name:param``:
``jpeg:75``, ``bits:4``, ``median:3``, ``randomize``, ``tvm:50``; e.g. ``bits:4,jpeg:75,randomize``.
``sap:P`` is not an input transformation: it prunes the model's activations (:mod:`.sap`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..errors import PhysicalError

# EoT draws of a random defense per gradient, by default (--defense-samples): each costs a forward and
# backward pass of the model.
DEFENSE_SAMPLES = 8
# Draws of a random defense's randomness over which the report classifies every image (its accuracy is the
# mean over them; each draw counts in n).
DEFENSE_DRAWS = 4


# SAP's draws per layer, in percent of its units: the demo's clean accuracy drops 2.2 points at 200, 7.4 at 150
# (bench/sap.py, docs/benchmarks.md); the issue allows 5.
SAP_PERCENT = 200


class Kind(NamedTuple):
    default: int | None     # the parameter when the spec names none (None: takes no parameter)
    low: int
    high: int
    random: bool            # draws fresh randomness at every call
    gradient: str           # how an adaptive attack differentiates it
    what: str


# The order here is the order of the README's table.
KINDS: dict[str, Kind] = {
    "jpeg": Kind(75, 1, 100, False, "BPDA: straight-through (identity)",
                 "JPEG compression at this quality (the real codec)"),
    "bits": Kind(4, 1, 8, False, "BPDA: straight-through (identity)", "bit-depth reduction to this many bits"),
    "median": Kind(3, 3, 9, False, "exact (to each window's median pixel)", "median filter of this odd size"),
    "randomize": Kind(None, 0, 0, True, "exact, EoT over its draws",
                      "random resize and pad (Xie et al. 2018), scaled to the model's input size; the model sees the padded square"),
    "tvm": Kind(50, 1, 100, True, "BPDA: straight-through (identity), EoT over its draws",
                "total-variation minimisation (Guo et al. 2018) keeping this percentage of the pixels, drawn at random"),
    "sap": Kind(SAP_PERCENT, 1, 1000, True, "exact (through the pruned network), EoT over its draws",
                "stochastic activation pruning (Dhillon et al. 2018) after every ReLU of the model, drawing this "
                "percentage of each layer's units (inside the network, wherever it is written in the spec)"),
}


@dataclass(frozen=True)
class Step:
    name: str
    param: int | None

    @property
    def kind(self) -> Kind:
        return KINDS[self.name]

    def text(self) -> str:
        return self.name if self.param is None else f"{self.name}:{self.param}"


def parse_defense(spec: str) -> list[Step]:
    """``"bits:4,jpeg:75,randomize"`` -> its steps, in order; a one-line PhysicalError naming the bad part."""
    steps = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, value = part.partition(":")
        kind = KINDS.get(name)
        if kind is None:
            raise PhysicalError(f"--defense {spec}: unknown defense '{name}'; choose from "
                                f"{', '.join(KINDS)} (e.g. bits:4,jpeg:75,randomize)")
        if kind.default is None:
            if value:
                raise PhysicalError(f"--defense {spec}: {name} takes no parameter")
            steps.append(Step(name, None))
            continue
        try:
            param = int(value) if value else kind.default
        except ValueError:
            raise PhysicalError(f"--defense {spec}: {name}'s parameter must be a whole number, got '{value}'") from None
        if not kind.low <= param <= kind.high or (name == "median" and param % 2 == 0):
            raise PhysicalError(f"--defense {spec}: {name}:{param} is out of range ({kind.what}: "
                                f"{kind.low}..{kind.high}{', odd' if name == 'median' else ''})")
        steps.append(Step(name, param))
    if not steps:
        raise PhysicalError(f"--defense '{spec}': name at least one defense, e.g. jpeg:75")
    return steps


def spec_text(steps: list[Step]) -> str:
    """The canonical spec of some steps (defaults written out): ``"bits:4,jpeg:75,randomize"``."""
    return ",".join(s.text() for s in steps)


def describe(steps: list[Step], samples: int, seed: int) -> dict:
    """JSON-ready record of a defense, as the manifest and the report state it."""
    return {"spec": spec_text(steps), "seed": seed, "samples": samples,
            "steps": [{"name": s.name, "param": s.param, "what": s.kind.what, "random": s.kind.random,
                       "gradient": s.kind.gradient} for s in steps]}
