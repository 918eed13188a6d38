"""Result lines the JSONL could not take (a full disk): kept in the store, appended later.

Each waiting line goes to the day file of its own start with its own times, exactly once: it
is appended and forgotten in one store transaction, whose write lock keeps two writers of it
apart, and a line whose writer was killed between the append and the commit is found in its
day file by the next writer, which then only forgets it.
"""

from __future__ import annotations

import json
import os

from batch_runner.errors import StorageError
from batch_runner.files import READ_NO_FOLLOW
from batch_runner.state.layout import LogLayout
from batch_runner.state.results import append_result
from batch_runner.state.store import Store
from batch_runner.timefmt import day_stamp

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What tells one attempt's line from any other: a run's attempts differ in ``attempt``, and a
# run removed before it started has a line of its own at attempt 0.
_IDENTITY = ("run_id", "attempt", "status", "start_time", "end_time")


def write_waiting(store: Store, layout: LogLayout) -> int:
    """Append every waiting line, oldest first; how many were appended. Raises the first
    ``StorageError`` (the disk still full), the lines from it on still waiting."""
    appended = 0
    for line in store.unwritten():
        with store.transaction():
            if not store.forget_unwritten(line["seq"]):
                continue  # another process appended it meanwhile
            if not already_written(layout, line["started_at"], line["record"]):
                append_result(layout, line["record"], line["started_at"])
                appended += 1
    return appended


def already_written(layout: LogLayout, started_at: float, record: dict[str, Any]) -> bool:
    """Whether the day file of ``started_at`` holds ``record``'s line."""
    path = layout.results_file(day_stamp(started_at))
    needle = json.dumps(record.get("run_id")).encode()
    wanted = [record.get(key) for key in _IDENTITY]
    try:
        fd = os.open(path, READ_NO_FOLLOW)
        with os.fdopen(fd, "rb") as file:
            # A line at a time: a day's file may be large.
            return any(needle in raw and _identity(raw) == wanted for raw in file)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot read results in {path}: {exc.strerror}") from exc


def _identity(raw: bytes) -> list[Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None  # a torn line: not the one we look for
    return [parsed.get(key) for key in _IDENTITY] if isinstance(parsed, dict) else None
