"""``--methods SPECS``: every method's options, gathered from the attack modules' declarations.

A method spec is a method name, optionally followed by options, each ``:name=value``:
``pgd``, ``pgd:steps=100:restarts=20``, ``bim:step_factor=2``, ``cw:target=ll:confidence=20``.
``--methods`` takes specs comma-separated, so one experiment can hold the same method at
several settings (``pgd:steps=40,pgd:steps=100``), each a variant of its own.

The options of each method are declared once, in its attack module (:mod:`.options`);
this module is the registry (:data:`METHOD_OPTIONS`), the parser, and what is built from
the declarations: make-sheets' flags (:func:`method_flags`: ``--pgd-steps`` and the like,
which set the defaults of every variant of their method), the CLI's help and the README's
table (:func:`options_markdown`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# By name: the package's cw, eot, pgd ... are the functions, not the modules.
from .cw import L0_OPTIONS as CW_L0_OPTIONS, LINF_OPTIONS as CW_LINF_OPTIONS, OPTIONS as CW_OPTIONS
from .eot import OPTIONS as EOT_OPTIONS
from .iterative import LL_OPTIONS, OPTIONS as ITERATIVE_OPTIONS
from .lbfgs import OPTIONS as LBFGS_OPTIONS
from .lspga import OPTIONS as LSPGA_OPTIONS
from .onepixel import OPTIONS as ONEPIXEL_OPTIONS
from .pgd import OPTIONS as PGD_OPTIONS
from .methods import EPS_METHODS, METHOD_TITLES, METHODS
from .options import Option

METHOD_OPTIONS: dict[str, tuple[Option, ...]] = {
    "fast": (),
    "bim": ITERATIVE_OPTIONS,
    "ll": LL_OPTIONS,
    "eot": EOT_OPTIONS,
    "eot_ll": EOT_OPTIONS,
    "pgd": PGD_OPTIONS,
    "cw": CW_OPTIONS,
    "cw_l0": CW_L0_OPTIONS,
    "cw_linf": CW_LINF_OPTIONS,
    "lbfgs": LBFGS_OPTIONS,
    "onepixel": ONEPIXEL_OPTIONS,
    "lspga": LSPGA_OPTIONS,
}
assert tuple(METHOD_OPTIONS) == METHODS, "every method declares its options, in METHODS' order"
# Methods whose flags are another's: --eot-samples sets eot's and eot_ll's.
FLAG_OF = {"eot_ll": "eot"}


def option(method: str, name: str) -> Option:
    """The declaration of one option of a method (KeyError if it has none of that name)."""
    for o in METHOD_OPTIONS[method]:
        if o.name == name:
            return o
    raise KeyError(f"{method} has no option {name}")


@dataclass(frozen=True)
class MethodSpec:
    """A method and the options its spec names (in declaration order), e.g. ``pgd:steps=100``."""

    method: str
    given: tuple[tuple[str, Any], ...] = ()

    @property
    def text(self) -> str:
        """The spec as written canonically: ``pgd:steps=100:restarts=20``."""
        return ":".join([self.method, *(f"{k}={option(self.method, k).text(v)}" for k, v in self.given)])

    def resolve(self, defaults: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Every option's value: the declaration's default, then ``defaults[method]`` (make-sheets'
        flags), then what the spec names. Axis options (onepixel's pixels) keep the flag's list."""
        flags = (defaults or {}).get(self.method, {})
        values = {o.name: flags.get(o.name, o.default) for o in METHOD_OPTIONS[self.method]}
        values.update(self.given)
        return values


def parse_method(text: str) -> MethodSpec:
    """``"pgd:steps=100:restarts=20"`` -> its MethodSpec; ValueError naming the bad part and what is allowed."""
    name, *parts = [p.strip() for p in text.strip().split(":")]
    if name not in METHOD_OPTIONS:
        raise ValueError(f"unknown method '{name}'; choose from {', '.join(METHODS)}")
    declared = {o.name: o for o in METHOD_OPTIONS[name]}
    given: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not value.strip():
            raise ValueError(f"{text}: '{part}' is not name=value (e.g. pgd:steps=100:restarts=20)")
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise ValueError(f"{text}: {name} has no option '{key}' (its options: {known})")
        if key in given:
            raise ValueError(f"{text}: {key} given twice")
        try:
            given[key] = declared[key].parse(value)
        except ValueError as exc:
            raise ValueError(f"{text}: {exc}") from None
    order = list(declared)
    return MethodSpec(name, tuple(sorted(given.items(), key=lambda kv: order.index(kv[0]))))


def parse_methods(specs: str | Iterable[str]) -> list[MethodSpec]:
    """``"fast,bim,pgd:steps=100"`` or a sequence of specs -> MethodSpecs, in order, duplicates once.

    ValueError naming the bad spec.
    """
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    out: list[MethodSpec] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        spec = parse_method(item)
        if spec not in out:
            out.append(spec)
    if not out:
        raise ValueError(f"no method given; choose from {', '.join(METHODS)}")
    return out


@dataclass(frozen=True)
class Flag:
    """A make-sheets flag built from an option's declaration: ``--pgd-steps`` (keyword ``pgd_steps``)."""

    prefix: str                 # the method whose name it carries
    methods: tuple[str, ...]    # the methods whose default it sets
    option: Option

    @property
    def keyword(self) -> str:
        return f"{self.prefix}_{self.option.name}"

    @property
    def cli(self) -> str:
        return "--" + self.keyword.replace("_", "-")

    @property
    def help(self) -> str:
        users = ", ".join(self.methods)
        default = self.option.text(self.option.default)
        return f"{users}: {self.option.help} (default {default}; sets {self.prefix}'s default, a spec overrides it)"


def method_flags() -> list[Flag]:
    """Every option declared with ``flag=True``, once per method family, in METHODS' order."""
    flags: dict[str, Flag] = {}
    for method in METHODS:
        prefix = FLAG_OF.get(method, method)
        for o in METHOD_OPTIONS[method]:
            if not o.flag:
                continue
            key = f"{prefix}_{o.name}"
            if key in flags:
                flags[key] = Flag(prefix, (*flags[key].methods, method), o)
            else:
                flags[key] = Flag(prefix, (method,), o)
    return list(flags.values())


# On/off flags kept from before the specs: keyword -> (method, option, value when on, help).
SWITCHES = {"cw_least_likely": ("cw", "target", "ll", "cw: targeted at the least-likely class instead of "
                                                      "untargeted (the same as the spec cw:target=ll)")}


def flag_defaults(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """make-sheets' flag keywords (``{"pgd_steps": 100}``; None: not given) -> per method, the
    option defaults they set. Checked; ValueError naming the flag. An axis flag takes a list."""
    by_keyword = {f.keyword: f for f in method_flags()}
    unknown = [k for k in values if k not in by_keyword and k not in SWITCHES]
    if unknown:
        raise ValueError(f"unknown attack option '{unknown[0]}'; make-sheets takes "
                         f"{', '.join([*by_keyword, *SWITCHES])} (or a method spec such as pgd:steps=100)")
    out: dict[str, dict[str, Any]] = {}
    for keyword, value in values.items():
        if value is None or value is False:
            continue
        if keyword in SWITCHES:
            method, name, on, _ = SWITCHES[keyword]
            out.setdefault(method, {})[name] = on
            continue
        f = by_keyword[keyword]
        try:
            if f.option.axis:
                items = value.split(",") if isinstance(value, str) else list(value)
                checked: Any = tuple(dict.fromkeys(f.option.coerce(v) for v in items if str(v).strip()))
                if not checked:
                    raise ValueError(f"{f.option.name}: no value given")
            else:
                checked = f.option.coerce(value)
        except ValueError as exc:
            raise ValueError(f"{f.cli} {value}: {exc}") from None
        for m in f.methods:
            out.setdefault(m, {})[f.option.name] = checked
    return out


# --targets all makes a variant per class: a grid of pictures x classes, for models with few classes.
MAX_TARGET_CLASSES = 20


def targeted_methods() -> tuple[str, ...]:
    """The methods that can attack towards every class (a ``target`` option that takes ``all``)."""
    return tuple(m for m in METHODS for o in METHOD_OPTIONS[m] if o.name == "target" and "all" in o.choices)


def targets_defaults(targets: str | None, methods: Iterable[str]) -> dict[str, dict[str, Any]]:
    """make-sheets' ``--targets ll|all``: the target of every targeted method among ``methods``
    (its spec may still name another). ValueError for another value."""
    if targets is None:
        return {}
    if targets not in ("ll", "all"):
        raise ValueError(f"--targets {targets}: choose ll (the least-likely class) or all (every class)")
    chosen = [m for m in methods if m in targeted_methods()]
    if not chosen:
        raise ValueError(f"--targets {targets}: none of the methods is targeted; use it with "
                         f"{', '.join(targeted_methods())}")
    return {m: {"target": targets} for m in chosen}


def methods_help() -> str:
    """The --methods help: every method and its options, from the declarations."""
    parts = []
    for m in METHODS:
        opts = ", ".join(f"{o.name}={o.text(o.default)}" for o in METHOD_OPTIONS[m])
        parts.append(f"{m}: {METHOD_TITLES[m]}{', eps' if m in EPS_METHODS else ''}{', ' + opts if opts else ''}")
    return ("Attack method specs, comma-separated: NAME or NAME:OPTION=VALUE:..., e.g. pgd:steps=100:restarts=20; "
            "one variant each (per eps for those with eps). " + "; ".join(parts) + ".")


def options_markdown() -> str:
    """The README's table of every method's options, from the declarations."""
    rows = ["| method | option | default | flag | meaning |", "|---|---|---|---|---|"]
    flags = {(m, f.option.name): f for f in method_flags() for m in f.methods}
    for m in METHODS:
        for o in METHOD_OPTIONS[m]:
            f = flags.get((m, o.name))
            switch = [k for k, (sm, sn, _, _) in SWITCHES.items() if (sm, sn) == (m, o.name)]
            flag = f"`{f.cli}`" if f else ", ".join(f"`--{k.replace('_', '-')}`" for k in switch)
            rows.append(f"| `{m}` | `{o.name}` | `{o.text(o.default)}` | {flag} | {o.help}; {o.expected()} |")
    return "\n".join(rows)
