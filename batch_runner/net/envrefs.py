"""``${VAR}``: the one way an outbound call takes a value from the environment (SPEC 8, 11).

HTTP jobs (URL, header values, parameter values, body strings) and webhooks (URL, header
values) both use it, with one syntax: ``${NAME}`` is replaced by the variable's value and
``$${NAME}`` stands for a literal ``${NAME}``. The reference is resolved when the call is made,
so a secret never sits in the config file, the state database or a record. An ``Expander``
remembers every value it put in: the caller treats them all as secrets (``net.secrets``).
"""

from __future__ import annotations

import re

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(LookupError):
    """A variable named in the config is not set; ``str()`` names it and where it was used."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(name, where)
        self.name, self.where = name, where

    def __str__(self) -> str:
        return f"the environment variable {self.name} is not set (used in {self.where})"


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (escaped ``$${X}`` excluded)."""
    return [m.group(2) for m in _REFERENCE.finditer(text) if not m.group(1)]


def lookup(name: str, environ: Mapping[str, str], where: str) -> str:
    """The value of the variable ``name``; MissingVariable (naming ``where``) if it is unset."""
    value = environ.get(name)
    if value is None:
        raise MissingVariable(name, where)
    return value


class Expander:
    """Expands references from one environment; ``used`` lists every value it put in."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.used: list[str] = []

    def text(self, text: str, where: str) -> str:
        """``text`` with every ``${VAR}`` replaced; MissingVariable naming ``where`` if unset."""

        def value(match: re.Match[str]) -> str:
            escaped, name = match.groups()
            if escaped:
                return "${" + name + "}"
            found = lookup(name, self.environ, where)
            self.used.append(found)
            return found

        return _REFERENCE.sub(value, text)

    def json(self, value: Any, where: str) -> Any:
        """A JSON value with references expanded in every string (keys stay as written)."""
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, list):
            return [self.json(item, where) for item in value]
        if isinstance(value, dict):
            return {key: self.json(item, where) for key, item in value.items()}
        return value


def expand(text: str, environ: Mapping[str, str], where: str = "a value") -> str:
    """``text`` with every ``${VAR}`` replaced, for a caller that needs no record of values."""
    return Expander(environ).text(text, where)


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
