"""The argparse parser of the whole CLI; imported only when a command line needs it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from batch_runner.cli.commands import LOG_LEVELS, registrars
from batch_runner.version import __version__


class UsageErrorExit(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence on stderr and exit 2 through ``main``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            # Most often an unquoted command: `add backup tar czf x.tgz dir`.
            message += "; quote a value that has spaces, such as a command ('tar czf x.tgz dir')"
        raise UsageErrorExit(f"{self.prog}: {message} (see '{self.prog} --help')")


def _formatter(prog: str) -> argparse.HelpFormatter:
    # Given a width, argparse does not import shutil (and with it bz2 and lzma) on every run.
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 80
    return argparse.HelpFormatter(prog, width=max(columns, 40) - 2)


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        metavar="FILE",
        help="config file (default: $BATCH_RUNNER_CONFIG or <root>/config/batch_config.json)",
    )
    parser.add_argument(
        "--root",
        default=default,
        metavar="DIR",
        help="project root (default: $BATCH_RUNNER_ROOT, else the project of a named config, "
        "else the current directory)",
    )
    parser.add_argument(
        "-l",
        "--log-level",
        default=None if top else argparse.SUPPRESS,
        choices=LOG_LEVELS,
        type=str.lower,
        help="log detail on stderr (default: info for the scheduler, warning otherwise)",
    )


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the subcommands it needs are imported and registered."""
    parser = _Parser(
        prog="batch_runner",
        description="Run a machine's batch jobs on time, "
        "one at a time, with a faithful record of every run.",
    )
    parser.add_argument("--version", action="version", version=f"batch_runner {__version__}")
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in registrars(argv):
        register(sub, lambda p: _common_options(p, top=False))
    return parser
