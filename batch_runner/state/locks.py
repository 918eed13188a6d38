"""Advisory file locks shared by every batch_runner process on one log dir.

flock is released by the kernel when its holder dies, even by SIGKILL, so a lock can never be
left behind; that is also why a run found ``running`` while we hold the executor lock is known
to have lost its runner.
"""

from __future__ import annotations

import errno
import fcntl
import os

from batch_runner.errors import StorageError
from batch_runner.files import write_all

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.paths import StrPath


# Wider than any pid Linux hands out (pid_max is at most 2**22).
_PID_WIDTH = 10
_STATE_WIDTH = 10  # the holder's state after its pid: blank, or "stopping"
HEADER_WIDTH = _PID_WIDTH + 1 + _STATE_WIDTH + 1  # what every holder writes on acquiring


class FileLock:
    """An exclusive flock on one file; the holder's pid is written into it for ``status``."""

    def __init__(self, path: StrPath) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, wait: bool = True) -> bool:
        """Take the lock; with ``wait=False`` return False at once if another process has it."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise StorageError(
                f"{self.path} is a symlink, and batch_runner follows none in its log dir; "
                f"remove it (`rm {self.path}`)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            # Fixed width, so the write replaces any earlier pid (and state) whole without a
            # truncate, which costs this file system up to half a millisecond on every acquire.
            write_all(fd, f"{os.getpid():>{_PID_WIDTH}}\n{'':<{_STATE_WIDTH}}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the pid is for `status` only, the lock is held all the same
        return True

    def mark(self, state: str) -> None:
        """Say what the holder is doing (``stopping``), for ``status``; best effort."""
        if self._fd is None:
            return
        try:
            write_all(self._fd, f"{state[:_STATE_WIDTH]:<{_STATE_WIDTH}}".encode(), _PID_WIDTH + 1)
        except OSError:
            pass  # a full disk: status says alive rather than stopping, nothing worse

    def write_at(self, data: bytes, offset: int) -> bool:
        """Write into the held lock file; False if it could not be written (a full disk)."""
        if self._fd is None:
            return False
        try:
            write_all(self._fd, data, offset)
        except OSError:
            return False
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(path: StrPath) -> int | None:
    """The pid holding the lock at ``path``, or None when nobody holds it."""
    held = holder(path)
    return held[0] if held else None


def holder(path: StrPath) -> tuple[int, str] | None:
    """The pid holding the lock at ``path`` and its state ("" or "stopping"), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: no holder we could trust
            return None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            # Only the pid and the state: a slot's lock file goes on (``Slot.note_start``).
            words = os.pread(fd, HEADER_WIDTH, 0).decode(errors="replace").split()
            if not words or not words[0].isdigit():
                return None
            return int(words[0]), words[1] if len(words) > 1 else ""
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
