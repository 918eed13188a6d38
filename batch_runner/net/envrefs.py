"""``${VAR}`` in a URL, a header value, a parameter value or a body string (SPEC 11).

The reference is resolved when the attempt starts, from the runner's environment, so a secret
never sits in the config file, in the state database or in a record: everything shown of a
request shows the reference, not its value. ``$${VAR}`` stands for a literal ``${VAR}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(LookupError):
    """A ``${VAR}`` names a variable that is not set; ``name`` is the variable."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"the environment variable {self.name} is not set (referenced as ${{{self.name}}})"


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (escaped ``$${X}`` excluded)."""
    return [m.group(2) for m in _REFERENCE.finditer(text) if not m.group(1)]


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every ``${VAR}`` replaced by its value; MissingVariable if one is unset."""

    def value(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in environ:
            raise MissingVariable(name)
        return environ[name]

    return _REFERENCE.sub(value, text)


def expand_json(value: Any, environ: Mapping[str, str]) -> Any:
    """A JSON value with ``${VAR}`` expanded in every string (keys stay as written)."""
    if isinstance(value, str):
        return expand(value, environ)
    if isinstance(value, list):
        return [expand_json(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: expand_json(item, environ) for key, item in value.items()}
    return value


def strings_of(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string inside a JSON value with its path below ``value``: where references live."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_of(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_of(item, (*path, key))
