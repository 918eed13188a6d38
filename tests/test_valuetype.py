"""``Record``: typing.NamedTuple's class syntax, built at run time without importing typing."""

from __future__ import annotations

import pickle
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


def test_keyword_and_positional_binding_errors_read_like_pythons() -> None:
    assert Point(1, y=2) == (1, 2, None)
    assert Point(y=2, x=1) == (1, 2, None)
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point(y=2)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['z'\\]"):
        Point(1, z=2)
    with pytest.raises(TypeError, match="takes 3 arguments but 4 were given"):
        Point(1, 2, "a", 4)  # type: ignore[call-arg]


def test_a_class_built_often_by_keyword_behaves_the_same_once_compiled() -> None:
    class Hot(Record):
        a: int
        b: int = 5

    generic = Hot.__dict__["__new__"]
    # Past the threshold the constructor is namedtuple's compiled one; nothing else changes.
    built = [Hot(a=i) for i in range(200)]
    assert Hot.__dict__["__new__"] is not generic
    assert built[0] == (0, 5) and built[-1] == Hot(199, 5) == Hot(a=199, b=5)
    assert type(built[-1]) is Hot
    with pytest.raises(TypeError):
        Hot(b=1)  # type: ignore[call-arg]


def test_repr_pickle_replace_and_make() -> None:
    p = Point(1, label="a")
    assert repr(p) == "Point(x=1, y=0, label='a')"
    assert pickle.loads(pickle.dumps(p)) == p
    assert type(pickle.loads(pickle.dumps(p))) is Point
    assert p._replace(y=3) == Point(1, 3, "a")
    with pytest.raises(ValueError, match="unexpected field names"):
        p._replace(z=1)  # type: ignore[call-arg]
    assert Point._make([4, 5, None]) == Point(4, 5)
    with pytest.raises(TypeError, match="Expected 3 arguments"):
        Point._make([4])
    assert Point._field_defaults == {"y": 0, "label": None}
    match p:
        case Point(x, y):
            assert (x, y) == (1, 0)
