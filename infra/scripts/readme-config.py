"""Rewrite the configuration table in README.md from the declarations in aegis.config (`aegis config --markdown`).

Usage: python infra/scripts/readme-config.py   (tests/unit/test_config.py checks the two are equal)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from aegis import config

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| variable | default | meaning |"


def main() -> int:
    text = README.read_text()
    start = text.find(HEADER)
    if start < 0:
        print(f"{README}: no configuration table (a line {HEADER!r}) to rewrite", file=sys.stderr)
        return 1
    match = re.compile(r"(?:\|[^\n]*\n)+").match(text, start)
    end = match.end() if match else len(text)
    table = config.markdown_table() + "\n"
    if text[start:end] != table:
        README.write_text(text[:start] + table + text[end:])
        print(f"{README}: configuration table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
