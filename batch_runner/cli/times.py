"""Times typed on the command line: ``--delay 15m``, ``--at 14:30``, ``--at 2026-12-01T08:00``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from batch_runner.errors import UsageError


def parse_delay(text: str) -> float:
    """Seconds from ``30``, ``90s``, ``15m``, ``2h``, ``1d``; 0 means now."""
    from batch_runner.schedules import ScheduleError, parse_schedule

    if re.fullmatch(r"0+(\.0*)?[smhd]?", text.strip(), re.IGNORECASE):
        return 0.0  # an interval cannot be 0, a delay can: a script may compute it
    try:
        return parse_schedule("interval", text).seconds  # type: ignore[union-attr]
    except ScheduleError:
        raise UsageError(
            f"--delay {text!r} is not a duration; use seconds or 90s, 15m, 2h, 1d"
        ) from None


def parse_at(text: str, now: float) -> float:
    """``HH:MM[:SS]`` (the next such local time) or an ISO 8601 date-time."""
    current = datetime.fromtimestamp(now).astimezone()
    try:
        if ":" in text and "-" not in text and "T" not in text:
            parts = [int(p) for p in text.split(":")]
            wanted = current.replace(
                hour=parts[0],
                minute=parts[1],
                second=parts[2] if len(parts) > 2 else 0,
                microsecond=0,
            )
            if wanted.timestamp() <= now:
                wanted += timedelta(days=1)
            return wanted.timestamp()
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.astimezone()).timestamp()
    except (ValueError, IndexError, OverflowError):
        raise UsageError(f"--at {text!r} is not a time; use HH:MM or YYYY-MM-DDTHH:MM") from None
