"""``main(argv) -> int``: the only place that turns errors into stderr lines and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from batch_runner import __version__
from batch_runner.errors import EXIT_USAGE, BatchRunnerError, ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence on stderr and exit 2 through ``main``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageErrorExit(f"{self.prog}: {message} (see '{self.prog} --help')")


def _formatter(prog: str) -> argparse.HelpFormatter:
    # Given a width, argparse does not import shutil (and with it bz2 and lzma) on every run.
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        columns = 80
    return argparse.HelpFormatter(prog, width=max(columns, 40) - 2)


class UsageErrorExit(Exception):
    pass


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("-c", "--config", default=default, metavar="FILE",
                        help="config file (default: $BATCH_RUNNER_CONFIG or "
                        "<root>/config/batch_config.json)")
    parser.add_argument("--root", default=default, metavar="DIR",
                        help="project root (default: $BATCH_RUNNER_ROOT or the current directory)")
    parser.add_argument("-l", "--log-level", default=None if top else argparse.SUPPRESS,
                        choices=LOG_LEVELS, type=str.lower,
                        help="log detail on stderr (default: info for the scheduler, "
                        "warning otherwise)")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``: only the subcommands it needs are imported and registered."""
    from batch_runner.cli import commands

    parser = _Parser(prog="batch_runner", description="Run a machine's batch jobs on time, "
                     "one at a time, with a faithful record of every run.")
    parser.add_argument("--version", action="version", version=f"batch_runner {__version__}")
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in commands.registrars(argv):
        register(sub, lambda p: _common_options(p, top=False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):
        # The fastest path: cron and scripts probe this; no parser, no imports.
        print(f"batch_runner {__version__}")
        return 0
    undecodable = next((arg for arg in argv if not _is_utf8(arg)), None)
    if undecodable is not None:
        # Run ids, labels and names go to SQLite and JSON, which hold text only.
        print(f"error: the argument {undecodable.encode('utf-8', 'surrogateescape')!r} is not "
              "valid UTF-8", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = build_parser(argv).parse_args(argv)
    except UsageErrorExit as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and exit 0
        return int(exc.code or 0)
    if args.log_level is None:
        args.log_level = "info" if args.command == "scheduler" else "warning"
    _setup_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    return _run_handler(handler, args)


def _is_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 arrive as lone surrogates
        return False
    return True


def _run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    debug = args.log_level == "debug"
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except BatchRunnerError as exc:
        if debug:
            from batch_runner.logs import get_logger

            get_logger().exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # `batch_runner history | head` closed the pipe: not an error
    except OSError as exc:
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def _setup_logging(level: str) -> None:
    from batch_runner import logs

    def configure() -> None:
        from batch_runner.cli.logsetup import configure_logging

        configure_logging(level)

    logs.set_up(level, configure)
