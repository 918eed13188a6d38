"""Immutable value types with the class syntax of ``typing.NamedTuple``, at no import cost.

``run-job`` runs from cron every minute with a start-up budget of 50 ms: importing ``typing``
costs 2.5 ms here and ``dataclasses`` (which imports ``inspect``) more. ``Record`` reads a
class body the way ``typing.NamedTuple`` does (annotated fields, defaults, methods) and
builds a ``collections.namedtuple`` from it; the type checker sees ``typing.NamedTuple``
itself, so every field, ``_replace`` and ``_asdict`` is checked::

    class Occurrence(Record):
        job_name: str
        due: float
        trigger: str = "schedule"
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["Record"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    # Class attributes that belong to the class statement, not to the record's fields.
    _NOT_COPIED = frozenset(
        {"__module__", "__qualname__", "__annotations__", "__slots__", "__orig_bases__"}
    )

    class _RecordMeta(type):
        def __new__(mcls, typename: str, bases: tuple[type, ...], namespace: dict) -> type:
            if not bases:  # ``Record`` itself
                return super().__new__(mcls, typename, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = []
            for name in fields:
                if name in namespace:
                    defaults.append(namespace[name])
                elif defaults:
                    raise TypeError(f"{typename}.{name} has no default but follows one that has")
            cls = namedtuple(typename, fields, defaults=defaults, module=namespace["__module__"])
            for key, value in namespace.items():
                if key not in fields and key not in _NOT_COPIED:
                    setattr(cls, key, value)
            return cls

    class Record(metaclass=_RecordMeta):
        """Base of an immutable record: its annotated class attributes are the fields."""
