"""The scheduler's log format: one plain line per event on stderr, colour only on a terminal.

Under systemd, stderr goes to the journal, which gives every line the unit's default priority
unless the line starts with its syslog level (``<4>``, sd-daemon(3)): with it, `journalctl -p
warning` shows the failed runs and the notices, and nothing else.
"""

from __future__ import annotations

import logging
import sys

_LEVEL_COLOURS = {"WARNING": "\x1b[33m", "ERROR": "\x1b[31m", "CRITICAL": "\x1b[31;1m"}


# sd-daemon(3) priorities of Python's levels.
_SYSLOG_LEVELS = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class _Formatter(logging.Formatter):
    def __init__(self, colour: bool, journal: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
        self.colour = colour
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        # Each line of a traceback is a journal entry of its own: all get the record's level.
        prefix = f"<{_SYSLOG_LEVELS.get(record.levelname, 6)}>"
        return "\n".join(prefix + line for line in text.split("\n"))

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One event, one line: a control character in a name or label (stored before labels
        # were checked, or written into the database by hand) cannot forge a second line.
        from batch_runner.cli.render import shown

        record.message = shown(record.message)
        line = super().formatMessage(record)
        if self.colour and record.levelname in _LEVEL_COLOURS:
            line = line.replace(
                record.levelname, _LEVEL_COLOURS[record.levelname] + record.levelname + "\x1b[0m", 1
            )
        return line


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(colour=sys.stderr.isatty(), journal=stderr_is_journal()))
    root = logging.getLogger("batch_runner")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def stderr_is_journal() -> bool:
    """Whether stderr is the journal's stream: systemd sets $JOURNAL_STREAM to its device and
    inode (a redirection in between, `2>file`, makes them differ)."""
    import os

    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False
