"""Where each key and value of a JSON text sits, by JSON path, for messages with line and column.

``json.loads`` keeps no positions and silently drops all but the last of duplicate keys, so a
second, tiny pass over text that ``json.loads`` has already accepted records both. It only has
to cope with valid JSON, which keeps it small.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # public, not in typeshed

JsonPath = tuple[str | int, ...]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Also NaN and Infinity, which json.loads accepts; the loader rejects them before we get here.
_SCALAR = re.compile(r"-?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|Infinity)|true|false|null|NaN")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class JsonPositions:
    """Character offsets of values and keys by path, plus every repeated key."""

    text: str
    values: dict[JsonPath, int] = field(default_factory=dict)
    ends: dict[JsonPath, int] = field(default_factory=dict)  # just past each value
    keys: dict[JsonPath, int] = field(default_factory=dict)
    duplicates: list[tuple[JsonPath, int]] = field(default_factory=list)
    _line_starts: list[int] = field(default_factory=list)

    def line_column(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset, as json's own errors count them."""
        if not self._line_starts:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def offset_of(self, path: JsonPath, *, key: bool = False) -> int | None:
        """The key's offset (``key=True``) or the value's, else the nearest enclosing value's."""
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path)


def scan(text: str) -> JsonPositions:
    """Positions in ``text``, which must be JSON that ``json.loads`` accepted."""
    positions = JsonPositions(text)
    try:
        _Scanner(text, positions).value(0, ())
    except (RecursionError, IndexError, ValueError):
        # Positions only improve messages; without them the problems are still reported.
        positions.values.clear()
        positions.keys.clear()
        positions.ends.clear()
    return positions


def format_path(path: JsonPath) -> str:
    """``jobs[2].schedule_time``; keys that are not identifiers are quoted: ``env["A B"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out or "(top level)"


class _Scanner:
    def __init__(self, text: str, positions: JsonPositions) -> None:
        self.text = text
        self.out = positions

    def skip(self, i: int) -> int:
        match = _WHITESPACE.match(self.text, i)
        return match.end() if match else i

    def value(self, i: int, path: JsonPath) -> int:
        """Records the value starting at or after ``i``; returns the offset just past it."""
        i = self.skip(i)
        self.out.values[path] = i
        end = self._past(i, path)
        self.out.ends[path] = end
        return end

    def _past(self, i: int, path: JsonPath) -> int:
        char = self.text[i]
        if char == "{":
            return self.object(i + 1, path)
        if char == "[":
            return self.array(i + 1, path)
        if char == '"':
            end: int = scanstring(self.text, i + 1)[1]
            return end
        match = _SCALAR.match(self.text, i)
        if match is None:
            raise ValueError(f"no JSON value at offset {i}")
        return match.end()

    def object(self, i: int, path: JsonPath) -> int:
        i = self.skip(i)
        if self.text[i] == "}":
            return i + 1
        seen: set[str] = set()
        while True:
            i = self.skip(i)
            key, end = scanstring(self.text, i + 1)
            child = (*path, key)
            if key in seen:
                self.out.duplicates.append((child, i))
            seen.add(key)
            # json.loads keeps the last of duplicate keys, so the last position is the one to show.
            self.out.keys[child] = i
            i = self.skip(self.value(self.skip(end) + 1, child))
            if self.text[i] == "}":
                return i + 1
            i += 1  # the comma

    def array(self, i: int, path: JsonPath) -> int:
        i = self.skip(i)
        if self.text[i] == "]":
            return i + 1
        index = 0
        while True:
            i = self.skip(self.value(i, (*path, index)))
            if self.text[i] == "]":
                return i + 1
            i += 1
            index += 1
