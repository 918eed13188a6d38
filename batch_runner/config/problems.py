"""Every problem of a config as one sentence at one JSON path: what was found, what is allowed.

pydantic's errors are turned into our own wording here (``found 0; expected a number greater
than 0``), and the checks pydantic cannot make on a single object are added: duplicate keys,
duplicate job names, a misspelt top-level key, a job's lane that settings.lanes lacks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batch_runner.config import lanes
from batch_runner.config.jsonpos import JsonPath, JsonPositions, format_path
from batch_runner.config.models import KEYS
from batch_runner.config.words import did_you_mean, show

_TOP_LEVEL = ("jobs", "settings")
_LANE_NAME = re.compile(lanes.LANE_NAME_PATTERN)
_EXPECTED = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_too_short": "a non-empty string",
}
_BOUNDS = {
    "greater_than": ("gt", "a number greater than {}"),
    "greater_than_equal": ("ge", "a number of at least {}"),
    "less_than": ("lt", "a number less than {}"),
    "less_than_equal": ("le", "a number of at most {}"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem; ``at_key`` points at the key itself (unknown or repeated keys)."""

    path: JsonPath
    message: str
    at_key: bool = False

    def line(self, file: str, positions: JsonPositions | None) -> str:
        where = format_path(self.path)
        offset = positions.offset_of(self.path, key=self.at_key) if positions else None
        if positions is not None and offset is not None:
            line, column = positions.line_column(offset)
            where += f" (line {line}, column {column})"
        return f"{file}: {where}: {self.message}"

    def sort_key(self, positions: JsonPositions | None) -> int:
        offset = positions.offset_of(self.path, key=self.at_key) if positions else None
        return -1 if offset is None else offset


def from_pydantic(errors: list[Any], document: Any) -> list[Problem]:
    """Our problems for pydantic's ``ValidationError.errors()``."""
    return [_translate(error, document) for error in errors]


def _translate(error: Mapping[str, Any], document: Any) -> Problem:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    path = _without_tags(tuple(error["loc"]))
    if path[-1:] == ("[key]",):  # a key of a dict itself is wrong (settings.lanes)
        return Problem(path[:-1], _translate({**error, "loc": path[:-1]}, document).message, True)
    if kind == "missing":
        return Problem(path, f'required key "{path[-1]}" is missing')
    if kind == "extra_forbidden":
        return Problem(path, _unknown_key(path, document), at_key=True)
    if kind == "config":
        return Problem(path, str(error["msg"]).rstrip("."))
    if kind == "literal_error":
        return Problem(path, _not_one_of(value, re.findall(r"'([^']*)'", ctx["expected"])))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _bad_type_tag(path, value, _type_tags(path))
    if kind in _BOUNDS:
        name, template = _BOUNDS[kind]
        return Problem(path, f"found {show(value)}; expected {template.format(_number(ctx[name]))}")
    if kind == "too_short":
        count = ctx["min_length"]
        return Problem(
            path,
            f"found {show(value)}; expected a list of at least {count} "
            f"item{'s' if count != 1 else ''}",
        )
    if kind in _EXPECTED:
        return Problem(path, f"found {show(value)}; expected {_EXPECTED[kind]}")
    message = str(error["msg"])
    return Problem(path, f"found {show(value)}; {message[:1].lower()}{message[1:]}")


def _without_tags(loc: JsonPath) -> JsonPath:
    # pydantic puts the tag of a tagged union into the location: jobs.0.command.timeout.
    if len(loc) >= 3 and loc[0] == "jobs" and isinstance(loc[1], int):
        return loc[:2] + loc[3:]
    if len(loc) >= 4 and loc[:2] == ("settings", "notifiers") and isinstance(loc[2], int):
        return loc[:3] + loc[4:]
    return loc


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _type_tags(path: JsonPath) -> list[str]:
    """The allowed values of ``type`` for the tagged object at ``path`` (a job or a notifier)."""
    prefix = "job:" if path[:1] == ("jobs",) else "notifier:"
    return [kind.removeprefix(prefix) for kind in KEYS if kind.startswith(prefix)]


def _not_one_of(value: Any, allowed: list[str]) -> str:
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    return f"found {show(value)}; expected one of {', '.join(map(show, allowed))}{hint}"


def _bad_type_tag(path: JsonPath, value: Any, allowed: list[str]) -> Problem:
    if not isinstance(value, dict):
        return Problem(path, f"found {show(value)}; expected an object")
    if "type" not in value:
        return Problem(
            (*path, "type"),
            f'required key "type" is missing; expected one of {", ".join(map(show, allowed))}',
        )
    return Problem((*path, "type"), _not_one_of(value["type"], allowed))


def _unknown_key(path: JsonPath, document: Any) -> str:
    key = str(path[-1])
    kind = _object_kind(path[:-1], document)
    allowed = KEYS.get(kind, ())
    if kind.startswith("job:"):
        other = "job:http" if kind == "job:command" else "job:command"
        if key in KEYS[other]:
            return f'"{key}" does not apply to a job of type "{kind[4:]}"'
    hint = did_you_mean(key, allowed)
    if hint or not allowed:
        return f'unknown key "{key}"{hint}'
    return f'unknown key "{key}"; allowed keys: {", ".join(allowed)}'


def _object_kind(path: JsonPath, document: Any) -> str:
    """Which kind of object (a key of ``models.KEYS``) sits at ``path``."""
    if len(path) == 2 and path[0] == "jobs":
        return f"job:{_raw_type(_at(document, path), 'command')}"
    if len(path) == 3 and path[:2] == ("settings", "notifiers"):
        return f"notifier:{_raw_type(_at(document, path), '')}"
    return ".".join(map(str, path)) or "top"


def _raw_type(obj: Any, default: str) -> str:
    kind = obj.get("type", default) if isinstance(obj, dict) else default
    return kind if isinstance(kind, str) else default


def _at(document: Any, path: JsonPath) -> Any:
    for part in path:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None
    return document


# --- checks across objects -----------------------------------------------------------------


def duplicate_keys(positions: JsonPositions) -> list[Problem]:
    return [
        Problem(
            path,
            f'the key "{path[-1]}" appears more than once in this object; '
            "JSON keeps only the last one, so remove the others",
            at_key=True,
        )
        for path, _ in positions.duplicates
    ]


def duplicate_names(document: Mapping[str, Any]) -> list[Problem]:
    jobs = document.get("jobs")
    first: dict[str, int] = {}
    problems = []
    for index, job in enumerate(jobs if isinstance(jobs, list) else []):
        name = job.get("name") if isinstance(job, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                Problem(
                    ("jobs", index, "name"),
                    f"the job name {show(name)} is "
                    f"already used by jobs[{first[name]}]; names must be unique",
                )
            )
        first.setdefault(name, index)
    return problems


def unconfigured_lanes(document: Mapping[str, Any]) -> list[Problem]:
    """Each job whose ``lane`` settings.lanes does not name (nor is "default").

    Only names that are valid lanes are judged, and only against a settings.lanes that is an
    object: anything else is reported once, by the models.
    """
    settings = document.get("settings")
    configured = settings.get("lanes", {}) if isinstance(settings, dict) else {}
    jobs = document.get("jobs")
    if not isinstance(configured, dict) or not isinstance(jobs, list):
        return []
    # Only valid names are offered: an invalid one is reported at its own key.
    known = [name for name in configured if isinstance(name, str) and _LANE_NAME.fullmatch(name)]
    problems = []
    for index, job in enumerate(jobs):
        lane = job.get("lane") if isinstance(job, dict) else None
        if isinstance(lane, str) and _LANE_NAME.fullmatch(lane):
            sentence = lanes.unknown_lane(known, lane)
            if sentence is not None:
                problems.append(Problem(("jobs", index, "lane"), sentence))
    return problems


def misspelt_top_level(document: Mapping[str, Any]) -> list[Problem]:
    """Unknown top-level keys are kept and ignored, except what looks like a misspelt one."""
    problems = []
    for key in document:
        close = difflib.get_close_matches(key, _TOP_LEVEL, n=1, cutoff=0.75)
        if key not in _TOP_LEVEL and close and close[0] not in document:
            problems.append(
                Problem((key,), f'unknown key "{key}" (did you mean "{close[0]}"?)', at_key=True)
            )
    return problems
