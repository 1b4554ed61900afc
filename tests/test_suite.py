"""No test passes without checking anything: no test function returns before its first check."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _own_nodes(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The nodes of ``fn``'s body, not those of functions or classes defined inside it."""
    out, stack = [], list(fn.body)
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, SCOPES):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _is_check(node: ast.AST) -> bool:
    """An assert, a ``pytest.raises``/``warns`` block, or a call that fails, skips or asserts."""
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return any(any(w in ast.unparse(i.context_expr) for w in ("raises", "warns")) for i in node.items)
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        return name.startswith(("pytest.fail", "pytest.skip", "pytest.importorskip", "pytest.xfail")) \
            or "assert" in name.lower() or name.startswith(("check", "_check"))
    return False


def early_returns(source: str) -> list[tuple[str, int]]:
    """(test name, line) of every ``return`` in a test function that comes before its first check."""
    found = []
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name.startswith("test"):
            nodes = _own_nodes(fn)
            first = min((n.lineno for n in nodes if _is_check(n)), default=None)
            found += [(fn.name, n.lineno) for n in nodes
                      if isinstance(n, ast.Return) and (first is None or n.lineno < first)]
    return sorted(found, key=lambda f: f[1])


def test_no_test_returns_before_its_first_check():
    found = [f"{path.relative_to(TESTS.parent)}:{line} ({name})" for path in sorted(TESTS.rglob("test_*.py"))
             for name, line in early_returns(path.read_text(encoding="utf-8"))]
    assert found == [], "a test that returns before it checks anything passes vacuously: " + ", ".join(found)


def test_the_scan_finds_an_early_return_and_spares_nested_helpers():
    source = '''
def test_vacuous(x):
    if x is None:
        return
    assert x

def test_checked_first(x):
    assert x is not None
    if x:
        return
    assert not x

def test_helper_returns():
    def same(a, b):
        return a == b
    assert same(1, 1)

def test_nothing_at_all():
    return
'''
    assert early_returns(source) == [("test_vacuous", 4), ("test_nothing_at_all", 19)]
