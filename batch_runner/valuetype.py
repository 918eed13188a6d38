"""Immutable value types with the class syntax of ``typing.NamedTuple``, at no import cost.

``run-job`` runs from cron every minute with a start-up budget of 50 ms: importing ``typing``
costs 2.5 ms here and ``dataclasses`` (which imports ``inspect``) more. ``Record`` reads a
class body the way ``typing.NamedTuple`` does (annotated fields, defaults, methods) and
builds a tuple subclass with what ``collections.namedtuple`` gives (field getters, ``_fields``,
``_replace``, ``_asdict``, ``_make``, the repr); the type checker sees ``typing.NamedTuple``
itself, so every field, ``_replace`` and ``_asdict`` is checked::

    class Occurrence(Record):
        job_name: str
        due: float
        trigger: str = "schedule"

It does not call ``collections.namedtuple``, whose ``eval`` of a generated ``__new__`` costs
about 55 us a class: with eleven records on ``run-job``'s path that was half a millisecond
of every cron minute. The generic ``__new__`` here costs nothing to build and stays on the
fast path (one C call) when every field is given by position.
"""

from __future__ import annotations

__all__ = ["Record"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from operator import itemgetter

    try:  # the C getter namedtuple itself uses; a property of itemgetter elsewhere
        from _collections import _tuplegetter
    except ImportError:  # pragma: no cover - CPython always has it

        def _tuplegetter(index, doc):
            return property(itemgetter(index), doc=doc)

    # Class attributes that belong to the class statement, not to the record's fields.
    _NOT_COPIED = frozenset(
        {"__module__", "__qualname__", "__annotations__", "__slots__", "__orig_bases__"}
    )
    _MISSING = object()

    # Keyword calls of one record class after which its ``__new__`` is compiled the way
    # namedtuple compiles it: bulk builders (10,000 jobs of a config) then bind keywords in C
    # again, while a run-job that builds each record a few times never pays for the compiling.
    _COMPILE_AFTER = 64

    def _constructor(typename, fields, defaults, owner):
        count = len(fields)
        first_default = count - len(defaults)
        defaults_all = (_MISSING,) * first_default + defaults
        pairs = tuple(zip(fields, defaults_all, strict=True))
        tuple_new = tuple.__new__
        keyword_calls = 0

        def __new__(cls, *args, **kwargs):
            nonlocal keyword_calls
            if kwargs:
                keyword_calls += 1
                if keyword_calls == _COMPILE_AFTER:
                    _compile(owner[0], typename, fields, defaults)
                if args:
                    kwargs = _merged(typename, fields, args, kwargs)
                values = [kwargs.pop(name, default) for name, default in pairs]
                if kwargs:
                    raise TypeError(f"{typename}() got unexpected keyword arguments {list(kwargs)}")
            elif len(args) == count:
                return tuple_new(cls, args)
            elif len(args) > count:
                raise TypeError(f"{typename}() takes {count} arguments but {len(args)} were given")
            else:
                values = [*args, *defaults_all[len(args) :]]
            for index in range(first_default):
                if values[index] is _MISSING:
                    raise TypeError(f"{typename}() missing argument {fields[index]!r}")
            return tuple_new(cls, values)

        return __new__

    def _compile(record, typename, fields, defaults):
        from collections import namedtuple

        compiled = namedtuple(typename, fields, defaults=defaults).__new__
        record.__new__ = staticmethod(compiled)

    def _merged(typename, fields, args, kwargs):
        if len(args) > len(fields):
            raise TypeError(
                f"{typename}() takes {len(fields)} arguments but {len(args)} were given"
            )
        merged = dict(zip(fields, args, strict=False))  # args may be fewer
        for name in kwargs:
            if name in merged:
                raise TypeError(f"{typename}() got multiple values for argument {name!r}")
        merged.update(kwargs)
        return merged

    def _make(cls, iterable):
        result = tuple.__new__(cls, iterable)
        if len(result) != len(cls._fields):
            raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
        return result

    def _replace(self, /, **changes):
        result = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError(f"Got unexpected field names: {list(changes)!r}")
        return result

    def _asdict(self):
        return dict(zip(self._fields, self, strict=True))

    def __repr__(self):
        pairs = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
        )
        return f"{type(self).__name__}({pairs})"

    def __getnewargs__(self):
        return tuple(self)

    class _RecordMeta(type):
        def __new__(mcls, typename: str, bases: tuple[type, ...], namespace: dict) -> type:
            if not bases:  # ``Record`` itself
                return super().__new__(mcls, typename, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            defaults = []
            for name in fields:
                if name in namespace:
                    defaults.append(namespace[name])
                elif defaults:
                    raise TypeError(f"{typename}.{name} has no default but follows one that has")
            owner = []  # the class, once built: the constructor may replace itself on it
            body = {
                "__slots__": (),
                "__module__": namespace["__module__"],
                "__qualname__": namespace.get("__qualname__", typename),
                "__doc__": None,
                "__new__": _constructor(typename, fields, tuple(defaults), owner),
                "__repr__": __repr__,
                "__getnewargs__": __getnewargs__,
                "__match_args__": fields,
                "_fields": fields,
                "_field_defaults": dict(
                    zip(fields[len(fields) - len(defaults) :], defaults, strict=True)
                ),
                "_make": classmethod(_make),
                "_replace": _replace,
                "_asdict": _asdict,
            }
            for index, name in enumerate(fields):
                body[name] = _tuplegetter(index, f"Alias for field number {index}")
            for key, value in namespace.items():
                if key not in fields and key not in _NOT_COPIED:
                    body[key] = value
            record = type.__new__(type, typename, (tuple,), body)
            owner.append(record)
            return record

    class Record(metaclass=_RecordMeta):
        """Base of an immutable record: its annotated class attributes are the fields."""
