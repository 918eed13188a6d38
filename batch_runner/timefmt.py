"""Timestamps as users see them: ISO 8601 in local time with the UTC offset."""

from __future__ import annotations

import time
from datetime import datetime


def iso(ts: float | None) -> str | None:
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
