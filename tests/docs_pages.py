"""What a documentation page tells a reader to type and shows in return: its fenced blocks in page order, and the
code spans of its tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^[ \t]*```(\w+)[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """A fenced block: its language (`bash`, `text`, ...) and its lines, indentation removed."""

    language: str
    lines: tuple[str, ...]


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks in order (indented ones inside list items too)."""
    found = FENCE.findall(page.read_text())
    return [Block(language, tuple(line.strip() for line in body.splitlines())) for language, body in found]


def commands(block: Block) -> list[str]:
    """A bash block's commands: comments dropped, `\\`-continued lines joined, blank lines left out."""
    joined = re.sub(r"\\\n\s*", "", "\n".join(block.lines))
    return [c for c in (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()) if c]


def table_spans(page: Path) -> list[str]:
    """Every `code span` in the page's table rows."""
    rows = [row for row in page.read_text().splitlines() if row.startswith("|")]
    return [span for row in rows for span in re.findall(r"`([^`]+)`", row)]
