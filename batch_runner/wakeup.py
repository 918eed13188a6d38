"""A nudge from any process to the scheduler of a log dir: "a run was queued, look now".

An abstract unix datagram socket named after the log dir: no file to clean up after a crash,
no path-length limit, and sending to a scheduler that is not there is a harmless no-op.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path


def _address(log_dir: Path) -> str:
    digest = hashlib.sha256(str(log_dir.resolve()).encode()).hexdigest()[:24]
    return f"\0batch_runner-{digest}"


def bind_listener(log_dir: Path) -> socket.socket | None:
    """The scheduler's end; None if another process already listens for this log dir."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(_address(log_dir))
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def drain_listener(sock: socket.socket) -> None:
    try:
        while sock.recv(64):
            pass
    except BlockingIOError:
        pass


def poke(log_dir: Path) -> None:
    """Tell the scheduler of ``log_dir`` (if one runs) to look at the queue now."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(b"!", _address(log_dir))
    except OSError:
        pass  # no scheduler listening: the run waits for the next drainer, which is fine
