"""Rewrite the README's table of every attack method's options from their declarations.

The table sits between ``<!-- method-options -->`` and ``<!-- /method-options -->``; it is
:func:`physical.attacks.spec.options_markdown`. tests/test_method_specs.py fails while it is stale.

    python scripts/readme_options.py
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from physical.attacks.spec import options_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    text = README.read_text(encoding="utf-8")
    new, n = re.subn(r"(<!-- method-options -->\n).*?(\n<!-- /method-options -->)",
                     lambda m: m.group(1) + options_markdown() + m.group(2), text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{README}: no <!-- method-options --> block to rewrite")
    README.write_text(new, encoding="utf-8")
    print(f"rewrote the method options table in {README}")


if __name__ == "__main__":
    main()
