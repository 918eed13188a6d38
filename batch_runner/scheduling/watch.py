"""Noticing edits of the config file without waking up every second.

Linux inotify (through ctypes: the standard library has no binding) watches the config's
directory, since editors and our own atomic edits replace the file by renaming over it. Where
inotify is missing the caller falls back to comparing the file's identity every poll interval.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.paths import StrPath

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE

POLL_INTERVAL = 1.5  # without inotify: the SPEC allows 2 s to notice an edit


def file_identity(path: StrPath) -> tuple[int, int, int, int] | None:
    """What changes when the file is edited or replaced; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigWatch:
    """A readable fd when the config's directory changes, or a poll interval to use instead."""

    def __init__(self, path: StrPath) -> None:
        self.path = path = os.fspath(path)
        self.fd: int | None = _inotify_watch(os.path.dirname(path) or ".")
        self.identity = file_identity(path)

    @property
    def poll_interval(self) -> float | None:
        return None if self.fd is not None else POLL_INTERVAL

    def drain(self) -> None:
        """Empty the inotify queue after a wake-up."""
        if self.fd is None:
            return
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def changed(self) -> bool:
        """True once per change of the file's identity (content, size, inode, mtime)."""
        now = file_identity(self.path)
        if now == self.identity:
            return False
        self.identity = now
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _inotify_watch(directory: str) -> int | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), _MASK) < 0:
        os.close(fd)
        return None
    return int(fd)
