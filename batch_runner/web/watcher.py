"""One watcher per ``serve`` process: a thread that looks at the state database every tick
(``PRAGMA data_version``: one cheap query, whatever the number of dashboards) and, when
another process committed something, works out what changed and hands every subscriber its
events. A run page's subscriber also gets its run's new output, read by the file's size.

Subscribers are asyncio queues of the server's event loop, bounded: a client that does not
read is dropped (its browser reconnects and redraws), never waited for.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from batch_runner.errors import BatchRunnerError
from batch_runner.logs import get_logger
from batch_runner.web.service import Service
from batch_runner.web.tail import Follower

log = get_logger("batch_runner.web")

# How often the database is looked at: a change reaches the browser within this plus the
# time to read it, well inside the 100 ms the dashboard promises.
TICK_SECONDS = 0.02
# Counting the waiting runs reads an index of them all (100,000 in the benchmark): at most
# this often, while the runs' own changes go out every tick.
COUNT_EVERY_SECONDS = 0.25
# The scheduler's lock is not in the database: looked at this often.
ALIVE_EVERY_SECONDS = 1.0
# Events a subscriber may have waiting before it is dropped.
QUEUE_LIMIT = 1000
# ... or this many bytes of them (one output event may be 64 KiB, written up to six times
# larger as JSON).
QUEUE_BYTES = 4 * 1024 * 1024


class Subscriber:
    """One open event stream; with ``follower``, also one run's output."""

    def __init__(self, run_id: str | None, follower: Follower | None) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        self.run_id = run_id
        self.follower = follower
        self.dropped = False
        self.queued_bytes = 0  # on the event loop only; the watcher only reads it

    def taken(self, texts: list[str | None]) -> None:
        self.queued_bytes -= sum(len(t) for t in texts if t is not None)

    def offer(self, text: str) -> None:
        if self.dropped:
            return
        try:
            if self.queued_bytes + len(text) > QUEUE_BYTES:
                raise asyncio.QueueFull
            self.queue.put_nowait(text)
            self.queued_bytes += len(text)
        except asyncio.QueueFull:
            self.end()  # too slow: end its stream rather than hold everyone's events for it

    def end(self) -> None:
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


def event(kind: str, data: dict[str, Any], event_id: str | None = None) -> str:
    """One server-sent event (JSON never holds a raw newline: one ``data:`` line)."""
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n\n"


def _key(run: dict[str, Any]) -> tuple[Any, ...]:
    fields = ("status", "attempt", "progress_percent", "progress_message", "log_file", "ended_at")
    return tuple(run.get(f) for f in fields)


class Hub:
    """The subscribers of one process and the thread that feeds them."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._subs: set[Subscriber] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset()

    def _reset(self) -> None:
        self._version: int | None = None
        self._runs: dict[str, dict[str, Any]] = {}  # run_id -> its row, as last sent
        self._overview: dict[str, Any] = {}
        self._counted_at = self._alive_at = float("-inf")
        self._waiting = 0
        self._count_due = True
        self._scheduler: dict[str, Any] = {"alive": False, "pid": None, "stopping": False}

    def subscribe(self, sub: Subscriber) -> None:
        """Called on the event loop; the thread starts with the first subscriber."""
        self._loop = asyncio.get_running_loop()
        with self._lock:
            self._subs.add(sub)
            # A fresh look for the newcomer's run; the overview is told to it alone (said
            # again to everyone, each dashboard would redraw for each newcomer).
            self._version = None
            if self._overview:
                sub.offer(event("overview", self._overview))
            if self._thread is None:
                self._reset()
                self._thread = threading.Thread(target=self._watch, name="br-events", daemon=True)
                self._thread.start()

    def end_all(self) -> None:
        """On the event loop, as the server stops: every open stream ends (its browser
        reconnects to the next server)."""
        with self._lock:
            for sub in self._subs:
                sub.end()

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def _deliver(self, batch: list[tuple[Subscriber | None, str]]) -> None:
        """On the event loop: each event to its subscriber, or to all."""
        everyone = list(self._subs)
        for target, text in batch:
            for sub in [target] if target is not None else everyone:
                sub.offer(text)

    def _watch(self) -> None:
        while True:
            with self._lock:
                subs = list(self._subs)
                if not subs:
                    self._thread = None
                    return
            started = time.monotonic()
            try:
                batch = self._tick(subs)
            except BatchRunnerError as exc:  # a locked or damaged database: look again later
                log.debug("the dashboard's watcher could not read the state: %s", exc)
                batch = []
            except Exception:
                log.exception("the dashboard's watcher failed; it goes on")
                time.sleep(1.0)
                batch = []
            if batch and self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, batch)
            time.sleep(max(0.0, TICK_SECONDS - (time.monotonic() - started)))

    def _tick(self, subs: list[Subscriber]) -> list[tuple[Subscriber | None, str]]:
        ctx = self.service.reader()
        now = time.monotonic()
        version = ctx.store.data_version()
        batch: list[tuple[Subscriber | None, str]] = []
        changed = version != self._version
        if changed:
            self._version = version
            batch += self._run_events(ctx, {s.run_id for s in subs if s.run_id})
        if now - self._alive_at >= ALIVE_EVERY_SECONDS:
            self._alive_at = now
            self._scheduler = _scheduler_of(ctx)
        self._count_due = self._count_due or changed
        if self._count_due and now - self._counted_at >= COUNT_EVERY_SECONDS:
            self._counted_at, self._count_due = now, False
            self._waiting = ctx.store.count_pending()
        overview = {
            "running": sum(1 for r in self._runs.values() if r["status"] == "running"),
            "waiting": self._waiting,
            "paused": ctx.store.is_paused() if changed else self._overview.get("paused"),
            "scheduler": self._scheduler,
        }
        if overview != self._overview:
            self._overview = overview
            batch.append((None, event("overview", overview)))
        batch += self._output_events(subs)
        return batch

    def _run_events(self, ctx: Any, watched: set[str]) -> list[tuple[Subscriber | None, str]]:
        """A ``run`` event for each run in play (or on an open run page) whose state moved,
        and for each that left play (its end)."""
        from batch_runner.web.pagedata import view

        current = {r["run_id"]: r for r in ctx.store.runs_with_status("running", "reserved")}
        for run_id in (watched | set(self._runs)) - set(current):
            found = ctx.store.get_run(run_id)
            if found is not None:
                current[run_id] = found
        events: list[tuple[Subscriber | None, str]] = []
        for run_id, run in current.items():
            before = self._runs.get(run_id)
            if before is None or _key(before) != _key(run):
                shown = view(ctx, run)
                shown.pop("output", None)  # the tail of a finished run: the page has it
                events.append((None, event("run", shown)))
        in_play = ("running", "reserved")
        self._runs = {
            run_id: run
            for run_id, run in current.items()
            if run["status"] in in_play or run_id in watched
        }
        return events

    def _output_events(self, subs: list[Subscriber]) -> list[tuple[Subscriber | None, str]]:
        events: list[tuple[Subscriber | None, str]] = []
        for sub in subs:
            follower, run = sub.follower, self._runs.get(sub.run_id or "")
            if follower is None or follower.done or run is None:
                continue
            if sub.queued_bytes:  # it has not taken the last chunk: read on when it has
                continue
            for attempt, text in follower.step(run):
                data = {"run_id": sub.run_id, "attempt": attempt, "text": text}
                event_id = f"{follower.attempt}:{follower.offset}"
                events.append((sub, event("output", data, event_id)))
        return events


def _scheduler_of(ctx: Any) -> dict[str, Any]:
    from batch_runner.state.locks import holder

    held = holder(ctx.layout.scheduler_lock)
    pid, stopping = (held[0], held[1] == "stopping") if held else (None, False)
    return {"alive": pid is not None, "pid": pid, "stopping": stopping}
