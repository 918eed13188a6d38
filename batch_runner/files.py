"""Writing files so that nothing is half-written: every write of the package goes through here.

``write_all`` is the one loop that writes a buffer whole (``os.write`` may write less than asked);
``write_atomic`` replaces a file so readers see the old or the new content, never a mix or
nothing; ``make_private_dirs`` creates the folders of what may hold secrets, owner only.
"""

from __future__ import annotations

import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.paths import StrPath


# How a file of the log dir is opened to be read: never through a symlink another account
# planted, and never stuck waiting for a writer on a FIFO planted in its place.
READ_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFile(OSError):
    """What was opened is a FIFO, a device or a folder, not the file expected there."""


def open_regular(path: StrPath) -> int:
    """``path`` opened to read (``READ_NO_FOLLOW``); NotRegularFile for anything but a regular
    file, OSError as ``os.open`` raises it otherwise."""
    import stat

    fd = os.open(path, READ_NO_FOLLOW)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise NotRegularFile(f"{os.fspath(path)} is not a regular file")
    return fd


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
    # 0o666 lets the umask decide the mode of a new file, as any editor would; a file that
    # may hold secrets (``mode``) never has a wider mode, not even for a moment.
    created = 0o666 if mode is None else mode
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, created)
    try:
        try:
            write_all(fd, data)
            if like is not None:
                _copy_mode(fd, like)
            elif mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        _install(temp, path, exclusive)
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass  # renamed into place: nothing left to clean up
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


def write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    """Write all of ``data`` to ``fd`` (at ``offset`` with pwrite), however the kernel splits it.

    An OSError leaves what was written so far in place: the caller knows where it started.
    """
    view = memoryview(data)
    while view:
        if offset is None:
            view = view[os.write(fd, view) :]
        else:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written


def make_private_dirs(directory: str) -> None:
    """``mkdir -p`` with every directory it creates 0700 (existing ones are left alone)."""
    missing = []
    while not os.path.exists(directory) and directory != os.path.dirname(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:
            pass


def _copy_mode(fd: int, like: os.stat_result) -> None:
    if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
        # Only root may give a file away; for anyone else the new file is simply theirs.
        try:
            os.fchown(fd, like.st_uid, like.st_gid)
        except PermissionError:
            pass
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
