"""batch_runner: runs a machine's batch jobs on time, one at a time, and records every run."""

from __future__ import annotations

from batch_runner.version import __version__

__all__ = ["__version__", "progress"]


def progress(percent: float | None = None, message: str | None = None) -> None:
    """Record progress for the run this process belongs to (``$BATCH_RUN_ID``)."""
    from batch_runner.runs.progress import record_progress

    record_progress(percent=percent, message=message)
