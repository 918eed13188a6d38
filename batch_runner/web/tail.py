"""A run's output as the dashboard shows it: the end of a log file when a page is drawn, and
the bytes written since, a bounded chunk at a time, as text."""

from __future__ import annotations

import codecs
import os
import stat

from batch_runner.files import open_regular
from batch_runner.runs.outputs import attempt_logs
from batch_runner.state.store import FINISHED_STATUSES

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A page shows at most this much of an attempt's output (the start is cut, and said so):
# `batch_runner logs` has the whole of it.
PAGE_TAIL_BYTES = 256 * 1024
# One live update carries at most this much; the next tick sends the rest.
CHUNK_BYTES = 64 * 1024


def size_of(path: str) -> int | None:
    """The size of the log file at ``path``; None for anything but a regular file (a symlink
    or a FIFO planted in its place is never followed nor opened)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def read_range(path: str, offset: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``path`` from ``offset`` (nothing when it cannot be read)."""
    try:
        fd = open_regular(path)  # as runoutput and the CLI read the log dir
    except OSError:
        return b""
    try:
        return os.pread(fd, limit, offset)
    except OSError:
        return b""
    finally:
        os.close(fd)


def page_tail(path: str) -> tuple[str, int, bool]:
    """The text of the file's last ``PAGE_TAIL_BYTES``, where it ends (the offset live
    updates go on from), and whether its start was cut."""
    size = size_of(path) or 0
    start = max(0, size - PAGE_TAIL_BYTES)
    data = read_range(path, start, size - start)
    end = start + len(data)
    if start:
        # Cut at a line's start: the first line shown is whole, and not half a character.
        newline = data.find(b"\n")
        data = data[newline + 1 :] if 0 <= newline < len(data) - 1 else data
    # A character still being written is left for the live updates, whole.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data)
    return text, end - len(decoder.getstate()[0]), start > 0


class Follower:
    """Where one reader of one run's output is: the attempt, its file, the offset, and a
    decoder that keeps a character split between two reads whole."""

    def __init__(self, attempt: int, offset: int) -> None:
        self.attempt = attempt
        self.offset = offset
        self.path: str | None = None
        self.done = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def switch(self, attempt: int, path: str | None) -> None:
        """A new attempt started: its file, from its start."""
        self.attempt, self.path, self.offset = attempt, path, 0
        self._decoder.reset()

    def read(self, size: int | None = None) -> str | None:
        """The text written since the last read (a bounded chunk), or None when nothing new."""
        if self.path is None:
            return None
        size = size_of(self.path) if size is None else size
        if size is None or size <= self.offset:
            return None
        data = read_range(self.path, self.offset, min(size - self.offset, CHUNK_BYTES))
        if not data:
            return None
        self.offset += len(data)
        return self._decoder.decode(data)

    def step(self, run: dict[str, Any]) -> list[tuple[int, str]]:
        """What ``run``'s output gained since the last step, per attempt: the rest of the
        attempt being read, then, once a later attempt started, that one from its start
        (an empty text says the switch). ``done`` once the run ended and all is read."""
        paths = {n: str(p) for n, p in attempt_logs(run)}
        attempt = run.get("attempt")
        current = attempt if isinstance(attempt, int) else 0
        if self.path is None:
            self.path = paths.get(self.attempt)
        gained = []
        text = self.read()
        if text:
            gained.append((self.attempt, text))
        if current > self.attempt and not self._more():
            self.switch(current, paths.get(current))
            gained.append((current, self.read() or ""))
        self.done = run.get("status") in FINISHED_STATUSES and not self._more()
        return gained

    def _more(self) -> bool:
        size = size_of(self.path) if self.path else None
        return size is not None and size > self.offset
