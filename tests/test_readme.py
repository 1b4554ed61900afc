"""The README cannot drift from the code: its Python blocks run, and the files and names it cites exist."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
PY_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_blocks():
    # The attacks and the channel are shown from Python; if the blocks were dropped this test would pass vacuously.
    assert len(PY_BLOCKS) >= 2


@pytest.mark.parametrize("block", PY_BLOCKS, ids=[f"block{i}" for i in range(len(PY_BLOCKS))])
def test_readme_python_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_readme_module_names_resolve():
    names = set(re.findall(r"`(physical(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", README))
    assert "physical.attacks" in names
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ModuleNotFoundError, AttributeError):
            missing.append(name)
    assert not missing, f"README names that do not exist: {missing}"


def test_readme_paths_exist():
    paths = set(re.findall(r"(?<![\w/-])((?:physical|docs|bench|scripts|tests)/[\w./-]*\w)", README))
    assert "physical/channel" in paths or "physical/channel/" in {p + "/" for p in paths}
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"README paths that do not exist: {missing}"
