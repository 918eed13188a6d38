"""Bounded capture of a run's output (SPEC 5): the run log file and the tails kept in memory.

Memory stays flat whatever a job prints (1 GB, one 100 MB line, binary garbage): in memory only
tails of fixed size are kept, as deques of chunks with a running total, so dropping old bytes
never copies a large buffer. The run log keeps its head and tail on disk, not in memory.
Bytes become text only at the end, with ``errors="replace"``.
"""

from __future__ import annotations

import os
from collections import deque

from batch_runner.files import make_private_dirs, write_all
from batch_runner.logs import get_logger

log = get_logger("batch_runner")

STDERR_TAIL_BYTES = 2048
# Window kept after the marker beyond the tail before the file is compacted: bounds the file
# while the job runs and makes each compaction copy at most as much as was written since.
_MIN_SLACK = 1024 * 1024
_COPY_CHUNK = 1024 * 1024


def cut_marker(cut: int) -> bytes:
    """The line that replaces the bytes cut from the middle of a run log."""
    return f"\n[batch_runner: {cut} bytes cut here]\n".encode()


class TailBuffer:
    """The last ``limit`` bytes of a stream, as a deque of chunks with a running total."""

    def __init__(self, limit: int) -> None:
        self.limit = max(int(limit), 0)
        self.total = 0  # bytes ever appended
        self._chunks: deque[bytes] = deque()
        self._size = 0

    @property
    def dropped(self) -> int:
        return self.total - self._size

    def append(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self.limit:
            self._chunks.clear()
            self._chunks.append(bytes(data[len(data) - self.limit :]))
            self._size = self.limit
            return
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.limit:
            self._drop_front(self._size - self.limit)

    def _drop_front(self, excess: int) -> None:
        first = self._chunks[0]
        if len(first) <= excess:
            self._chunks.popleft()
            self._size -= len(first)
        else:  # chunks are at most a read's size, so this copy stays small
            self._chunks[0] = first[excess:]
            self._size -= excess

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)


class RunLog:
    """The run log file: the first half and the last half of ``max_bytes``, the cut marked.

    Output is appended as it comes. Once the window after the head (and the marker) grows to
    ``tail`` plus a slack of ``max(tail, 1 MiB)``, the last ``tail`` bytes are copied down behind
    a fresh marker, in place through a small buffer. So while the job runs the file shows head,
    marker and a recent window; ``close()`` compacts once more, and the file ends as exactly
    head + marker + the true last bytes.
    A log that cannot be written is given up with a warning; the run goes on without it.
    """

    def __init__(self, path: str, max_bytes: int, *, open_now: bool = True) -> None:
        self.path = path
        self.head = max(int(max_bytes), 0) // 2
        self.tail = max(int(max_bytes), 0) - self.head
        self.total = 0  # bytes of output received
        self._slack = max(self.tail, _MIN_SLACK)
        self._marker_len = 0  # 0 while nothing has been cut
        self._end = 0  # current size of the file
        self._fd: int | None = self._open(path) if open_now else None

    def open(self) -> None:
        """Create the file now (``open_now=False``); output before this is not written."""
        if self._fd is None:
            self._fd = self._open(self.path)

    @property
    def cut(self) -> int:
        return max(self.total - self.head - self.tail, 0)

    def _open(self, path: str) -> int | None:
        # Job output often holds secrets: the run log is the owner's alone.
        # Never through a symlink: the log dir is checked, this is the second line of defence.
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                return os.open(path, flags, 0o600)
            except FileNotFoundError:  # the day's first run: its folder comes first
                make_private_dirs(os.path.dirname(path))
                return os.open(path, flags, 0o600)
        except OSError as exc:
            log.warning("cannot write run log %s: %s", path, exc)
            return None

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if self._fd is None:
            return
        try:
            write_all(self._fd, data, self._end)
            self._end += len(data)
            if self._end - self.head - self._marker_len >= self.tail + self._slack:
                self._compact()
        except OSError as exc:
            self._give_up(exc)

    def _compact(self) -> None:
        """Keep head + marker + the last ``tail`` bytes written so far."""
        assert self._fd is not None
        marker = cut_marker(self.cut)
        src, dst = self._end - self.tail, self.head + len(marker)
        _move(self._fd, src, dst, self.tail)
        write_all(self._fd, marker, self.head)
        self._marker_len = len(marker)
        self._end = dst + self.tail
        os.ftruncate(self._fd, self._end)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            if self.cut:
                self._compact()
        except OSError as exc:
            self._give_up(exc)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _give_up(self, exc: OSError) -> None:
        log.warning("run log %s abandoned: %s", self.path, exc)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _move(fd: int, src: int, dst: int, size: int) -> None:
    """memmove inside a file through a small buffer; ranges may overlap either way."""
    offsets = range(0, size, _COPY_CHUNK)
    # Copy away from the overlap: forwards when moving down, backwards when moving up.
    for offset in offsets if dst <= src else reversed(offsets):
        length = min(_COPY_CHUNK, size - offset)
        write_all(fd, os.pread(fd, length, src + offset), dst + offset)


class OutputCapture:
    """Everything kept of one attempt's output: the run log (both streams as they came), the
    tail of standard output (the record's ``output``), a tail of standard error (for ``error``).
    """

    def __init__(
        self,
        log_path: str,
        run_log_max_bytes: int,
        output_max_bytes: int,
        stderr_tail_bytes: int = STDERR_TAIL_BYTES,
        *,
        open_log: bool = True,
    ) -> None:
        self.run_log = RunLog(log_path, run_log_max_bytes, open_now=open_log)
        self.stdout = TailBuffer(output_max_bytes)
        self.stderr = TailBuffer(stderr_tail_bytes)
        self._in_stderr = False  # which stream the run log shows now
        self._line_open = False  # the run log's last byte is not a line break

    def feed(self, data: bytes, *, stderr: bool = False) -> None:
        if not data:
            return
        if stderr != self._in_stderr:
            # Marked where the streams change over, on a line of its own.
            self.run_log.write((b"\n" if self._line_open else b"") + stream_marker(stderr))
            self._in_stderr = stderr
        self.run_log.write(data)
        self._line_open = not data.endswith(b"\n")
        (self.stderr if stderr else self.stdout).append(data)

    def close(self) -> None:
        self.run_log.close()

    def __enter__(self) -> OutputCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def truncated(self) -> bool:
        """True when the kept output or the run log lost bytes."""
        return self.stdout.dropped > 0 or self.run_log.cut > 0

    def output(self) -> str:
        return decode_tail(self.stdout.getvalue(), cut=self.stdout.dropped > 0)

    def stderr_tail(self) -> str:
        return decode_tail(self.stderr.getvalue(), cut=self.stderr.dropped > 0).strip()


def stream_marker(stderr: bool) -> bytes:
    """The line a run log shows where the job's output changes from one stream to the other."""
    return b"[batch_runner: stderr]\n" if stderr else b"[batch_runner: stdout]\n"


def decode_tail(data: bytes, *, cut: bool) -> str:
    """Text of a tail; a UTF-8 sequence split by the cut is dropped rather than replaced."""
    if cut:
        start = 0
        while start < min(len(data), 3) and 0x80 <= data[start] < 0xC0:
            start += 1
        data = data[start:]
    return data.decode("utf-8", errors="replace")
