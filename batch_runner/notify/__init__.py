"""Who hears about a job: notices and the notifiers that carry them, and heartbeats (SPEC 8).

One module per notifier kind (``command``, ``webhook``, ``email``), ``notice`` for what a notice
says, ``deliver`` for sending one through every notifier, ``heartbeat`` for ``ping_url``.
Nothing here is imported on the hot path unless there is something to send: ``runs.notices``
imports these modules only when a run has a ``ping_url`` or a notice is due. What every
outbound call shares (``${VAR}``, the secret policy, the wording of network errors) is
``batch_runner.net``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batch_runner.timefmt import format_seconds


class NotifierError(Exception):
    """A notifier or a ping could not deliver; ``str()`` is the reason, already free of secrets."""


class Bounded(threading.Thread):
    """Runs ``action`` in a daemon thread that the caller waits for no longer than ``timeout``.

    Socket timeouts bound each read, not a whole exchange: a server that trickles one byte at a
    time could hold a notifier for minutes. The thread is abandoned (a daemon never blocks exit)
    once its time is up, so the executor is never delayed by more than the notifier's timeout.
    """

    def __init__(self, action: Callable[[], None], timeout: float) -> None:
        super().__init__(daemon=True, name="batch_runner-notify")
        self.action, self.timeout = action, timeout
        self.error: BaseException | None = None
        self.deadline = 0.0

    def start(self) -> None:
        self.deadline = time.monotonic() + self.timeout
        super().start()

    def run(self) -> None:
        try:
            self.action()
        except BaseException as exc:  # reported to the waiting caller, never lost in the thread
            self.error = exc

    def outcome(self, margin: float = 0.5) -> str | None:
        """Wait up to the deadline (plus ``margin``); None when it worked, else the reason."""
        self.join(max(self.deadline + margin - time.monotonic(), 0.0))
        if self.is_alive():
            return f"timed out after {format_seconds(self.timeout)} s"
        if self.error is None:
            return None
        if isinstance(self.error, NotifierError):
            return str(self.error)
        return f"{type(self.error).__name__}: {self.error}"
