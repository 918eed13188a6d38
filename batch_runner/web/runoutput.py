"""A run's output over HTTP: one attempt's log file, whole or a byte range (``offset`` and
``length``, or a ``Range: bytes=a-b`` header answered 206), streamed from the file, with the
file's size in ``X-Output-Size`` so that a tail polls from where it stopped."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.responses import Response, StreamingResponse

from batch_runner.errors import NotFound
from batch_runner.files import NotRegularFile, open_regular
from batch_runner.runs.outputs import attempt_logs

MEDIA_TYPE = "text/plain; charset=utf-8"
SIZE_HEADER = "X-Output-Size"
_CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)  # units are case-insensitive (RFC 9110)
UNSATISFIABLE = (-1, -1)


def output_response(
    run: dict[str, Any],
    attempt: int | None,
    offset: int | None,
    length: int | None,
    range_header: str | None,
    kept: Callable[[str, int], bytes | None] | None = None,
) -> Response:
    """The answer for ``GET /runs/{id}/output``: 200 (whole, or ``offset``/``length``), 206
    (a ``Range`` header), 416 (a range past the end), 404 (no such attempt). ``kept(run_id,
    attempt)``: the output a cluster's other host kept in the database, for a log file that is
    not on this host."""
    fd, size = _open(run, attempt, kept)
    try:
        start, end, status = 0, size, 200
        if offset is not None or length is not None:  # the query wins over a Range header
            start = min(offset or 0, size)
            end = size if length is None else min(start + length, size)
        elif range_header is not None and (wanted := _byte_range(range_header, size)) is not None:
            if wanted == UNSATISFIABLE:
                os.close(fd)
                return Response(
                    status_code=416,
                    headers={"Content-Range": f"bytes */{size}", SIZE_HEADER: str(size)},
                    media_type=MEDIA_TYPE,
                )
            start, end = wanted
            status = 206
    except BaseException:
        os.close(fd)
        raise
    headers = {SIZE_HEADER: str(size), "Content-Length": str(end - start)}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Accept-Ranges"] = "bytes"
    return StreamingResponse(
        _chunks(fd, start, end), status_code=status, headers=headers, media_type=MEDIA_TYPE
    )


def _open(
    run: dict[str, Any], attempt: int | None, kept: Callable[[str, int], bytes | None] | None
) -> tuple[int, int]:
    """The attempt's log (the last one by default), opened; and its size now. Not on this
    host (a cluster's other host ran it): the copy ``kept`` in the database."""
    logs = dict(attempt_logs(run))
    last = run.get("attempt") if isinstance(run.get("attempt"), int) else None
    number = attempt if attempt is not None else max(logs) if logs else last
    if number is not None and number not in logs and kept is not None and number >= 1:
        data = kept(run["run_id"], number)
        if data is not None:
            return _in_memory(data), len(data)
    if not logs:
        if attempt is None:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), 0  # none yet: empty
        raise NotFound(f"run {run['run_id']} has no output of attempt {attempt}")
    if number not in logs:
        raise NotFound(
            f"run {run['run_id']} has no output of attempt {number}; it has attempts "
            f"{', '.join(str(n) for n in sorted(logs))}"
        )
    try:
        fd = open_regular(logs[number])
    except NotRegularFile:
        raise NotFound(f"the output of run {run['run_id']} is not a regular file") from None
    except OSError as exc:
        reason = exc.strerror
        raise NotFound(f"the output of run {run['run_id']} cannot be read: {reason}") from None
    return fd, os.fstat(fd).st_size


def _in_memory(data: bytes) -> int:
    """A descriptor reading ``data``, which the streaming code reads as it reads a file."""
    fd = os.memfd_create("batch-runner-output", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return fd


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of one ``bytes=`` range; ``UNSATISFIABLE``; or None to ignore the
    header (not one range of bytes: the whole output is answered, as RFC 9110 allows)."""
    found = _RANGE.fullmatch(header.strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.group(1), found.group(2)
    if first == "":  # the last N bytes
        count = int(last)
        return (max(size - count, 0), size) if count and size else UNSATISFIABLE
    start = int(first)
    if start >= size:
        return UNSATISFIABLE
    if last != "" and int(last) < start:
        return None  # invalid: ignored
    return start, size if last == "" else min(int(last) + 1, size)


def _chunks(fd: int, start: int, end: int) -> Iterator[bytes]:
    """The bytes from ``start`` to ``end``, read as they are sent; the file closed at the end
    (or when the client goes away)."""
    try:
        position = start
        while position < end:
            data = os.pread(fd, min(_CHUNK, end - position), position)
            if not data:
                break  # the file shrank (cleaned): the answer is shorter than said
            position += len(data)
            yield data
    finally:
        os.close(fd)
