"""The variants of each picture: which attacks make-sheets runs, with which settings, and their names.

A variant is one image printed per picture: ``clean``, or one method spec
(:mod:`physical.attacks.spec`) at one setting. Methods with an eps
(``EPS_METHODS``) give one variant per eps (``bim_e8``); the one-pixel attack one
per number of pixels d (``onepixel_d3``); the others one each (``cw``). A spec
that names options names its variants after them (``pgd-steps100_e8``).
:func:`variant_params` is what the manifest records of each variant, and
:func:`run_attack` makes it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..attacks import (EPS_METHODS, cw, cw_l0, cw_linf, eot, eot_ll, eps_steps, lbfgs, least_likely, lspga, onepixel,
                       pgd)
from ..attacks.cw import CW_C0, CW_LINF_C0, CW_LINF_C_MAX, CW_LINF_LR, CW_LINF_TAU0, CW_LR
from ..attacks.lbfgs import LBFGS_C0
from ..attacks.onepixel import ONEPIXEL_F, ONEPIXEL_STOP
from ..attacks.seeds import normal_like
from ..attacks.spec import MAX_TARGET_CLASSES, METHOD_OPTIONS, MethodSpec, option

# What each method does that no option changes, recorded in the manifest's params beside its options.
FIXED_PARAMS: dict[str, dict[str, Any]] = {
    "cw": {"c0": CW_C0, "lr": CW_LR, "grid8": True},
    "cw_l0": {"c0": CW_C0, "lr": CW_LR, "grid8": True},
    "cw_linf": {"tau0": CW_LINF_TAU0, "c0": CW_LINF_C0, "c_max": CW_LINF_C_MAX, "lr": CW_LINF_LR, "grid8": True},
    "lbfgs": {"c0": LBFGS_C0, "grid8": True},
    "onepixel": {"stop": ONEPIXEL_STOP, "f": ONEPIXEL_F},
}


@dataclass(frozen=True)
class Variant:
    """One printed version of a picture: ``method=None`` is the clean picture.

    ``options``: every option of the method with its value (declaration order); ``named``: the
    options its spec named, which name the variant (``pgd:steps=100`` -> ``pgd-steps100_e8``), so
    that the same method at several settings gives variants of their own, while a bare method
    (its options from the declaration or make-sheets' flags) keeps its plain name (``pgd_e8``).
    """

    method: str | None
    eps: int | None = None       # 0-255 levels, for EPS_METHODS
    options: tuple[tuple[str, Any], ...] = ()
    named: tuple[str, ...] = ()
    target_name: str | None = None   # the class name of a target class index (``target=all``'s variants)
    source: str | None = None        # the model whose gradients make it, when not the experiment's (--source)
    like: str | None = None          # method "noise": the variant whose per-picture L2 the noise has

    def opt(self, name: str, default: Any = None) -> Any:
        """The value of one of the method's options (``default`` when it has none of that name)."""
        return dict(self.options).get(name, default)

    @property
    def target_class(self) -> int | None:
        """The class every picture of this variant is attacked towards (``target=all``), else None."""
        target = self.opt("target")
        return target if isinstance(target, int) else None

    @property
    def axis(self) -> tuple[str, Any] | None:
        """(suffix, value) of the option that makes one variant per value (onepixel's ``("d", 1)``), if any."""
        for k, v in self.options:
            o = option(self.method, k) if self.method and self.method != NOISE else None
            if o is not None and o.axis:
                return o.axis, v
        return None

    def _base(self, target: bool = True) -> str:
        """The method, the options its spec named (``-steps100``) and, with ``target``, its target class
        (``_t3``); the axis and eps come after."""
        assert self.method is not None
        named = [(k, v) for k, v in self.options if k in self.named and not option(self.method, k).axis
                 and not (k == "target" and isinstance(v, int))]
        base = self.method + "".join(f"-{k}{option(self.method, k).text(v)}" for k, v in named)
        return base + (f"_t{self.target_class}" if target and self.target_class is not None else "")

    def _name(self, target: bool = True) -> str:
        if self.method is None:
            return "clean"
        if self.method == NOISE:
            return f"{NOISE}-{self.like}"
        if self.eps is not None:
            name = f"{self._base(target)}_e{self.eps}"
        elif self.axis is not None:
            name = f"{self._base(target)}_{self.axis[0]}{self.axis[1]}"
        else:
            name = self._base(target)
        return name + (f"_from-{source_slug(self.source)}" if self.source else "")

    @property
    def name(self) -> str:
        """One name for file, slot and manifest: ``clean``, ``bim_e8``, ``onepixel_d1``, ``cw``,
        ``pgd-steps100-restarts20_e8``, ``cw_t3`` (aimed at class 3), ``bim_e8_from-demo-adv`` (made on
        another model), ``noise-bim_e8_from-demo-adv`` (noise of that variant's size)."""
        return self._name()

    @property
    def target_group(self) -> str | None:
        """For a variant aimed at one class (``target=all``), the name its spec's variants share, without the
        target (``cw_t3`` -> ``cw``, ``pgd_t3_e8_from-demo-adv`` -> ``pgd_e8_from-demo-adv``); else None."""
        return self._name(target=False) if self.target_class is not None else None

    @property
    def label(self) -> str:
        """What the sheet prints under the image: ``bim ε8``, ``onepixel d1``, ``cw``, ``pgd steps100 ε8``,
        ``cw →cat``, ``bim ε8 from demo-adv``, ``noise like bim ε8``."""
        if self.method is None:
            return "clean"
        if self.method == NOISE:
            return f"noise like {self.like}"
        base = self._base(target=False).replace("-", " ")
        if self.target_class is not None:
            base += f" →{self.target_name or self.target_class}"
        if self.eps is not None:
            base += f" ε{self.eps}"
        elif self.axis is not None:
            base += f" {self.axis[0]}{self.axis[1]}"
        return base + (f" from {self.source}" if self.source else "")


# Szegedy et al.'s control: Gaussian noise of the same L2 as an adversarial variant, picture by picture.
NOISE = "noise"


def source_slug(model_id: str) -> str:
    """A model id as a variant name carries it: ``torchvision:resnet50`` -> ``torchvision-resnet50``."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", Path(model_id).stem if "/" in model_id else model_id).strip("-")


def with_sources(variants: list[Variant], sources: Sequence[str]) -> list[Variant]:
    """The experiment's variants, then the adversarial ones again for every other source model, then,
    when there are other sources, Gaussian noise like every adversarial variant (Szegedy's control)."""
    if not sources:
        return variants
    attacks = [v for v in variants if v.method is not None]
    out = variants + [replace(v, source=s) for s in sources for v in attacks]
    return out + [Variant(NOISE, like=v.name) for v in out if v.method is not None]


def gaussian_like(adv: torch.Tensor, clean: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Per picture, ``clean`` plus Gaussian noise scaled to the L2 of ``adv - clean`` (both on the 8-bit
    grid), clipped to [0, 1]; picture i's noise drawn from its own seed (:func:`~physical.attacks.seeds.normal_like`).

    Shape: (N, 3, H, W) each -> (N, 3, H, W).
    """
    z = normal_like(clean, list(seeds))
    size = (adv - clean).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1)
    return (clean + z * size.view(-1, 1, 1, 1)).clamp(0, 1)


@dataclass(frozen=True)
class AttackSettings:
    """What the attacks share beyond each variant's options: the channel eot and eot_ll attack through."""

    channel: str | Mapping[str, Any] = "typical"   # a preset name or a loaded profile
    channel_name: str = "typical"                  # as the user gave it (a preset or a file path)


def paper_steps(eps: int, step_factor: int) -> int:
    """Steps of bim, ll, eot and eot_ll at ``eps`` (0-255 levels): the paper's rule times the step factor."""
    return step_factor * eps_steps(eps / 255)


def plan_variants(specs: list[MethodSpec], eps: list[int],
                  defaults: Mapping[str, Mapping[str, Any]] | None = None,
                  classes: Sequence[str] = ("class 0", "class 1")) -> list[Variant]:
    """Clean first, then every spec's variants in the order given: one per eps for the methods with eps,
    one per value of an axis option (onepixel's pixels), one per class of ``classes`` for ``target=all``
    (``cw_t3``), else one. ``defaults``: per method, the option values make-sheets' flags set.
    ValueError when two specs make the same variant, or ``target=all`` meets too many classes."""
    out = [Variant(None)]
    for spec in specs:
        values = spec.resolve(defaults)
        named = tuple(k for k, _ in spec.given)
        axis = next((o for o in METHOD_OPTIONS[spec.method] if o.axis), None)
        spread: list[Any] = [None] if axis is None else \
            list(values[axis.name]) if isinstance(values[axis.name], tuple) else [values[axis.name]]
        targets: list[Any] = [values.get("target")]
        if values.get("target") == "all":
            if len(classes) > MAX_TARGET_CLASSES:
                raise ValueError(f"{spec.text}: target all makes a variant per class, {len(classes)} for this model "
                                 f"(at most {MAX_TARGET_CLASSES}); use target ll")
            targets = list(range(len(classes)))
        for value in spread:
            for target in targets:
                opts = tuple((k, value if axis is not None and k == axis.name else target if k == "target" else v)
                             for k, v in values.items())
                for e in (eps if spec.method in EPS_METHODS else [None]):
                    v = Variant(spec.method, e, opts, named,
                                classes[target] if isinstance(target, int) else None)
                    twin = next((w for w in out if w.name == v.name or (w.method, w.eps, w.options) ==
                                 (v.method, v.eps, v.options)), None)
                    if twin is not None:
                        raise ValueError(f"{spec.text} makes variant {v.name}, the same as {twin.name}: give each "
                                         "spec of a method different options")
                    out.append(v)
    return out


def setting_text(v: Variant) -> str:
    """The method's own parameters, as every report table shows them: ``ε=8``, ``d=1``, ``κ=0``,
    ``κ=0, target ll``, ``ε=8, steps=100`` (the options away from their default, and those always shown),
    ``ε=8, from demo-adv`` (made on another model), ``L2 of bim_e8`` (noise)."""
    if v.method is None:
        return ""
    if v.method == NOISE:
        return f"L2 of {v.like}"
    parts = [f"ε={v.eps}"] if v.eps is not None else []
    for k, value in v.options:
        o = option(v.method, k)
        if o.axis:
            parts.append(f"{o.axis}={o.text(value)}")
        elif isinstance(value, int) and k == "target":
            parts.append(f"target {v.target_name or value}")
        elif o.shown or value != o.default:
            parts.append(f"{k} {value}" if o.kind is str else f"{o.symbol or k}={o.text(value)}")
    return ", ".join(parts + ([f"from {v.source}"] if v.source else []))


def variant_params(v: Variant, s: AttackSettings) -> dict[str, Any]:
    """What the manifest records of how a variant was made: eps and alpha in 0-255 levels, every option,
    what follows from them (steps by the paper's rule, PGD's alpha) and the method's fixed constants."""
    m = v.method
    if m is None:
        return {}
    if m == NOISE:
        return {"like": v.like, "distribution": "gaussian, scaled to the L2 of the like variant, per picture"}
    opts = dict(v.options)
    out: dict[str, Any] = {"eps": v.eps} if v.eps is not None else {}
    if m in ("bim", "ll", "eot", "eot_ll"):
        out.update(alpha=1, steps=paper_steps(v.eps, opts["step_factor"]))
    if m in ("eot", "eot_ll"):
        out["channel"] = s.channel_name
    if m == "pgd":
        out.update(alpha=round(2.5 * v.eps / opts["steps"], 6), random_start=True)
    return {**out, **opts, **FIXED_PARAMS.get(m, {})}


def run_attack(v: Variant, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, y_ll: torch.Tensor,
               s: AttackSettings, seed: Any) -> torch.Tensor:
    """The variant's images of a batch (methods other than the paper's three, which attack_grid makes).

    Each option goes to the attack function as the keyword of its name; ``target`` ``ll`` is the
    least-likely class ``y_ll`` (``none``: untargeted), ``step_factor`` multiplies the paper's steps.

    Shape: x (N, 3, H, W) in [0, 1]; y, y_ll (N,) -> (N, 3, H, W).
    """
    m, opts = v.method, dict(v.options)
    if "target" in opts:
        t = opts["target"]
        opts["target"] = y_ll if t == "ll" else torch.full_like(y_ll, t) if isinstance(t, int) else None
    if m in ("eot", "eot_ll"):
        steps = paper_steps(v.eps, opts.pop("step_factor"))
        if m == "eot":
            return eot(model, x, y, v.eps / 255, s.channel, steps=steps, seed=seed, **opts)
        return eot_ll(model, x, v.eps / 255, s.channel, steps=steps, seed=seed, **opts)
    if m == "ll":          # aimed at a given class (target=all); the paper's ll comes from attack_grid
        return least_likely(model, x, v.eps / 255, steps=paper_steps(v.eps, opts["step_factor"]),
                            target=opts["target"])
    if m == "pgd":
        return pgd(model, x, y, v.eps / 255, seed=seed, **opts)
    if m in ("cw", "cw_l0", "cw_linf"):
        return {"cw": cw, "cw_l0": cw_l0, "cw_linf": cw_linf}[m](model, x, y, **opts)
    if m == "lbfgs":
        return lbfgs(model, x, **opts)
    if m == "onepixel":
        return onepixel(model, x, y, seed=seed, **opts)
    if m == "lspga":
        return lspga(model, x, y, v.eps / 255, seed=seed, **opts)
    raise ValueError(f"run_attack: {m} is made elsewhere")


def perturbation(adv: torch.Tensor, clean: torch.Tensor) -> dict[str, float | int]:
    """The printed perturbation of one image in 0-255 units: L0 (pixels with any channel changed),
    L2 and L-infinity of the difference of the two 8-bit images. Shape: (3, H, W) each."""
    d = ((adv.clamp(0, 1) * 255).round() - (clean.clamp(0, 1) * 255).round()).double()
    return {"l0": int((d.abs().amax(dim=0) > 0).sum()), "l2": round(float(d.pow(2).sum().sqrt()), 3),
            "linf": int(d.abs().max())}
