"""``Record``: typing.NamedTuple's class syntax, built at run time without importing typing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batch_runner.valuetype import Record


class Point(Record):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)

    @classmethod
    def origin(cls) -> Point:
        return cls(0)


def test_fields_defaults_and_tuple_behaviour() -> None:
    p = Point(1, label="a")
    assert p == (1, 0, "a")
    assert (p.x, p.y, p.label) == (1, 0, "a")
    assert Point._fields == ("x", "y", "label")
    assert p._asdict() == {"x": 1, "y": 0, "label": "a"}
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_methods_classmethods_docstring_and_module_are_kept() -> None:
    assert Point(1).moved(2) == Point(3)
    assert Point.origin() == Point(0)
    assert Point.__doc__ == "A point."
    assert Point.__module__ == __name__
    assert not hasattr(Point(1), "__dict__")  # slots: as small as a plain tuple


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="b has no default"):

        class Bad(Record):
            a: int = 1
            b: int


def test_importing_it_does_not_import_typing() -> None:
    code = "import sys, batch_runner.valuetype; print('typing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
