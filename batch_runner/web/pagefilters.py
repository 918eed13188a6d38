"""How the dashboard's templates write times, durations and statuses."""

from __future__ import annotations

import re
from typing import Any

# What the config allows as a job's name: an ad-hoc run's label (its job_name) may be anything,
# and is shown as text, not as a link to a job.
_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

# A status the stylesheet colours; anything else (a newer version's, a hand-edited line's)
# is drawn plain.
_KNOWN_STATUSES = frozenset(
    {
        "success",
        "error",
        "timeout",
        "stopped",
        "interrupted",
        "canceled",
        "skipped",
        "running",
        "pending",
        "reserved",
    }
)


def when(value: Any) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS`` (its zone is in the ``<time>``'s
    datetime); a dash for none."""
    if not isinstance(value, str) or len(value) < 19:
        return "—" if value is None else str(value)
    return value[:10] + " " + value[11:19]


def duration(value: Any) -> str:
    """Seconds in words a person reads at a glance: ``0.42 s``, ``3 min 4 s``, ``2 h 5 min``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    seconds = float(value)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def status_class(value: Any) -> str:
    return f"st-{value}" if value in _KNOWN_STATUSES else "st-other"


def percent(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    return f"{value:g}"


def job_name(value: Any) -> bool:
    return isinstance(value, str) and _JOB_NAME.fullmatch(value) is not None


FILTERS = {
    "when": when,
    "duration": duration,
    "status_class": status_class,
    "percent": percent,
}
GLOBALS: dict[str, Any] = {"is_job_name": job_name}
