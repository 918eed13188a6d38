"""What wakes the scheduler's main thread: a signal, an edit of the config, a poke from the queue.

Signal handlers only note the signal and write a byte to a pipe (the main loop does the work);
the config's folder is watched with inotify where there is one; ``queue add`` pokes the named
pipe of the log dir. One ``select()`` waits on all three with the loop's computed timeout.
"""

from __future__ import annotations

import os
import selectors
import signal

from batch_runner.logs import get_logger
from batch_runner.scheduling.watch import ConfigWatch
from batch_runner.state.wakeup import bind_listener, drain_pipe, fifo_path

log = get_logger("batch_runner")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Wakeups:
    """The scheduler's wake-up sources, opened together and closed together."""

    def __init__(self, config_path: str, log_dir: str) -> None:
        self.signals: list[int] = []
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.watch = ConfigWatch(config_path)
        self.listener = bind_listener(log_dir)
        if self.listener is None:
            log.warning(
                "cannot make the wake-up pipe %s: queued runs start within a minute "
                "instead of at once",
                fifo_path(log_dir),
            )
        # Not DefaultSelector: epoll (and poll) round a timeout up to whole milliseconds, so
        # every run would start up to 1 ms late; select() sleeps to the microsecond. It only
        # ever waits on these three descriptors, all opened at start-up, so far below
        # FD_SETSIZE.
        self._selector = selectors.SelectSelector()
        self._selector.register(self._read_fd, selectors.EVENT_READ, "signal")
        if self.watch.fd is not None:
            self._selector.register(self.watch.fd, selectors.EVENT_READ, "config")
        if self.listener is not None:
            self._selector.register(self.listener, selectors.EVENT_READ, "poke")

    def install_signal_handlers(self) -> None:
        write_fd = self._write_fd

        def on_signal(signum: int, frame: object) -> None:
            self.signals.append(signum)
            try:
                os.write(write_fd, b"s")
            except OSError:
                pass  # the pipe is full: the loop has a wake-up pending already

        for signum in HANDLED_SIGNALS:
            signal.signal(signum, on_signal)

    def wait(self, timeout: float) -> bool:
        """Sleep until something happens or ``timeout`` passes; True when the queue was poked."""
        poked = False
        for key, _ in self._selector.select(timeout):
            if key.data == "signal":
                drain_pipe(self._read_fd)
            elif key.data == "config":
                self.watch.drain()
            elif key.data == "poke" and self.listener is not None:
                drain_pipe(self.listener)
                poked = True
        return poked

    def take_signals(self) -> list[int]:
        signals, self.signals = self.signals, []
        return signals

    def close(self) -> None:
        self._selector.close()
        self.watch.close()
        for fd in (self._read_fd, self._write_fd, self.listener):
            if fd is not None:
                os.close(fd)
