"""The JSONL results: one whole line per finished attempt (SPEC 7), and reading them back."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat

from batch_runner.errors import StorageError
from batch_runner.files import READ_NO_FOLLOW, make_private_dirs, write_all
from batch_runner.logs import get_logger
from batch_runner.state.layout import LogLayout
from batch_runner.timefmt import day_stamp, parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

log = get_logger("batch_runner")

_BLOCK = 1 << 16  # bytes read at a time from a file's end
_decode = json.JSONDecoder().decode  # json.loads's own decoder when given no options

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
        raise StorageError(f"cannot write results to {path}: {_reason(exc)}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"cannot write results to {path}: it is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        _append_whole(fd, line, path)
    finally:
        os.close(fd)
    return path


def _open_for_append(directory: str, path: str) -> int:
    # Never through a link planted in the folder: it could point at any file the runner may
    # write. Read: the last byte, for a torn line.
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:  # the first line ever, or the folder was removed
        make_private_dirs(directory)  # the log dir too: 0700, whatever the umask
        return os.open(path, flags, 0o600)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link
        return "it is a symbolic link"
    return exc.strerror or str(exc)


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
    layout: LogLayout,
    since: float | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every parseable record (that ``keep`` keeps), the latest start first (ties: the later
    line first), read from the newest day back and each file from its end in blocks.

    Memory: a block, the longest line, and the records read but not yet given (see
    ``_file_newest_first``), never a whole file.
    """
    since_day = day_stamp(since) if since is not None else None
    for day, path in result_files_newest_first(layout):
        if since_day and day < since_day:
            return
        yield from _file_newest_first(path, since, keep)


def _file_newest_first(
    path: str, since: float | None, keep: Callable[[dict[str, Any]], bool] | None
) -> Iterator[dict[str, Any]]:
    """A file is in the order attempts ended, and its day is the day they started, so only
    records within one file need reordering. Read from the end, every line not yet read ended
    (hence started) no later than the one in hand: a buffered record that started at or after
    that end is known to be next, which keeps ``--limit 20`` from parsing a whole day.
    """
    import heapq

    opened = open_for_reading(path)
    if opened is None:
        return
    fd, size = opened
    try:
        waiting: list[tuple[float, int, dict[str, Any]]] = []  # (-start, line order, record)
        for order, record in _records_backwards(path, fd, size):
            kept = keep is None or keep(record)
            if not (kept or waiting):
                continue  # nothing to give or to hold: when it ran changes nothing
            started, ended = _times(record)
            while waiting and -waiting[0][0] >= ended:
                yield heapq.heappop(waiting)[2]
            if kept and (since is None or started >= since):
                heapq.heappush(waiting, (-started, order, record))
        while waiting:
            yield heapq.heappop(waiting)[2]
    finally:
        os.close(fd)


def _records_backwards(path: str, fd: int, size: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each whole record with its line's place from the end; a damaged line is skipped with a
    warning that names it by its number from the start."""
    total = None  # lines in the file, counted only to name a damaged one
    for order, line in enumerate(_lines_backwards(fd, size)):
        record = _parse_line(line)
        if record is not None:
            yield order, record
        elif line.strip():
            total = _count_lines(fd, size) if total is None else total
            _warn_damaged(path, total - order)


def _times(record: dict[str, Any]) -> tuple[float, float]:
    """When the attempt started and ended, as the order of the results knows them."""
    ended = _time_of(record, "end_time")
    # A run canceled before it started has no start: it sorts by when it was canceled.
    started = _time_of(record, "start_time") if record.get("start_time") else ended
    return started, max(ended, started)


def open_for_reading(path: str) -> tuple[int, int] | None:
    """The open file and how much of it holds whole lines; None (with a warning for what is
    not a plain file) when it cannot be read."""
    try:
        fd = os.open(path, READ_NO_FOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            log.warning("skipped %s: %s", path, _reason(exc))
        return None  # removed meanwhile by clean, or not ours to read
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("skipped %s: it is not a regular file", path)
            os.close(fd)
            return None
        # A writer appends a whole line under an exclusive flock: the size seen under a shared
        # one ends on a line's end. Lines appended later are left for the next reader.
        fcntl.flock(fd, fcntl.LOCK_SH)
        size = os.fstat(fd).st_size
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        os.close(fd)
        return None
    return fd, size


def _lines_backwards(fd: int, size: int) -> Iterator[bytes]:
    """The lines of the file's first ``size`` bytes, the last first, cut as ``bytes.splitlines``
    cuts them (the whole-file reader's line numbers stay the same), read in blocks from the end.
    """
    end = size
    if size and os.pread(fd, 1, size - 1) == b"\n":
        end -= 1  # the last line's end, not an empty line after it
    parts: list[bytes] = []  # the line being put together, its last piece first
    while end > 0:
        start = max(end - _BLOCK, 0)
        block = os.pread(fd, end - start, start)
        if len(block) != end - start:
            return  # cut short meanwhile (by hand): what is left is not where it was
        end = start
        pieces = block.split(b"\n")
        for piece in reversed(pieces[1:]):
            parts.append(piece)
            yield from _split_returns(b"".join(reversed(parts)))
            parts = []
        parts.append(pieces[0])
    if size:
        yield from _split_returns(b"".join(reversed(parts)))


def _split_returns(line: bytes) -> Iterator[bytes]:
    if b"\r" in line:  # a CR LF line end, or a lone CR (splitlines cuts there too)
        yield from reversed(line.splitlines())
    else:
        yield line


def _count_lines(fd: int, size: int) -> int:
    """How many lines ``bytes.splitlines`` finds in the file's first ``size`` bytes."""
    count, offset, previous = 0, 0, b""
    while offset < size:
        block = os.pread(fd, min(_BLOCK * 16, size - offset), offset)
        if not block:
            break
        count += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
        if previous == b"\r" and block.startswith(b"\n"):
            count -= 1  # a CR LF across two blocks
        previous = block[-1:]
        offset += len(block)
    return count + (previous not in (b"", b"\n", b"\r"))


def _warn_damaged(path: str, number: int) -> None:
    log.warning(
        "skipped line %d of %s: not a whole JSON record (a torn or damaged line)", number, path
    )


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        if line[:1] == b"{" and line[1:2] != b"\0":
            # What json.loads does once it has told the encoding is UTF-8, without looking.
            record = _decode(line.decode("utf-8", "surrogatepass"))
        else:
            record = json.loads(line)
    except ValueError:
        return None  # a line cut short by a full disk; the rest of the file is still good
    return record if isinstance(record, dict) else None


def _time_of(record: dict[str, Any], key: str) -> float:
    try:
        return parse_iso(str(record.get(key)))
    except (ValueError, OverflowError):
        return 0.0
