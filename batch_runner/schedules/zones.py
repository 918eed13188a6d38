"""Time zones by IANA name, and the system's own zone as the C library sees it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from batch_runner.schedules.kinds import ScheduleError
from batch_runner.schedules.parse import did_you_mean, show


def resolve_tz(name: str | None) -> tzinfo:
    """The named IANA zone, or with None the system's local zone; ScheduleError if unknown."""
    if name is None:
        return _local_tz()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        hint = did_you_mean(name, available_timezones())
        raise ScheduleError(
            f"time zone {show(name)} is not a known IANA time zone{hint}; "
            'use a name such as "Europe/Berlin", "America/New_York" or "UTC".'
        ) from exc


def _local_tz() -> tzinfo:
    # $TZ wins, as it does for the C library; else the zone /etc/localtime points at.
    source = os.environ["TZ"].lstrip(":") if "TZ" in os.environ else "/etc/localtime"
    zone = _zone_from(source) if source else None
    # Last resort, e.g. a POSIX rule such as "JST-9" that the C library honours: its offset now.
    return zone or datetime.now().astimezone().tzinfo or UTC


def _zone_from(source: str) -> ZoneInfo | None:
    if not source.startswith("/"):
        return _zone_named(source)
    # Prefer the zone's name (".../zoneinfo/Europe/Berlin") so str(zone) means something.
    _, marker, key = os.path.realpath(source).partition("/zoneinfo/")
    if marker and (zone := _zone_named(key)):
        return zone
    try:
        with open(source, "rb") as handle:
            return ZoneInfo.from_file(handle, key=source)
    except (OSError, ValueError):
        return None


def _zone_named(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None
