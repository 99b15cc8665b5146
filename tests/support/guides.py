"""What the guide tests share: where the guides and their programs are, and the magic-number table the
test-mode guide shows (parsed from its Markdown, so the table itself is what gets checked)."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt

GUIDES = Path(__file__).resolve().parents[2] / "docs" / "guides"
CODE = GUIDES / "code"
LANGS = ("python", "node", "php")
EXT = {"python": ".py", "node": ".mjs", "php": ".php"}


def program(lang: str, name: str) -> Path:
    """docs/guides/code/<lang>/<name><ext>, which must exist."""
    path = CODE / lang / f"{name}{EXT[lang]}"
    assert path.is_file(), path
    return path


def magic_table() -> dict[str, str]:
    """The test-mode guide's table: last four digits → the final status it promises."""
    tokens = (
        MarkdownIt("commonmark")
        .enable("table")
        .parse((GUIDES / "test-mode-magic-numbers.md").read_text(encoding="utf-8"))
    )
    rows: list[list[str]] = []
    cells: list[str] = []
    in_body = False
    for t in tokens:
        if t.type == "tbody_open":
            in_body = True
        elif t.type == "tr_open":
            cells = []
        elif t.type == "inline" and in_body:
            cells.append(t.content)
        elif t.type == "tr_close" and in_body:
            rows.append(cells)
    table: dict[str, str] = {}
    for row in rows:
        ending = re.search(r"`(\d{4})`", row[0])
        status = re.search(r"`([a-z]+)`", row[2])
        assert ending and status, row
        table[ending[1]] = status[1]
    return table


def magic_endings(path: Path) -> list[str]:
    """The MAGIC_ENDINGS list a magic_numbers program tries, as written in its source."""
    match = re.search(r"MAGIC_ENDINGS\s*=\s*\[([^\]]*)\]", path.read_text(encoding="utf-8"))
    assert match, path
    return re.findall(r"['\"](\d{4})['\"]", match[1])
