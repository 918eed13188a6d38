"""Times as users see them: ISO 8601 in local time with the UTC offset, and durations.

``format_seconds`` lives here rather than beside the executor's verdicts because every reason
that names a duration (a job's timeout, a network call's, a notifier's) must say it one way.
"""

from __future__ import annotations

import time
from datetime import datetime

# typing costs milliseconds at start-up: the type checker sees its overload, the run time a no-op.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import overload
else:

    def overload(function):  # type: ignore[no-untyped-def]
        return function


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: None) -> None: ...  # noqa: F811
@overload
def iso(ts: float | None) -> str | None: ...  # noqa: F811
def iso(ts: float | None) -> str | None:  # noqa: F811 (ruff sees no overload)
    """Epoch seconds as local ISO 8601 with offset, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def day_stamp(ts: float) -> str:
    """YYYYMMDD of ``ts`` in local time: the results file and run-log folder of an attempt."""
    return time.strftime("%Y%m%d", time.localtime(ts))


def parse_iso(value: str) -> float:
    """ISO 8601 (a bare date or time means local time) to epoch seconds; ValueError if bad."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()


def format_seconds(seconds: float) -> str:
    """1800 -> "1800", 0.3 -> "0.3": no useless decimals."""
    if float(seconds).is_integer():
        return str(int(seconds))
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text if text != "0" else repr(float(seconds))
