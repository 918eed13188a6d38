"""Replacing a file so that readers see the old or the new content, never a mix or nothing."""

from __future__ import annotations

import contextlib
import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.paths import StrPath


def write_atomic(
    path: StrPath,
    data: bytes,
    *,
    like: os.stat_result | None = None,
    exclusive: bool = False,
    mode: int | None = None,
) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, rename it over ``path``.

    ``like``: the stat of the file being replaced, whose mode (and owner, when allowed) the new
    file keeps. ``exclusive``: fail with FileExistsError instead of replacing an existing file.
    ``mode``: the new file's mode, whatever the umask (for files that may hold secrets).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # 0o666 lets the umask decide the mode of a new file, as any editor would.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            _write_all(fd, data)
            if like is not None:
                _copy_mode(fd, like)
            elif mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        _install(temp, path, exclusive)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_dir(directory or ".")


def fsync_dir(directory: StrPath) -> None:
    """Make a rename in ``directory`` durable; skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_mode(fd: int, like: os.stat_result) -> None:
    if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
        # Only root may give a file away; for anyone else the new file is simply theirs.
        with contextlib.suppress(PermissionError):
            os.fchown(fd, like.st_uid, like.st_gid)
    # After chown, which may clear the set-id bits.
    os.fchmod(fd, like.st_mode & 0o7777)


def _install(temp: str, path: str, exclusive: bool) -> None:
    if not exclusive:
        os.replace(temp, path)
        return
    # link() refuses to overwrite, which makes "create only if absent" atomic.
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.exists(path):
            raise FileExistsError(path) from None
        os.replace(temp, path)
