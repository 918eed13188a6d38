"""Immutable value types that cost nothing to import.

``dataclasses`` imports ``inspect`` and generates code for every class, which costs tens of
milliseconds at start-up; ``run-job`` runs from cron every minute and has a budget of 50 ms
for everything. A named tuple gives the same immutable record with keyword construction,
defaults, equality and ``_replace``.
"""

from __future__ import annotations

from collections import namedtuple

REQUIRED = object()


def record(typename: str, **fields: object) -> type:
    """A named-tuple base class; a field whose default is ``REQUIRED`` must be given.

    Required fields must come first, as in a function signature.
    """
    names = list(fields)
    defaults = [value for value in fields.values() if value is not REQUIRED]
    return namedtuple(typename, names, defaults=defaults)  # type: ignore[misc]
