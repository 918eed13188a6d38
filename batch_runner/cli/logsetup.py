"""The scheduler's log format: one plain line per event on stderr, colour only on a terminal."""

from __future__ import annotations

import logging
import sys

_LEVEL_COLOURS = {"WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[31;1m"}


class _Formatter(logging.Formatter):
    def __init__(self, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        if self.colour and record.levelname in _LEVEL_COLOURS:
            line = line.replace(
                record.levelname, _LEVEL_COLOURS[record.levelname] + record.levelname + "\x1b[0m", 1
            )
        return line


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(colour=sys.stderr.isatty()))
    root = logging.getLogger("batch_runner")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
