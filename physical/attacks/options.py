"""One declaration per attack option: its name, default, range and help, read by every stage.

Each attack module declares its methods' options beside the function that takes
them (``OPTIONS`` in :mod:`.pgd`, :mod:`.cw`, ...); :mod:`.spec` gathers them into
the method registry. From that one declaration come the method spec parser
(``pgd:steps=100:restarts=20``), make-sheets' flags (``--pgd-steps``), the
manifest's ``params``, the setting every table shows, the CLI's help and the
README's table. An option's ``name`` is the keyword of the attack function it
sets, so make-sheets passes it on untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option of an attack method.

    ``kind`` is int, float or str (a choice of ``choices``); ``low``/``high`` bound a
    number (``high_open``: below ``high``). ``flag``: make-sheets has a flag for it
    (``--<method>-<name>``), which sets the default of every variant of the method.
    ``axis``: the flag takes a comma list and makes one variant per value, named with
    this suffix (onepixel's ``pixels``: ``onepixel_d3``). ``symbol``/``shown``: how the
    setting text writes it, and whether it is shown even at its default (cw's ``κ=0``).
    """

    name: str
    default: Any
    help: str
    kind: type = int
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    flag: bool = False
    axis: str | None = None
    symbol: str | None = None
    shown: bool = False

    def parse(self, text: str) -> Any:
        """The value of ``text`` (as a spec or flag writes it), checked; ValueError saying what is allowed."""
        text = text.strip()
        if self.kind is str:
            return self.check(text)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{self.name}={text}: {self.expected()}") from None
        if self.kind is int:
            if not value.is_integer():
                raise ValueError(f"{self.name}={text}: {self.expected()}")
            value = int(value)
        return self.check(value)

    def coerce(self, value: Any) -> Any:
        """A value given as text (a flag, a spec) parsed, any other checked; ValueError saying what is allowed."""
        return self.parse(value) if isinstance(value, str) else self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` if allowed, else ValueError saying what is."""
        if self.kind is str:
            if value not in self.choices:
                raise ValueError(f"{self.name}={value}: {self.expected()}")
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if self.kind is int:
            ok = ok and float(value).is_integer()
        ok = ok and (self.low is None or value >= self.low)
        ok = ok and (self.high is None or (value < self.high if self.high_open else value <= self.high))
        if not ok:
            raise ValueError(f"{self.name}={value}: {self.expected()}")
        return int(value) if self.kind is int else float(value)

    def expected(self) -> str:
        """What the option takes, in words: ``a whole number, at least 1``."""
        if self.kind is str:
            return "one of " + ", ".join(self.choices)
        what = "a whole number" if self.kind is int else "a number"
        bounds = []
        if self.low is not None:
            bounds.append(f"at least {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return ", ".join([what, *bounds])

    def text(self, value: Any) -> str:
        """The value as a spec, a variant name and a setting write it: ``100``, ``0.5``, ``ll``."""
        return value if isinstance(value, str) else f"{value:g}"
