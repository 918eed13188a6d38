"""The JSONL results: one whole line per finished attempt (SPEC 7), and reading them back."""

from __future__ import annotations

import fcntl
import json
import os

from batch_runner.errors import StorageError
from batch_runner.files import write_all
from batch_runner.logs import get_logger
from batch_runner.state.layout import LogLayout
from batch_runner.timefmt import day_stamp, parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

log = get_logger("batch_runner")

RECORD_FIELDS = (
    "job_name",
    "start_time",
    "end_time",
    "status",
    "output",
    "error",
    "run_id",
    "attempt",
    "max_attempts",
    "exit_code",
    "duration_seconds",
    "trigger",
    "scheduled_for",
    "output_truncated",
    "log_file",
    "host",
    "pid",
)


def append_result(layout: LogLayout, record: dict[str, Any], started_at: float) -> str:
    """Append ``record`` as one line to the results file of the day ``started_at`` falls on.

    The line goes out in one write under an flock, so concurrent writers never interleave and a
    reader never sees half a line from a live writer. A file left ending in half a line (a
    writer killed mid-write on another system, a hand edit) gets its line ended first, so the
    fragment cannot swallow this record.
    """
    path = layout.results_file(day_stamp(started_at))
    line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
    try:
        fd = _open_for_append(layout.results_dir, path)
    except OSError as exc:
        raise StorageError(f"cannot write results to {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _append_whole(fd, line, path)
    finally:
        os.close(fd)
    return path


def _open_for_append(directory: str, path: str) -> int:
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT  # read: the last byte, for a torn line
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:  # the first line ever, or the folder was removed
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.open(path, flags, 0o600)


def _append_whole(fd: int, line: bytes, path: str) -> None:
    start = os.lseek(fd, 0, os.SEEK_END)  # under the flock, no one else appends meanwhile
    if start and os.pread(fd, 1, start - 1) != b"\n":
        line = b"\n" + line
    try:
        write_all(fd, line)
    except OSError as exc:
        # Never leave half a line behind: it would glue onto the next record.
        os.ftruncate(fd, start)
        raise StorageError(f"cannot write results to {path}: {exc.strerror}") from exc


def result_files_newest_first(layout: LogLayout) -> list[tuple[str, str]]:
    """``(YYYYMMDD, path)`` of every results file, the newest day first."""
    try:
        names = os.listdir(layout.results_dir)
    except FileNotFoundError:
        return []
    days = [
        n[len("batch_") : -len(".jsonl")]
        for n in names
        if n.startswith("batch_") and n.endswith(".jsonl")
    ]
    return [(day, layout.results_file(day)) for day in sorted(days, reverse=True)]


def iter_results_newest_first(
    layout: LogLayout, since: float | None = None
) -> Iterator[dict[str, Any]]:
    """Every parseable record, the latest start first (ties: the later line first).

    A file is in the order attempts ended, and its day is the day they started, so only
    records within one file need reordering. Read from the end, every line not yet read ended
    (hence started) no later than the one in hand: a buffered record that started at or after
    that end is known to be next, which keeps ``--limit 20`` from parsing a whole day.
    """
    import heapq

    since_day = day_stamp(since) if since is not None else None
    for day, path in result_files_newest_first(layout):
        if since_day and day < since_day:
            return
        try:
            with open(path, "rb") as file:
                lines = file.read().splitlines()
        except OSError:
            continue
        waiting: list[tuple[float, int, dict[str, Any]]] = []  # (-start, line order, record)
        for order, line in enumerate(reversed(lines)):
            record = _parse_line(line)
            if record is None:
                if line.strip():
                    _warn_damaged(path, len(lines) - order)
                continue
            ended = _time_of(record, "end_time")
            # A run canceled before it started has no start: it sorts by when it was canceled.
            started = _time_of(record, "start_time") if record.get("start_time") else ended
            ended = max(ended, started)
            while waiting and -waiting[0][0] >= ended:
                yield heapq.heappop(waiting)[2]
            if since is None or started >= since:
                heapq.heappush(waiting, (-started, order, record))
        while waiting:
            yield heapq.heappop(waiting)[2]


def _warn_damaged(path: str, number: int) -> None:
    log.warning(
        "skipped line %d of %s: not a whole JSON record (a torn or damaged line)", number, path
    )


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a line cut short by a full disk; the rest of the file is still good
    return record if isinstance(record, dict) else None


def _time_of(record: dict[str, Any], key: str) -> float:
    try:
        return parse_iso(str(record.get(key)))
    except (ValueError, OverflowError):
        return 0.0
