"""The docs cannot quote a command that does not exist: every ``bench/*.py`` answers ``--help``, and every
command that docs/findings.md, docs/benchmarks.md and the README quote parses with the options it quotes
(nothing runs: the argument parser alone)."""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import typer

from physical.cli import app

REPO = Path(__file__).resolve().parents[1]
# The docs whose every quoted command is checked, and the README's code blocks (its prose names
# options with placeholders: `make-sheets --print-count N`).
DOCS = {"docs/findings.md": True, "docs/benchmarks.md": True, "README.md": False}
SUBCOMMANDS = ("make-sheets", "simulate-photos", "ingest", "calibrate", "report", "demo")
STARTS = ("python bench/", "physical ", "torchrun ", "... ")


def quoted_commands(text: str, spans: bool = True) -> list[str]:
    """Commands quoted in a Markdown text: one a line in indented or fenced code blocks (comments
    dropped, ``\\`` continuations joined), and every inline code span that begins like one (a span may
    wrap over lines; ``spans=False`` leaves them out). A subcommand with options (`report --simulated typical`) counts as a ``physical``
    one; a bare name (`ingest`) is a mention. ``a && b`` are two commands; a trailing ``...`` stands
    for options of the reader's choosing."""
    found: list[str] = []
    lines = text.replace("\\\n", " ").splitlines()
    for line in lines:
        s = line.strip()
        if s.startswith(STARTS):
            found.append(" ".join(re.split(r"\s+#", s)[0].split()))
    if not spans:
        return _split(found)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        s = " ".join(span.split())
        if s.startswith(STARTS) or (s.split(" ")[0] in SUBCOMMANDS and " " in s):
            found.append(s)
    return _split(found)


def _split(found: list[str]) -> list[str]:
    out: list[str] = []
    for cmd in found:
        for part in re.split(r"\s*(?:&&|;)\s*", cmd):
            out.append(part[:-4] if part.endswith(" ...") else part)
    return [c for c in out if c]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


QUOTED = [(doc, cmd) for doc, spans in DOCS.items()
          for cmd in _unique(quoted_commands((REPO / doc).read_text(encoding="utf-8"), spans))]
BENCH = sorted(p.name for p in (REPO / "bench").glob("*.py"))


class _Parsed(Exception):
    """Raised in place of running a bench script once its arguments have parsed."""


def _parse_bench(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse ``argv`` (``bench/X.py`` and its options) with the script's own parser, and stop there."""
    script = REPO / argv[0]
    if not script.is_file():
        raise AssertionError(f"no script {argv[0]}")
    if "parse_args(" not in script.read_text(encoding="utf-8"):
        raise AssertionError(f"{argv[0]} has no argument parser: give it one (argparse)")
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *argv[1:]])
    monkeypatch.syspath_prepend(str(script.parent))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_path(str(script), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exc:
        raise AssertionError(f"exit {exc.code}: {err.getvalue().strip().splitlines()[-1:]}") from None
    raise AssertionError("ran without parsing its arguments")


def _parse_physical(args: list[str]) -> None:
    """Parse ``physical ARGS`` with the CLI's own parser (click), without running the command."""
    group = typer.main.get_command(app)
    if not args:
        return
    name, rest = args[0], args[1:]
    sub = group.commands.get(name)          # type: ignore[attr-defined]
    if sub is None:
        raise AssertionError(f"no command `physical {name}`")
    try:
        sub.make_context(name, rest)
    except Exception as exc:           # typer vendors click: its exceptions are known by their shape
        if type(exc).__name__ == "Exit":       # --help
            if getattr(exc, "exit_code", 0):
                raise AssertionError(f"exit {exc.exit_code}") from None
            return
        if hasattr(exc, "format_message"):
            raise AssertionError(exc.format_message()) from None
        raise


def check(cmd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if cmd.startswith("..."):
        raise AssertionError("quote the whole command, not an ellipsis standing for a previous one")
    argv = shlex.split(cmd)
    if argv[0] == "python":
        _parse_bench(argv[1:], monkeypatch)
    elif argv[0] == "torchrun":
        if "-m" not in argv or argv[argv.index("-m") + 1] != "physical":
            raise AssertionError("torchrun of something other than `-m physical`")
        _parse_physical(argv[argv.index("-m") + 2:])
    else:
        _parse_physical(argv[1:] if argv[0] == "physical" else argv)


@pytest.mark.parametrize("script", BENCH)
def test_every_bench_script_answers_help(script, monkeypatch, capsys):
    # Without a parser, --help would run the benchmark itself.
    assert "parse_args(" in (REPO / "bench" / script).read_text(encoding="utf-8"), f"bench/{script}: no argparse"
    monkeypatch.setattr(sys, "argv", [str(REPO / "bench" / script), "--help"])
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "bench" / script), run_name="__main__")
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("doc, cmd", QUOTED, ids=[f"{d}:{c[:60]}" for d, c in QUOTED])
def test_quoted_command_parses(doc, cmd, monkeypatch):
    try:
        check(cmd, monkeypatch)
    except AssertionError as exc:
        pytest.fail(f"{doc} quotes `{cmd}`: {exc}")


@pytest.mark.parametrize("cmd, message", [
    ("python bench/calibration.py --no-such-option 3", "exit 2"),
    ("python bench/eot.py --count many", "invalid int"),
    ("python bench/no_such_bench.py --work x", "no script"),
    ("physical make-sheets --no-such-option", "No such option"),
    ("physical no-such-command", "no command"),
    ("torchrun --standalone --nproc-per-node 2 -m physical report --nope", "No such option"),
    ("... --defense jpeg:25", "ellipsis"),
])
def test_the_check_catches_an_unknown_option_a_missing_script_and_an_ellipsis(cmd, message, monkeypatch):
    with pytest.raises(AssertionError, match=message):
        check(cmd, monkeypatch)


@pytest.mark.parametrize("cmd", ["python bench/calibration.py --phones plain,hdr --no-local-tone --work cal",
                                 "physical report --simulated typical --model demo"])
def test_the_check_passes_a_good_command(cmd, monkeypatch):
    check(cmd, monkeypatch)          # raises AssertionError, naming the problem, if it does not parse


def test_the_extractor_finds_code_lines_and_wrapped_spans():
    text = ("Run\n\n    python bench/eot.py --samples 16   # the comment\n\nBy hand: `physical make-sheets\n"
            "--count 100` then `report --simulated typical`, `ingest` and the model `demo-adv`; `... --seed 2`.\n"
            "```\nphysical make-sheets --model m \\\n  --count 2\nmake-sheets ──> printouts/\n```\n"
            "`physical ingest photos/ && physical report`, `torchrun -m physical make-sheets ...`\n")
    assert quoted_commands(text) == [
        "python bench/eot.py --samples 16", "physical make-sheets --model m --count 2",
        "physical make-sheets --count 100", "report --simulated typical", "... --seed 2",
        "physical ingest photos/", "physical report", "torchrun -m physical make-sheets"]
