"""The package layout of docs/architecture.md, checked: no import cycle, and every import goes downwards.

Imports are read with ``ast`` from the source (function-level imports too: a
lazy import is still a dependency), so nothing is executed.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "physical"

# Which top-level parts of the package may import which (docs/architecture.md).
# A part is a subpackage or a top-level module; imports inside a part are free.
FOUNDATION = {"errors", "version", "files", "photo_io", "distributed"}
ALLOWED = {
    **{m: set() for m in FOUNDATION},
    "distributed": {"errors"},
    "models": FOUNDATION,
    "attacks": FOUNDATION | {"channel"},
    "channel": FOUNDATION,
    "defenses": FOUNDATION | {"models", "channel"},
    "sheets": FOUNDATION | {"models", "attacks", "channel", "defenses"},
    "capture": FOUNDATION | {"sheets"},
    "calibrate": FOUNDATION | {"channel", "sheets", "capture"},
    "report": FOUNDATION | {"models", "attacks", "channel", "defenses", "sheets", "capture"},
    "demo": FOUNDATION | {"sheets", "capture", "report"},
    "cli": FOUNDATION | {"models", "attacks", "channel", "defenses", "sheets", "capture", "calibrate", "report",
                         "demo"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = ["physical", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The physical modules that ``name`` imports, anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "physical"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_pkg else name.split(".")[:-1]
                base = package[:len(package) - (node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            if base_name.split(".")[0] != "physical":
                continue
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                out.add(sub if sub in known else base_name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_import_reader_resolves_relative_and_lazy_imports():
    g = _graph()
    # physical/report/run.py imports `.html` inside a function and `..sheets.manifest` at the top.
    assert "physical.report.html" in g["physical.report.run"]
    assert "physical.sheets.manifest" in g["physical.report.run"]
    # `from . import payload` inside physical/sheets/layout.py is the module, not the package.
    assert "physical.sheets.payload" in g["physical.sheets.layout"]


def test_no_import_cycle():
    g = _graph()
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n in g and n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_imports_go_down_the_layers():
    bad = []
    for module, targets in _graph().items():
        src = _part(module)
        if src == "":
            continue            # physical/__init__.py: the Python API, wired lazily to every stage
        assert src in ALLOWED, f"{module}: part {src!r} is not in docs/architecture.md; add it to ALLOWED there and here"
        for t in sorted(targets):
            dst = _part(t)
            if dst == "":
                bad.append(f"{module} imports the package root (import from the module that defines it)")
            elif dst != src and dst not in ALLOWED[src]:
                bad.append(f"{module} imports {t} ({src} may import {', '.join(sorted(ALLOWED[src])) or 'nothing'})")
    assert not bad, "\n".join(bad)


def test_architecture_doc_lists_every_part():
    doc = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for part in ALLOWED:
        if part != "__main__":
            assert f"`{part}" in doc, f"docs/architecture.md does not mention {part}"
