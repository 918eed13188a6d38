"""Edits of a config's text that change one job's text and leave every other byte alone.

The editing commands change the parsed document; writing it back with ``json.dumps`` would
reformat the whole file (a config of one-line jobs would become indented blocks). These
functions make the same change in the text instead, in the style of the neighbouring job:
one line if it is one line, else its indentation. Each returns None where it cannot tell the
style (the caller then writes the whole document); the caller also checks that the new text
parses to the intended document before it writes anything.
"""

from __future__ import annotations

import json
from typing import Any

from batch_runner.config.jsonpos import JsonPath, JsonPositions


def replace_value(text: str, at: JsonPositions, path: JsonPath, value: Any) -> str | None:
    """``text`` with the value at ``path`` replaced by ``value`` (as compact, one-line JSON)."""
    if path not in at.values:
        return None
    return text[: at.values[path]] + _one_line(value) + text[at.ends[path] :]


def remove_element(text: str, at: JsonPositions, array: JsonPath, index: int) -> str | None:
    """``text`` without element ``index`` of the array at ``array``, and its comma."""
    count = _length(at, array)
    if count is None or not 0 <= index < count:
        return None
    if count == 1:
        return text[: at.values[array]] + "[]" + text[at.ends[array] :]
    if index < count - 1:  # up to the next element, which takes this one's place and indent
        return text[: at.values[(*array, index)]] + text[at.values[(*array, index + 1)] :]
    return text[: at.ends[(*array, index - 1)]] + text[at.ends[(*array, index)] :]


def append_element(text: str, at: JsonPositions, array: JsonPath, value: Any) -> str | None:
    """``text`` with ``value`` after the last element of the array at ``array``, styled like it."""
    count = _length(at, array)
    if not count:
        return None  # no neighbour to take the style from
    last = (*array, count - 1)
    start, end = at.values[last], at.ends[last]
    indent = _indent_before(text, start)
    if "\n" not in text[start:end]:
        rendered = _one_line(value)
    else:
        unit = _inner_indent(text, at, last)
        if indent is None or unit is None:
            return None
        rendered = json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", "\n" + indent)
    separator = ", " if indent is None else ",\n" + indent
    return text[:end] + separator + rendered + text[end:]


def add_key(text: str, at: JsonPositions, obj: JsonPath, key: str, value: Any) -> str | None:
    """``text`` with ``"key": value`` after the last key of the object at ``obj``."""
    children = [path for path in at.keys if path[:-1] == obj and len(path) == len(obj) + 1]
    if obj not in at.values or not children:
        return None
    last = max(children, key=lambda path: at.keys[path])
    end = at.ends[last]
    pair = json.dumps(key, ensure_ascii=False) + ": " + _one_line(value)
    if "\n" not in text[at.values[obj] : at.ends[obj]]:
        return text[:end] + ", " + pair + text[end:]
    indent = _indent_before(text, at.keys[last])
    if indent is None:
        return None
    return text[:end] + ",\n" + indent + pair + text[end:]


def _length(at: JsonPositions, array: JsonPath) -> int | None:
    if array not in at.values:
        return None
    count = 0
    while (*array, count) in at.values:
        count += 1
    return count


def _indent_before(text: str, offset: int) -> str | None:
    """The whitespace between the start of the line and ``offset``; None if anything else is."""
    line_start = text.rfind("\n", 0, offset) + 1
    lead = text[line_start:offset]
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
