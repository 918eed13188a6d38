"""One renderer: rich tables on a terminal, plain aligned text when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    if sys.stdout.isatty():
        _rich_table(headers, cells, title)
    else:
        _plain_table(headers, cells)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _plain_table(headers: Sequence[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    sys.stdout.write("\n".join(line.rstrip() for line in lines) + "\n")


def _rich_table(headers: Sequence[str], rows: list[list[str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, header_style="bold")
    for index, header in enumerate(headers):
        # Never "…": names, ids and times are copied by hand, so long values fold instead;
        # the first column (the name) is never broken, nor is a word of a header.
        table.add_column(
            header,
            overflow="fold",
            no_wrap=index == 0,
            min_width=max(len(word) for word in header.split()),
        )
    for row in rows:
        table.add_row(*row)
    Console().print(table)
