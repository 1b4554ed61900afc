"""The variants of each picture: which attacks make-sheets runs, with which settings, and their names.

A variant is one image printed per picture: ``clean``, or one attack with one
setting. Methods with an eps (``EPS_METHODS``) give one variant per eps
(``bim_e8``); the one-pixel attack one per number of pixels d (``onepixel_d3``);
cw and lbfgs one each (``cw``). :class:`AttackSettings` holds every attack's
options (make-sheets' ``--pgd-steps`` and the like); :func:`variant_params` is
what the manifest records of each variant, and :func:`run_attack` makes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..attacks import (EOT_DIGITAL, EOT_SAMPLES, EPS_METHODS, cw, eot, eot_ll, eps_steps, lbfgs, onepixel, pgd)
from ..attacks.cw import CW_C0, CW_CONFIDENCE, CW_LR, CW_SEARCH_STEPS, CW_STEPS
from ..attacks.lbfgs import LBFGS_C0, LBFGS_SEARCH_STEPS, LBFGS_STEPS
from ..attacks.onepixel import ONEPIXEL_GENERATIONS, ONEPIXEL_POPULATION, ONEPIXEL_STOP
from ..attacks.pgd import PGD_RESTARTS, PGD_STEPS


@dataclass(frozen=True)
class Variant:
    """One printed version of a picture: ``method=None`` is the clean picture."""

    method: str | None
    eps: int | None = None       # 0-255 levels, for EPS_METHODS
    pixels: int | None = None    # d, for onepixel

    @property
    def name(self) -> str:
        """One name for file, slot and manifest: ``clean``, ``bim_e8``, ``onepixel_d1``, ``cw``."""
        if self.method is None:
            return "clean"
        if self.eps is not None:
            return f"{self.method}_e{self.eps}"
        if self.pixels is not None:
            return f"{self.method}_d{self.pixels}"
        return self.method

    @property
    def label(self) -> str:
        """What the sheet prints under the image: ``bim ε8``, ``onepixel d1``, ``cw``."""
        return self.name.replace("_e", " ε").replace("_d", " d") if self.method else "clean"


@dataclass(frozen=True)
class AttackSettings:
    """Every attack's options beyond eps (make-sheets' options of the same names)."""

    channel: str | Mapping[str, Any] = "typical"   # a preset name or a loaded profile
    channel_name: str = "typical"                  # as the user gave it (a preset or a file path)
    eot_samples: int = EOT_SAMPLES
    eot_step_factor: int = 1
    eot_digital: float = EOT_DIGITAL
    pgd_steps: int = PGD_STEPS
    pgd_restarts: int = PGD_RESTARTS
    cw_steps: int = CW_STEPS
    cw_search_steps: int = CW_SEARCH_STEPS
    cw_confidence: float = CW_CONFIDENCE
    cw_least_likely: bool = False
    onepixel_pixels: tuple[int, ...] = (1,)
    onepixel_population: int = ONEPIXEL_POPULATION
    onepixel_generations: int = ONEPIXEL_GENERATIONS


def eot_steps(eps: int, s: AttackSettings) -> int:
    """Steps of eot and eot_ll at ``eps`` (0-255 levels): the paper's rule times the step factor."""
    return s.eot_step_factor * eps_steps(eps / 255)


def plan_variants(methods: list[str], eps: list[int], settings: AttackSettings) -> list[Variant]:
    """Clean first, then every method's variants in the order given."""
    out = [Variant(None)]
    for m in methods:
        if m in EPS_METHODS:
            out += [Variant(m, eps=e) for e in eps]
        elif m == "onepixel":
            out += [Variant(m, pixels=d) for d in settings.onepixel_pixels]
        else:
            out.append(Variant(m))
    return out


def setting_text(v: Variant, s: AttackSettings) -> str:
    """The method's own parameter, as every report table shows it: ``ε=8``, ``d=1``, ``κ=0``, ``target ll``."""
    if v.eps is not None:
        return f"ε={v.eps}"
    if v.pixels is not None:
        return f"d={v.pixels}"
    if v.method == "cw":
        return f"κ={s.cw_confidence:g}" + (", target ll" if s.cw_least_likely else "")
    if v.method == "lbfgs":
        return "target ll"
    return ""


def variant_params(v: Variant, s: AttackSettings) -> dict[str, Any]:
    """What the manifest records of how a variant was made (eps and alpha in 0-255 levels)."""
    m = v.method
    if m is None:
        return {}
    if m == "fast":
        return {"eps": v.eps}
    if m in ("bim", "ll"):
        return {"eps": v.eps, "alpha": 1, "steps": eps_steps(v.eps / 255)}
    if m in ("eot", "eot_ll"):
        return {"eps": v.eps, "alpha": 1, "steps": eot_steps(v.eps, s),
                "channel": s.channel_name, "samples": s.eot_samples, "digital": s.eot_digital}
    if m == "pgd":
        return {"eps": v.eps, "steps": s.pgd_steps, "restarts": s.pgd_restarts,
                "alpha": round(2.5 * v.eps / s.pgd_steps, 6), "random_start": True}
    if m == "cw":
        return {"confidence": s.cw_confidence, "steps": s.cw_steps, "search_steps": s.cw_search_steps,
                "c0": CW_C0, "lr": CW_LR, "target": "least-likely" if s.cw_least_likely else "untargeted",
                "grid8": True}
    if m == "lbfgs":
        return {"target": "least-likely", "c0": LBFGS_C0, "search_steps": LBFGS_SEARCH_STEPS,
                "max_iter": LBFGS_STEPS, "grid8": True}
    if m == "onepixel":
        return {"pixels": v.pixels, "population": s.onepixel_population, "generations": s.onepixel_generations,
                "stop": ONEPIXEL_STOP, "f": 0.5}
    raise ValueError(f"unknown method {m}")


def run_attack(v: Variant, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, y_ll: torch.Tensor,
               s: AttackSettings, seed: int) -> torch.Tensor:
    """The variant's images of a batch (methods other than the paper's three, which attack_grid makes).

    Shape: x (N, 3, H, W) in [0, 1]; y, y_ll (N,) -> (N, 3, H, W).
    """
    m = v.method
    if m in ("eot", "eot_ll"):
        steps = eot_steps(v.eps, s)
        if m == "eot":
            return eot(model, x, y, v.eps / 255, s.channel, s.eot_samples, steps=steps, seed=seed,
                       digital=s.eot_digital)
        return eot_ll(model, x, v.eps / 255, s.channel, s.eot_samples, steps=steps, seed=seed, digital=s.eot_digital)
    if m == "pgd":
        return pgd(model, x, y, v.eps / 255, steps=s.pgd_steps, restarts=s.pgd_restarts, seed=seed)
    if m == "cw":
        return cw(model, x, y, confidence=s.cw_confidence, steps=s.cw_steps, search_steps=s.cw_search_steps,
                  target=y_ll if s.cw_least_likely else None)
    if m == "lbfgs":
        return lbfgs(model, x, target=y_ll)
    if m == "onepixel":
        return onepixel(model, x, y, pixels=v.pixels, population=s.onepixel_population,
                        generations=s.onepixel_generations, seed=seed)
    raise ValueError(f"run_attack: {m} is made elsewhere")


def perturbation(adv: torch.Tensor, clean: torch.Tensor) -> dict[str, float | int]:
    """The printed perturbation of one image in 0-255 units: L0 (pixels with any channel changed),
    L2 and L-infinity of the difference of the two 8-bit images. Shape: (3, H, W) each."""
    d = ((adv.clamp(0, 1) * 255).round() - (clean.clamp(0, 1) * 255).round()).double()
    return {"l0": int((d.abs().amax(dim=0) > 0).sum()), "l2": round(float(d.pow(2).sum().sqrt()), 3),
            "linf": int(d.abs().max())}
