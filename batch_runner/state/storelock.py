"""The store lock: every process that has the state database open holds it shared, so
``doctor --repair`` (which takes it alone) never moves the database away from under one.

flock, so the kernel drops it when its holder dies, even by SIGKILL; the file locked is
checked to be the one at the path, so removing or replacing it defeats nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from batch_runner.errors import StateLocked, StorageError

# How long opening the store waits for `doctor --repair` to finish with it: as long as SQLite
# waits for another process's lock.
REPAIR_WAIT_SECONDS = 30.0
_REPAIR_POLL_SECONDS = 0.05
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_PID_WIDTH = 10  # wider than any pid Linux hands out
# How often a lock file removed as it was being locked is opened again at its path: a bound, as
# something that keeps replacing it must not keep a store from opening.
_RELOCK_TRIES = 5


_ALONE: set[str] = set()


class StoreLock:
    """The flock on ``state/store.lock`` that keeps ``doctor --repair`` from moving the database
    away from under a process that has it open (which would go on with the moved file).

    Every open store holds it shared, for as long as it is open; the kernel drops it when the
    process dies, even by SIGKILL. ``doctor --repair`` takes it alone, and only while no one
    else holds it, then moves the database aside and rebuilds it; a store opened meanwhile
    waits for that (``REPAIR_WAIT_SECONDS`` at most), so it never meets the old file.
    """

    __slots__ = ("_alone", "_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._alone = False

    def share(self, database: str) -> None:
        """Take it shared, waiting while ``doctor --repair`` holds it (Busy past the wait)."""
        if _ALONE and os.path.abspath(self.path) in _ALONE:
            return  # this process is the repair: the lock it holds covers this store too
        for tries_left in reversed(range(_RELOCK_TRIES)):
            fd = self._open_to_share()
            if fd is None:
                return  # nor the lock there: it cannot write the store either
            try:
                _wait_shared(fd, self.path, database)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            if _is_at_path(fd, self.path) or not tries_left:
                return
            self.release()  # removed or replaced meanwhile: the one at the path is what counts

    def _open_to_share(self) -> int | None:
        try:
            return _open_lock(self.path)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise _lock_error(self.path, exc) from None
        try:  # a folder this process may only read: so much the lock needs
            return os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None

    def take_alone(self) -> bool:
        """Take it alone, at once or not at all: False while another store is open anywhere."""
        for _ in range(_RELOCK_TRIES):
            try:
                fd = _open_lock(self.path)
            except OSError as exc:
                raise _lock_error(self.path, exc) from None
            try:
                if not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.path):
                    os.close(fd)
                    return False
            except BaseException:
                os.close(fd)
                raise
            if _is_at_path(fd, self.path):
                break
            os.close(fd)  # removed or replaced meanwhile: the one at the path is what counts
        else:
            return False
        self._fd, self._alone = fd, True
        _ALONE.add(os.path.abspath(self.path))
        try:
            os.pwrite(fd, f"{os.getpid():>{_PID_WIDTH}}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the pid only serves the sentence of a store that waits too long
        return True

    def release(self) -> None:
        if self._alone:
            _ALONE.discard(os.path.abspath(self.path))
            self._alone = False
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock

    def __del__(self) -> None:
        # A store dropped unclosed (the connection closes itself then) lets go of it as well.
        if self._fd is not None and not self._alone:
            os.close(self._fd)


def _open_lock(path: str) -> int:
    try:
        return os.open(path, _LOCK_FLAGS, 0o600)
    except FileNotFoundError:  # no state folder yet: the first store creates it
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, _LOCK_FLAGS, 0o600)


def _lock_error(path: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ELOOP and _is_symlink(path):  # not a loop in the folders above it
        return StorageError(
            f"{path} is a symlink, and batch_runner follows none in its log dir; "
            f"remove it (`rm {path}`)"
        )
    return StorageError(f"cannot open the lock file {path}: {exc.strerror or exc}")


def _is_symlink(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_at_path(fd: int, path: str) -> bool:
    """Whether the locked file is still the one at ``path``: a lock on a removed one keeps
    nobody out, as the others open the path."""
    try:
        held, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def _flock(fd: int, how: int, path: str) -> bool:
    """``flock``; False where another holds it (with ``LOCK_NB``)."""
    try:
        fcntl.flock(fd, how)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
            raise StorageError(
                f"cannot lock {path}: its file system does not support locks (a network file "
                "system?); keep the log dir on a local disk"
            ) from None
        raise StorageError(f"cannot lock {path}: {exc.strerror or exc}") from None
    return True


def _wait_shared(fd: int, path: str, database: str) -> None:
    if _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, path):
        return
    import time  # only a store that meets a repair waits

    deadline = time.monotonic() + REPAIR_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_REPAIR_POLL_SECONDS)
        if _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, path):
            return
    words = os.pread(fd, 32, 0).split()
    pid = f" (pid {int(words[0])})" if words and words[0].isdigit() else ""
    raise StateLocked(
        f"`batch_runner doctor --repair`{pid} has been repairing the state database {database} "
        f"for over {REPAIR_WAIT_SECONDS:g} s; try again once it is done"
    )
