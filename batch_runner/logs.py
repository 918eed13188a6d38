"""The runner's loggers, which import ``logging`` only when a message is to be emitted.

``logging`` costs several milliseconds to import, and ``run-job`` from cron (whose default
level is ``warning``) usually emits nothing. The CLI sets ``threshold`` and ``configure``;
below the threshold a call returns at once, at or above it the real logger takes over.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

threshold = 0  # without the CLI (tests, library use) every call goes to logging
# Loggers held to a higher threshold than the rest, by name: a command that prints each run's
# outcome itself does not want the attempt log's line for it too.
raised: dict[str, int] = {}
_configure: Callable[[], None] | None = None
# The scheduler's threads log from their first moments: one that found the handlers not yet
# installed would go to logging's last resort, which drops everything below a warning.
_configure_lock = _thread.allocate_lock()  # builtin: no import cost on run-job's path


def set_up(level: str, configure: Callable[[], None]) -> None:
    """Emit at ``level`` and above; ``configure()`` installs the handlers on first use."""
    global threshold, _configure
    threshold = LEVELS[level]
    _configure = configure


def _real(name: str) -> logging.Logger:
    global _configure
    import logging

    if _configure is not None:
        with _configure_lock:
            if _configure is not None:
                _configure()
                _configure = None  # only now: the others waited on the lock until it was done
    return logging.getLogger(name)


class LazyLogger:
    """The subset of ``logging.Logger`` batch_runner uses."""

    __slots__ = ("name",)

    def __init__(self, name: str = "batch_runner") -> None:
        self.name = name

    def _log(self, level: int, method: str, msg: str, *args: object, **kwargs: object) -> None:
        if level >= threshold and (not raised or level >= raised.get(self.name, 0)):
            getattr(_real(self.name), method)(msg, *args, **kwargs)

    def debug(self, msg: str, *args: object, **kwargs: object) -> None:
        self._log(10, "debug", msg, *args, **kwargs)

    def info(self, msg: str, *args: object, **kwargs: object) -> None:
        self._log(20, "info", msg, *args, **kwargs)

    def warning(self, msg: str, *args: object, **kwargs: object) -> None:
        self._log(30, "warning", msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: object) -> None:
        self._log(40, "error", msg, *args, **kwargs)

    def exception(self, msg: str, *args: object, **kwargs: object) -> None:
        self._log(40, "exception", msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:
        return level >= threshold and _real(self.name).isEnabledFor(level)


def get_logger(name: str = "batch_runner") -> LazyLogger:
    return LazyLogger(name)
