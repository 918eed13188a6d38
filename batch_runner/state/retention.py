"""Keeping disk use bounded: results, run logs and finished runs older than N days go."""

from __future__ import annotations

import os
import shutil
import time

from batch_runner.state.layout import LogLayout
from batch_runner.state.results import result_files_newest_first
from batch_runner.state.store import Store
from batch_runner.timefmt import day_stamp
from batch_runner.valuetype import Record


class CleanReport(Record):
    """What ``clean`` removed."""

    result_files: int
    run_log_days: int
    runs: int


def clean(layout: LogLayout, store: Store, keep_days: int, now: float | None = None) -> CleanReport:
    """Delete what is older than ``keep_days`` whole days before today (local time); with 0,
    every finished run, today's too (only runs waiting or running stay)."""
    now = time.time() if now is None else now
    cutoff = now - keep_days * 86400
    # "9" sorts after every day: with nothing to keep, today's files go as well.
    oldest_kept = day_stamp(cutoff) if keep_days > 0 else "9"
    results = [path for day, path in result_files_newest_first(layout) if day < oldest_kept]
    for path in results:
        os.unlink(path)
    days = [n for n in _names(layout.runs_dir) if n.isdigit() and len(n) == 8 and n < oldest_kept]
    for name in days:
        shutil.rmtree(os.path.join(layout.runs_dir, name), ignore_errors=True)
    runs = store.delete_finished_before(cutoff)
    return CleanReport(len(results), len(days), runs)


def _names(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
