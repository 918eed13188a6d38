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
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        # NaN or Infinity, which a hand-edited result line may hold and json reads, are not
        # JSON: jq and most parsers would refuse the whole output.
        text = json.dumps(_finite(value), indent=2, ensure_ascii=False, default=str)
    if not _encodable(text):
        # A lone surrogate (a "\ud800" escape in a result line) cannot be written as UTF-8;
        # inside a JSON string, which is the only place it can be, its escape is the same text.
        text = "".join(
            f"\\u{ord(c):04x}" if _SURROGATE_MIN <= c <= _SURROGATE_MAX else c for c in text
        )
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value - value == 0 else None  # inf - inf and nan - nan are nan
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_SURROGATE_MIN, _SURROGATE_MAX = "\ud800", "\udfff"
# Control characters as they are written in Python and JSON: seen, not acted on by a terminal
# (an escape sequence in a command or an error) nor splitting a line (a forged log line).
_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_VISIBLE.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})
_VISIBLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def shown(text: str) -> str:
    """``text`` safe to print on one line of a terminal or a log: control characters and line
    separators written as escapes, a lone surrogate (not UTF-8) as U+FFFD."""
    text = text.translate(_VISIBLE)
    if not _encodable(text):
        text = "".join("\ufffd" if _SURROGATE_MIN <= c <= _SURROGATE_MAX else c for c in text)
    return text


def shown_lines(text: str) -> str:
    """``text`` with its own line breaks and tabs (a job's output, meant to be read as lines),
    but every other control character as ``shown`` writes it: nothing acts on the terminal."""
    return "\n".join(
        "\t".join(shown(part) for part in line.split("\t")) for line in text.split("\n")
    )


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str = "",
    wrap: Sequence[str] = (),
    shrink: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> None:
    """A table whose ids, names, times and statuses are never wrapped nor cut.

    Columns named in ``wrap`` (a schedule in words) wrap between words, never inside one; those
    in ``shrink`` (an error, a command) give up their width first, cut with an ellipsis. On a
    terminal too narrow for every column at that, the ``optional`` ones are left out, in that
    order (``--json`` and piped output have them all). Piped, every row is one line at full
    width, whatever the terminal.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    title = shown(title)
    if not sys.stdout.isatty() or not _rich_table(headers, cells, title, wrap, shrink, optional):
        _plain_table(headers, cells)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):  # a hand-edited result line's field: as JSON writes it
        value = json.dumps(value, ensure_ascii=False, default=str)
    # One row per line: a line break inside a value (an error's stderr tail) would split it.
    return shown(" ".join(str(value).splitlines()))


def _plain_table(headers: Sequence[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    sys.stdout.write("\n".join(line.rstrip() for line in lines) + "\n")


# A shrinking column keeps at least this much ("exit co…"): enough to tell some errors apart.
_SHRUNK_WIDTH = 8
# What each column costs beyond its text: a space of padding either side and the separator.
_COLUMN_OVERHEAD = 3


def _rich_table(
    headers: Sequence[str],
    rows: list[list[str]],
    title: str,
    wrap: Sequence[str],
    shrink: Sequence[str],
    optional: Sequence[str],
) -> bool:
    """Print the table on the terminal; False when even without the optional columns it is
    too wide (then plain lines, which the terminal may wrap, but nothing is cut)."""
    from rich.console import Console

    console = Console()
    shown = list(headers)
    droppable = [header for header in optional if header in shown]
    while True:
        widths = _widths(headers, rows, shown, wrap, shrink, console.width)
        if widths is not None:
            console.print(_build(headers, rows, shown, widths, title, wrap, shrink))
            return True
        if not droppable:
            return False
        shown.remove(droppable.pop(0))


def _widths(
    headers: Sequence[str],
    rows: list[list[str]],
    shown: list[str],
    wrap: Sequence[str],
    shrink: Sequence[str],
    room: int,
) -> list[int] | None:
    """Each shown column's width, chosen here rather than by rich, which would squeeze a
    no-wrap column (an id) to nothing before it cut a long error; None if they cannot fit."""
    least, most = [], []
    for header in shown:
        texts = [header, *(row[headers.index(header)] for row in rows)]
        natural = max(len(text) for text in texts)
        if header in wrap:
            least.append(max(len(word) for text in texts for word in text.split()))
        elif header in shrink:
            least.append(min(_SHRUNK_WIDTH, natural))
        else:
            least.append(natural)
        most.append(natural)
    spare = room - sum(least) - _COLUMN_OVERHEAD * len(shown) + 1
    if spare < 0:
        return None
    widths = list(least)
    # What is left goes to the schedules first (fewer lines), then to the errors.
    for kind in (wrap, shrink):
        for index, header in enumerate(shown):
            if header in kind:
                extra = min(spare, most[index] - widths[index])
                widths[index] += extra
                spare -= extra
    return widths


def _build(
    headers: Sequence[str],
    rows: list[list[str]],
    shown: list[str],
    widths: list[int],
    title: str,
    wrap: Sequence[str],
    shrink: Sequence[str],
) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # No outer border: columns apart as `ps` or `kubectl` print them, and nothing to lose at
    # the right edge of a narrow terminal.
    # Text, not str: rich reads a str as markup and emoji codes, and a label, a command or a
    # path may hold "[/x]" or ":smile:" (a MarkupError, or brackets that vanish).
    table = Table(
        title=Text(title) if title else None,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for header, width in zip(shown, widths, strict=True):
        if header in shrink:
            table.add_column(header, width=width, no_wrap=True, overflow="ellipsis")
        elif header in wrap:
            table.add_column(header, width=width, overflow="fold")  # wide enough for any word
        else:
            table.add_column(header, width=width, no_wrap=True)
    indexes = [headers.index(header) for header in shown]
    for row in rows:
        table.add_row(*(Text(row[index]) for index in indexes))
    return table
