"""Finding one attempt's result line, for recovery after its runner died.

A slot's runner writes an attempt's JSONL line first and its row later (``runs.handoff``), so
a run left ``running`` (or ``reserved``) by a dead runner may have ended: its line says how.
The search must stay cheap in both cases recovery meets: the line of a run that just ended
sits near the end of its day file, and a run killed mid-run has no line at all, in a file that
may hold 100 MB. So each file is read from its end in blocks, only lines holding the run's id
are parsed, and the search stops once it has gone past lines appended before the attempt
began (see ``_scan``).
"""

from __future__ import annotations

import json
import os

from batch_runner.logs import get_logger
from batch_runner.state.results import open_for_reading, result_files_newest_first
from batch_runner.timefmt import day_stamp, parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from batch_runner.state.layout import LogLayout
    from batch_runner.state.store import Store

log = get_logger("batch_runner")

# How far before the start a store knows an attempt's line may say it started: the executor
# reads the clock just before the spawn, which a reserved run's owner records after it (and
# the line's times are cut to the millisecond).
CLOCK_SLACK_SECONDS = 10.0
# A line that ended this long before an attempt began was appended before it began: lines go
# out as attempts end, within moments of the end time they carry.
ENDED_BEFORE_SECONDS = 60.0
# Blocks in a row whose first line ended that early before the search gives up. One could be
# a line appended late with its old times (a full disk kept it back): a run of them would have
# to fill this many blocks to end a search early.
_OLD_BLOCKS_TO_STOP = 4
_BLOCK = 1 << 16


def find_result(
    layout: LogLayout,
    store: Store | None,
    run_id: str,
    attempt: int,
    since: float,
    until: float | None = None,
) -> dict[str, Any] | None:
    """The line of attempt ``attempt`` of ``run_id`` that started at ``since`` or later (give
    or take ``CLOCK_SLACK_SECONDS``), in a results file or among the lines a full disk kept
    back in ``store``; None if there is none. ``until``: the attempt started by then (its run
    log was written then): day files after it are not read.
    """
    earliest = since - CLOCK_SLACK_SECONDS
    if store is not None and store.has_unwritten():
        for line in store.unwritten():
            if _is_it(line["record"], run_id, attempt, earliest):
                return dict(line["record"])
    first = day_stamp(earliest)
    last = day_stamp(until + CLOCK_SLACK_SECONDS) if until is not None else None
    needle = b'"run_id": ' + json.dumps(run_id, ensure_ascii=False).encode()
    # Oldest first: the line is in the file of the day it started, most likely ``since``'s.
    for day, path in reversed(result_files_newest_first(layout)):
        if day < first or (last is not None and day > last):
            continue
        found = _in_file(path, needle, lambda r: _is_it(r, run_id, attempt, earliest), since)
        if found is not None:
            return found
    return None


def _is_it(record: dict[str, Any], run_id: str, attempt: int, earliest: float) -> bool:
    """An attempt's line started after ``earliest``: not one of a run of the same id and
    attempt that an older database knew (its start, should its time be unreadable, unknown)."""
    if record.get("run_id") != run_id or record.get("attempt") != attempt:
        return False
    started = _time_of(record, "start_time")
    return started is not None and started >= earliest and _time_of(record, "end_time") is not None


def _in_file(
    path: str, needle: bytes, wanted: Callable[[dict[str, Any]], bool], since: float
) -> dict[str, Any] | None:
    opened = open_for_reading(path)
    if opened is None:
        return None
    fd, size = opened
    try:
        return _scan(fd, size, needle, wanted, since - ENDED_BEFORE_SECONDS)
    except OSError as exc:  # a failing disk: the run is judged as if it had no line
        log.warning("cannot look for a result line in %s: %s", path, exc.strerror or exc)
        return None
    finally:
        os.close(fd)


def _scan(
    fd: int, size: int, needle: bytes, wanted: Callable[[dict[str, Any]], bool], old: float
) -> dict[str, Any] | None:
    """The last line of the file's first ``size`` bytes holding ``needle`` that ``wanted``
    takes, read backwards in blocks.

    The file is in the order attempts ended. Once the first line of ``_OLD_BLOCKS_TO_STOP``
    blocks in a row ended before ``old`` (well before the attempt began), everything further
    back was appended before the attempt began and cannot hold its line: the search stops
    there, which bounds a miss (a run killed mid-run) to the lines of its own time, however
    large the file. The heuristic relies on a line being appended within moments of the end
    time it carries; a clock stepped back by more than ``ENDED_BEFORE_SECONDS`` while the
    attempt ran, or more kept-back lines than those blocks appended after its line, could end
    the search before the line (recovery would then take the run for one killed mid-run).
    """
    end, head, old_blocks = size, b"", 0
    while end > 0:
        start = max(end - _BLOCK, 0)
        block = os.pread(fd, end - start, start)
        if len(block) != end - start:
            return None  # cut short meanwhile (by hand): what is left is not where it was
        end, data = start, block + head
        cut = data.find(b"\n") if start else -1
        if start and cut < 0:
            head = data  # all of it within one line, which goes on further back
            continue
        # Before the first line end: part of a line that began in an earlier block.
        head, whole = data[: max(cut, 0)], data[cut + 1 :]
        found = _last_match(whole, needle, wanted)
        if found is not None:
            return found
        first_end = whole.find(b"\n")
        if _ended_before(whole if first_end < 0 else whole[:first_end], old):
            old_blocks += 1
            if old_blocks >= _OLD_BLOCKS_TO_STOP:
                return None
        else:
            old_blocks = 0
    return None


def _last_match(
    lines: bytes, needle: bytes, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The last of ``lines`` (whole lines, but perhaps a torn last one) holding ``needle``
    that parses and that ``wanted`` takes. Only lines holding the needle are parsed: in the
    JSON of a record, ``"run_id": "<id>"`` appears only as its key and value (a quote inside a
    string is escaped), or as the key of a nested object, which the parse tells apart."""
    limit = len(lines)
    while (hit := lines.rfind(needle, 0, limit)) >= 0:
        begin = lines.rfind(b"\n", 0, hit) + 1
        stop = lines.find(b"\n", hit)
        record = _parse(lines[begin : stop if stop >= 0 else len(lines)])
        if record is not None and wanted(record):
            return record
        limit = begin
    return None


def _ended_before(line: bytes, old: float) -> bool:
    record = _parse(line)
    ended = _time_of(record, "end_time") if record is not None else None
    return ended is not None and ended < old


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn line (a full disk, a writer killed mid-line on another system)
    return record if isinstance(record, dict) else None


def _time_of(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        return None
