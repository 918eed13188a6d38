"""``/metrics``: Prometheus text format 0.0.4, every name prefixed ``batch_runner_``.

Counts and histograms of runs come from the JSONL result lines appended since this ``serve``
process started: each scrape reads only what was appended to the recent day files since the
last one (by offset), so a scrape costs what is new, never a whole file. Gauges (queue depth,
running runs, scheduler, pause, a job's errors and disable) are read from the state at each
scrape.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from batch_runner.runs.context import RunnerContext
from batch_runner.state.results import open_for_reading, result_files_newest_first
from batch_runner.timefmt import day_stamp, parse_iso
from batch_runner.web.auth import Principal, require
from batch_runner.web.models import responses
from batch_runner.web.service import Service

DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# An attempt that started before midnight has its line in that day's file, appended when it
# ends: the day before the newest is read too.
_DAYS_TAILED = 2
_SCHEDULED = ("schedule", "catch_up")
_BLOCK = 1 << 20


class Histogram:
    """Bucket counts and a sum, as a Prometheus histogram keeps them."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf only)
        self.total = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        return out


class ResultTail:
    """What the result lines appended since ``start`` say: attempts by job and status, their
    durations by job, and the lateness of scheduled runs."""

    def __init__(self, log_dir: str) -> None:
        from batch_runner.state.layout import LogLayout

        self.layout = LogLayout(log_dir)
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, str], int] = {}
        self.durations: dict[str, Histogram] = {}
        self.lateness = Histogram(LATENESS_BUCKETS)
        # Lines already in the files when the service started are not counted.
        self.offsets: dict[str, int] = {
            path: _size(path) for _, path in result_files_newest_first(self.layout)[:_DAYS_TAILED]
        }
        self.first_day = day_stamp(time.time() - 86400)
        # The job label's values: the configured jobs; any other name (an ad-hoc run's free
        # label) is counted as "adhoc", so that the series stay as few as the jobs.
        self.jobs: frozenset[str] = frozenset()

    def catch_up(self) -> None:
        """Read what was appended since the last call."""
        with self.lock:
            for day, path in result_files_newest_first(self.layout)[:_DAYS_TAILED]:
                if day >= self.first_day:
                    self._read_new(path)

    def _read_new(self, path: str) -> None:
        opened = open_for_reading(path)  # its size then ends on a whole line
        if opened is None:
            return
        fd, size = opened
        try:
            start = self.offsets.get(path, 0)
            if size < start:  # cut or replaced (by hand): from where it ends now
                self.offsets[path] = size
                return
            position, carry = start, b""
            while position < size:
                block = os.pread(fd, min(_BLOCK, size - position), position)
                if not block:
                    break
                position += len(block)
                *lines, carry = (carry + block).split(b"\n")
                for line in lines:
                    self._count(line)
            position -= len(carry)  # a line cut short meanwhile (by hand): read again next time
            self.offsets[path] = position
        finally:
            os.close(fd)

    def _count(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # an empty or damaged line: history skips it too
        if not isinstance(record, dict):
            return
        name = record.get("job_name")
        job = _label(name) if name in self.jobs else "adhoc"
        status = _label(record.get("status"))
        self.runs[job, status] = self.runs.get((job, status), 0) + 1
        duration = record.get("duration_seconds")
        if isinstance(duration, int | float) and duration >= 0:
            self.durations.setdefault(job, Histogram(DURATION_BUCKETS)).observe(float(duration))
        late = _lateness(record)
        if late is not None:
            self.lateness.observe(late)


def _label(value: Any) -> str:
    # A lone surrogate (a "\ud800" typed into a line by hand) could not be written out as
    # UTF-8: every later scrape would fail.
    return str(value).encode("utf-8", "replace").decode()


def _lateness(record: dict[str, Any]) -> float | None:
    """How long after its occurrence a scheduled run's first attempt started."""
    if record.get("trigger") not in _SCHEDULED or record.get("attempt") not in (1, None):
        return None
    try:
        late = parse_iso(str(record["start_time"])) - parse_iso(str(record["scheduled_for"]))
    except (KeyError, ValueError, OverflowError):
        return None
    return max(late, 0.0)  # started a hair early: the clocks' rounding, not a negative delay


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class ServiceCollector(Collector):
    """The service's metrics, gathered at each scrape."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.tail = ResultTail(service.config.settings.log_dir)

    def collect(self) -> Iterator[Metric]:
        ctx = self.service.reader()
        if ctx.config.settings.log_dir != str(self.tail.layout.log_dir):
            self.tail = ResultTail(ctx.config.settings.log_dir)  # another log dir: from now
        self.tail.jobs = frozenset(job.name for job in ctx.config.jobs)
        self.tail.catch_up()
        yield from self._from_results()
        yield from _from_state(ctx)

    def _from_results(self) -> Iterator[Metric]:
        tail = self.tail
        runs = CounterMetricFamily(
            "batch_runner_runs",
            "Finished attempts (one per JSONL result line) appended since this serve process "
            "started, by job (an ad-hoc run's label, or adhoc) and status.",
            labels=["job", "status"],
        )
        durations = HistogramMetricFamily(
            "batch_runner_run_duration_seconds",
            "How long the attempts counted by batch_runner_runs_total ran, by job.",
            labels=["job"],
        )
        with tail.lock:
            for (job, status), count in sorted(tail.runs.items()):
                runs.add_metric([job, status], count)
            for job, histogram in sorted(tail.durations.items()):
                durations.add_metric([job], histogram.buckets(), histogram.total)
            lateness = HistogramMetricFamily(
                "batch_runner_dispatch_lateness_seconds",
                "How long after its scheduled time a scheduled run's first attempt started "
                "(its jitter and any wait for a free slot included), for the attempts counted "
                "by batch_runner_runs_total.",
                buckets=tail.lateness.buckets(),
                sum_value=tail.lateness.total,
            )
        yield runs
        yield durations
        yield lateness


def _from_state(ctx: RunnerContext) -> Iterator[Metric]:
    from batch_runner.state.locks import holder

    yield from _lane_gauges(ctx)
    up = holder(ctx.layout.scheduler_lock) is not None
    yield GaugeMetricFamily(
        "batch_runner_scheduler_up", "1 while a scheduler holds this log dir's lock.", int(up)
    )
    yield GaugeMetricFamily(
        "batch_runner_queue_paused",
        "1 while the queue is paused (nothing new starts).",
        int(ctx.store.is_paused()),
    )
    yield from _job_gauges(ctx)


def _lane_gauges(ctx: RunnerContext) -> Iterator[Metric]:
    from collections import Counter

    waiting = ctx.store.pending_by_lane()
    running = Counter(r.get("lane") or "default" for r in ctx.store.runs_with_status("running"))
    # Every configured lane, and a lane no longer configured while runs are left in it.
    lanes = sorted(set(ctx.config.settings.lanes) | set(waiting) | set(running))
    depth = {lane: waiting.get(lane, 0) for lane in lanes}
    yield _gauge("queue_depth", "Runs waiting (pending or reserved), by lane.", "lane", depth)
    now = {lane: running.get(lane, 0) for lane in lanes}
    yield _gauge("running", "Runs running now, by lane.", "lane", now)


def _job_gauges(ctx: RunnerContext) -> Iterator[Metric]:
    states = ctx.store.job_states()
    errors, disabled = {}, {}
    for job in ctx.config.jobs:
        state = states.get(job.name) or {}
        errors[job.name] = state.get("error_count", job.error_count) or 0
        disabled[job.name] = int(not job.enabled or state.get("disabled_at") is not None)
    yield _gauge(
        "job_error_count", "The job's failed runs in a row (0 after a success).", "job", errors
    )
    yield _gauge(
        "job_disabled",
        "1 when the job is not scheduled: disabled in the config file, or by its failures "
        "(disable_after).",
        "job",
        disabled,
    )


def _gauge(name: str, text: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(f"batch_runner_{name}", text, labels=[label])
    for key, value in values.items():
        gauge.add_metric([key], value)
    return gauge


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # At start-up, so that the results appended from now on are the ones counted.
    _registry_of(app)
    yield


router = APIRouter(lifespan=_lifespan)
_made = threading.Lock()


def _registry_of(app: FastAPI) -> Any:
    from prometheus_client import CollectorRegistry

    with _made:
        registry = getattr(app.state, "metrics_registry", None)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(ServiceCollector(app.state.service))
            app.state.metrics_registry = registry
        return registry


@router.get(
    "/metrics",
    response_class=Response,
    tags=["metrics"],
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **responses(401, 403, 503),
    },
)
def metrics(request: Request, _: Principal = Depends(require("read"))) -> Response:
    """Prometheus text format 0.0.4 (scope read)."""
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

    body = generate_latest(_registry_of(request.app))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
