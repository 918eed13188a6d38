"""What ``next`` shows, for the CLI and the service alike: the next occurrences across the
enabled jobs, merged lazily (only ``count`` of them are computed), and the jobs that have no
time (a startup job's run is at the scheduler's next start; a job its failures disabled has
none)."""

from __future__ import annotations

import heapq
import itertools

from batch_runner.scheduling.plan import upcoming_times
from batch_runner.timefmt import parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.config.spec import ConfigSpec

COUNT_LIMIT = 100_000


def next_runs(
    config: ConfigSpec,
    states: dict[str, dict[str, Any]],
    now: float,
    count: int,
    *,
    live: bool,
) -> tuple[list[tuple[float, str]], list[str], list[dict[str, Any]]]:
    """The next ``count`` (time, job name) pairs; the startup jobs' names; the jobs disabled
    by failures (their state, with ``name``). ``states`` are the store's job states; ``live``
    whether a scheduler runs (an interval then continues its plan)."""
    streams = []
    at_start: list[str] = []
    disabled: list[dict[str, Any]] = []
    for job in config.jobs:
        state = states.get(job.name) or {}
        if not job.enabled:
            continue
        if state.get("disabled_at") is not None:
            disabled.append({"name": job.name, **state})
        elif job.schedule_type == "startup":
            at_start.append(job.name)
        else:
            stored = state.get("next_run") if live else None
            times = upcoming_times(job, now, parse_iso(stored) if stored else None)
            streams.append(zip(times, itertools.repeat(job.name), strict=False))
    return list(itertools.islice(heapq.merge(*streams), count)), at_start, disabled
