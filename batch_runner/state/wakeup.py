"""A nudge from any process to the scheduler of a log dir: "a run was queued, look now".

A named pipe in the log dir's state folder. Only the scheduler holds it open for reading, so a
poke when no scheduler runs fails at once (ENXIO) and is a harmless no-op; a full pipe means
pokes are already waiting. It needs nothing but ``os``: ``queue add`` and ``run-job --queue``
poke on every call, and the socket and hashlib modules would cost them several milliseconds.
The pipe is 0600 inside the 0700 state folder, so only the runner's user can poke.
"""

from __future__ import annotations

import os
import stat

from batch_runner.files import make_private_dirs

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

FIFO_NAME = "wakeup.fifo"


def fifo_path(log_dir: Path | str) -> str:
    return os.path.join(log_dir, "state", FIFO_NAME)


def bind_listener(log_dir: Path | str) -> int | None:
    """The scheduler's end, a non-blocking fd; None if the pipe cannot be made or opened."""
    path = fifo_path(log_dir)
    try:
        make_private_dirs(os.path.dirname(path))  # the log dir too: 0700, whatever the umask
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                return None  # something else took the name: pokes go unheard, runs still run
        # Read and write: with a writer of its own the pipe never reports end-of-file, so the
        # scheduler's select does not spin between pokes.
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


def drain_pipe(fd: int) -> None:
    """Read a non-blocking pipe empty: its bytes only ever mean "look now"."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def poke(log_dir: Path | str) -> None:
    """Tell the scheduler of ``log_dir`` (if one runs) to look at the queue now."""
    try:
        fd = os.open(fifo_path(log_dir), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # no pipe, or no scheduler reading it: the run waits for the next drainer
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into a file that took the name
            os.write(fd, b"!")
    except OSError:
        pass  # the pipe is full: the scheduler has pokes waiting already
    finally:
        os.close(fd)
