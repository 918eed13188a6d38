"""Edits of a config's text that change one job's text and leave every other byte alone.

The editing commands change the parsed document; writing it back with ``json.dumps`` would
reformat the whole file (a config of one-line jobs would become indented blocks). These
functions make the same change in the text instead, in the style of the neighbouring job:
one line if it is one line, else its indentation, and the file's line ending. Each returns
None where it cannot tell the style (the caller then writes the whole document); the caller
also checks that the new text parses to the intended document before it writes anything.
"""

from __future__ import annotations

import json
from typing import Any

from batch_runner.config.jsonpos import JsonPath, JsonPositions


def line_ending(text: str) -> str:
    """The line ending most of ``text``'s lines end with; ``\\n`` when it has none."""
    crlf = text.count("\r\n")
    counts = {"\n": text.count("\n") - crlf, "\r\n": crlf, "\r": text.count("\r") - crlf}
    return max(counts, key=lambda ending: counts[ending]) if any(counts.values()) else "\n"


def replace_value(text: str, at: JsonPositions, path: JsonPath, value: Any) -> str | None:
    """``text`` with the value at ``path`` replaced by ``value`` (as compact, one-line JSON)."""
    if path not in at.values:
        return None
    return text[: at.values[path]] + _one_line(value) + text[at.ends[path] :]


def remove_element(text: str, at: JsonPositions, array: JsonPath, index: int) -> str | None:
    """``text`` without element ``index`` of the array at ``array``, and its comma."""
    count = _length(text, at, array)
    if count is None or not 0 <= index < count:
        return None
    if count == 1:
        return text[: at.values[array]] + "[]" + text[at.ends[array] :]
    if index < count - 1:  # up to the next element, which takes this one's place and indent
        return text[: at.values[(*array, index)]] + text[at.values[(*array, index + 1)] :]
    return text[: at.ends[(*array, index - 1)]] + text[at.ends[(*array, index)] :]


def append_element(text: str, at: JsonPositions, array: JsonPath, value: Any) -> str | None:
    """``text`` with ``value`` after the last element of the array at ``array``, styled like it."""
    count = _length(text, at, array)
    if count is None:
        return None
    if count == 0:
        return _fill_empty(text, at, array, value)
    last = (*array, count - 1)
    start, end = at.values[last], at.ends[last]
    indent, newline = _indent_before(text, start), line_ending(text)
    if not _spans_lines(text[start:end]):
        rendered = _one_line(value)
    else:
        unit = _inner_indent(text, at, last)
        if indent is None or unit is None:
            return None
        rendered = json.dumps(value, indent=unit, ensure_ascii=False)
        rendered = rendered.replace("\n", newline + indent)
    separator = ", " if indent is None else "," + newline + indent
    return text[:end] + separator + rendered + text[end:]


def add_key(text: str, at: JsonPositions, obj: JsonPath, key: str, value: Any) -> str | None:
    """``text`` with ``"key": value`` after the last key of the object at ``obj``."""
    children = [path for path in at.keys if path[:-1] == obj and len(path) == len(obj) + 1]
    if obj not in at.values or not children:
        return None
    last = max(children, key=lambda path: at.keys[path])
    end = at.ends[last]
    pair = json.dumps(key, ensure_ascii=False) + ": " + _one_line(value)
    if not _spans_lines(text[at.values[obj] : at.ends[obj]]):
        return text[:end] + ", " + pair + text[end:]
    indent = _indent_before(text, at.keys[last])
    if indent is None:
        return None
    return text[:end] + "," + line_ending(text) + indent + pair + text[end:]


def _fill_empty(text: str, at: JsonPositions, array: JsonPath, value: Any) -> str:
    """The empty array at ``array`` holding ``value`` alone. With no element to copy, the style
    comes from the array's key: on a line of its own in a multi-line object, the value gets a
    line one level deeper (a level being the key's indent past its object's line), and the
    closing bracket goes back under the key; anywhere else, all of it stays on one line."""
    start, end = at.values[array], at.ends[array]
    rendered = _one_line(value)
    parent = array[:-1]
    key_indent = _indent_before(text, at.keys[array]) if array in at.keys else None
    if key_indent is not None and _spans_lines(text[at.values[parent] : at.ends[parent]]):
        outer = _line_indent(text, at.values[parent])
        if key_indent.startswith(outer):
            newline, inner = line_ending(text), key_indent + key_indent[len(outer) :]
            rendered = newline + inner + rendered + newline + key_indent
    return text[:start] + "[" + rendered + "]" + text[end:]


def _length(text: str, at: JsonPositions, array: JsonPath) -> int | None:
    """How many elements the array at ``array`` has; None if there is no array there."""
    if array not in at.values or not text.startswith("[", at.values[array]):
        return None
    count = 0
    while (*array, count) in at.values:
        count += 1
    return count


def _spans_lines(fragment: str) -> bool:
    return "\n" in fragment or "\r" in fragment


def _line_start(text: str, offset: int) -> int:
    # JSON allows a lone CR as whitespace too, and some old files end their lines with one.
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def _line_indent(text: str, offset: int) -> str:
    """The whitespace that starts the line ``offset`` is on."""
    line = text[_line_start(text, offset) : offset]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_before(text: str, offset: int) -> str | None:
    """The whitespace between the start of the line and ``offset``; None if anything else is."""
    lead = text[_line_start(text, offset) : offset]
    return lead if not lead.strip() else None


def _inner_indent(text: str, at: JsonPositions, obj: JsonPath) -> str | None:
    """What the first key of a multi-line object is indented by past the object (spaces, a tab)."""
    first = min((at.keys[p] for p in at.keys if p[:-1] == obj), default=None)
    outer, inner = _indent_before(text, at.values[obj]), None
    if first is not None:
        inner = _indent_before(text, first)
    if outer is None or inner is None or len(inner) <= len(outer) or not inner.startswith(outer):
        return None
    return inner[len(outer) :]


def _one_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
