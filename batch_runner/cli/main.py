"""``main(argv) -> int``: the only place that turns errors into stderr lines and exit codes."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence

from batch_runner.cli.commands import COMMON_OPTIONS_WITH_VALUE, LOG_LEVELS
from batch_runner.errors import EXIT_USAGE, BatchRunnerError, ConfigError
from batch_runner.version import __version__

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# The logger of each attempt's start and end lines (runs/execute.py).
ATTEMPT_LOG = "batch_runner.attempts"

# ``run-job``'s own options, as cli/commands/run.py defines them.
_RUN_JOB_FLAGS = ("--no-wait", "--queue")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (cli/completion.py)
        from batch_runner.cli.completion import complete

        complete()
    if argv in (["--version"], ["-V"]):
        # The fastest path: cron and scripts probe this; no parser, no imports.
        print(f"batch_runner {__version__}")
        return 0
    undecodable = next((arg for arg in argv if not _is_utf8(arg)), None)
    if undecodable is not None:
        # Run ids, labels and names go to SQLite and JSON, which hold text only.
        print(
            f"error: the argument {undecodable.encode('utf-8', 'surrogateescape')!r} is not "
            "valid UTF-8",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args = parse_run_job_line(argv)
    if args is None:
        from batch_runner.cli.parser import UsageErrorExit, build_parser

        try:
            args = build_parser(argv).parse_args(argv)
        except UsageErrorExit as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
        except SystemExit as exc:  # --help and --version print and exit 0
            return int(exc.code or 0)
    if args.log_level is None:
        # The long-running ones say what they do (serve: where it listens).
        args.log_level = "info" if args.command in ("scheduler", "serve") else "warning"
        if args.command not in ("scheduler", "serve"):
            from batch_runner import logs

            # run-job and queue worker print each run's end themselves; the attempt log's
            # warning for a failed one would say it twice (`-l info` shows the log lines).
            logs.raised[ATTEMPT_LOG] = logs.LEVELS["error"]
    _setup_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        from batch_runner.cli.parser import build_parser

        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    return _run_handler(handler, args)


def parse_run_job_line(argv: Sequence[str]) -> argparse.Namespace | None:
    """``[-c FILE] [--root DIR] [-l LEVEL] run-job NAME [--no-wait] [--queue]`` without argparse.

    This is the line cron runs every minute (``batch_runner cron`` writes it), and argparse
    with the gettext and locale modules it loads costs several milliseconds of a 50 ms budget.
    It gives exactly what the parser would; any other shape (help, ``--opt=value``, an
    unknown option, a usage error) returns None and goes to the parser.
    """
    values: dict[str, object] = {"config": None, "root": None, "log_level": None}
    words = iter(argv)
    for word in words:
        if word == "run-job":
            break
        key = COMMON_OPTIONS_WITH_VALUE.get(word)
        value = next(words, None)
        if key is None or value is None or value.startswith("-"):
            return None
        if key == "log_level":  # argparse checks every occurrence, not only the last
            value = value.lower()
            if value not in LOG_LEVELS:
                return None
        values[key] = value
    else:
        return None
    rest = list(words)
    if not rest or rest[0].startswith("-") or not set(rest[1:]) <= set(_RUN_JOB_FLAGS):
        return None
    from types import SimpleNamespace

    from batch_runner.cli.commands.run import cmd_run_job

    return SimpleNamespace(  # type: ignore[return-value]
        **values,
        command="run-job",
        name=rest[0],
        queue="--queue" in rest,
        no_wait="--no-wait" in rest,
        handler=cmd_run_job,
    )


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
        reason = exc.strerror or str(exc)
        if exc.filename:
            hint = (
                "; every folder above it must be a directory you may write"
                if exc.errno in (errno.ENOTDIR, errno.EACCES)
                else ""
            )
            print(f"error: cannot use {exc.filename}: {reason}{hint}", file=sys.stderr)
        else:
            print(f"error: {reason}", file=sys.stderr)
        return 1


def _setup_logging(level: str) -> None:
    from batch_runner import logs

    def configure() -> None:
        from batch_runner.cli.logsetup import configure_logging

        configure_logging(level)

    logs.set_up(level, configure)
