"""``clean``: bounded disk use."""

from __future__ import annotations

import argparse

from batch_runner.cli import app
from batch_runner.errors import UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("clean", help="delete results, run logs and finished runs older than N days")
    p.add_argument(
        "--keep-days", type=int, metavar="N", help="days to keep (default: settings.retention_days)"
    )
    p.set_defaults(handler=cmd_clean)
    common(p)


def cmd_clean(args: argparse.Namespace) -> int:
    from batch_runner.state.retention import clean

    ctx = app.context(args)
    keep = ctx.config.settings.retention_days if args.keep_days is None else args.keep_days
    if keep < 0 or keep > 100_000:
        raise UsageError(f"--keep-days must be between 0 and 100000, not {keep}")
    report = clean(ctx.layout, ctx.store, keep)
    kept = "nothing finished" if keep == 0 else f"the last {_count(keep, 'day')}"
    print(
        f"kept {kept}: removed {_count(report.result_files, 'result file')}, "
        f"{_count(report.run_log_days, 'day')} of run logs, {_count(report.runs, 'finished run')}"
    )
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
