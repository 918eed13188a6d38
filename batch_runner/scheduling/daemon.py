"""``batch_runner scheduler``: decides *when*, enqueues, and leaves the running to the executor.

The main thread owns every clock read and sleep: it sleeps until the next occurrence or an
event (a signal, an edit of the config, a poke from ``queue add``), fires what is due into the
queue, and hands the queue to the executor thread (``dispatch.Dispatcher``). Each occurrence is
queued a moment before it is due, with its due time, and the executor thread starts it at that
time: so a run starts within a few milliseconds of it.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batch_runner.config.spec import ConfigSpec, JobSpec
from batch_runner.errors import BackendUnavailable, Busy, ConfigError, DamagedState
from batch_runner.execution import reaper
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.enqueue import enqueue_job
from batch_runner.scheduling import plan
from batch_runner.scheduling.dispatch import Dispatcher
from batch_runner.scheduling.reload import load_validated, settle_garbage_collector
from batch_runner.scheduling.sdnotify import Notifier
from batch_runner.scheduling.wakeups import Wakeups
from batch_runner.scheduling.watch import ConfigWatch
from batch_runner.state.locks import FileLock, holder_pid
from batch_runner.timefmt import iso

log = get_logger("batch_runner")

# The longest single sleep: a wall-clock jump during a sleep is noticed within this long.
MAX_SLEEP_SECONDS = 60.0
# Wall time and monotonic time disagreeing by more than this means the clock was set.
CLOCK_JUMP_SECONDS = 5.0
# How long before its due time an occurrence is queued (with that due time): the write, the
# poke and the executor thread's wake-up are done by then, and the executor, not this thread,
# sleeps the rest and starts the run on time (the claim never takes a run before it is due).
QUEUE_AHEAD_SECONDS = 0.002
# How often a scheduler tries again to queue an occurrence the cluster's database did not take.
BACKEND_RETRY_SECONDS = 1.0


class Scheduler:
    def __init__(
        self,
        config_path: str | Path,
        root: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_path, self.root = os.fspath(config_path), os.fspath(root)
        self.clock, self.rand, self.monotonic = clock, rand, monotonic
        self._clock_pair = (clock(), monotonic())
        self.config: ConfigSpec = load_validated(self.config_path, self.root)
        self.ctx = RunnerContext(config=self.config)
        self.plans: dict[str, plan.Occurrence] = {}
        self._heap: list[tuple[float, int, plan.Occurrence]] = []
        self._seq = 0
        self.notifier = Notifier()
        self._lock = FileLock(self.ctx.layout.scheduler_lock)

    # --- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        lock = self._lock
        if not lock.acquire(wait=False):
            pid = holder_pid(self.ctx.layout.scheduler_lock)
            raise Busy(
                f"a scheduler is already running for {self.ctx.layout.log_dir}"
                + (f" (pid {pid})" if pid else "")
            )
        try:
            return self._serve()
        finally:
            lock.release()

    def _serve(self) -> int:
        wakeups = Wakeups(self.config_path, self.ctx.layout.log_dir)
        wakeups.install_signal_handlers()
        dispatcher = self._executor()
        self._plan_all(start_up=True)
        # What is due now, startup runs first of all, before any thread can start a run left
        # waiting by an earlier start.
        self._fire_due(self.clock())
        # Orphans of the jobs come back to us (and, as PID 1, every orphan there is): reaped
        # as they exit, by the main thread, even while it sleeps.
        reaper.reap_on_sigchld(start_threads=dispatcher.start)
        self._say_started()
        settle_garbage_collector()
        dispatcher.poke()  # runs left waiting by an earlier scheduler start now
        try:
            self._loop(wakeups, dispatcher)
        finally:
            self._shut_down(dispatcher)
            wakeups.close()
        return 0

    def _say_started(self) -> None:
        count = len(self.config.jobs)
        log.info(
            "scheduler started: %d job%s (%d enabled) from %s, log dir %s, pid %d",
            count,
            "" if count == 1 else "s",
            len(self.plans),
            self.config_path,
            self.ctx.layout.log_dir,
            os.getpid(),
        )
        self._say_next_runs()
        self.notifier.ready(f"{len(self.plans)} jobs scheduled")

    def _say_next_runs(self) -> None:
        """The first runs to come, so a new user sees when something will happen (not those
        of a job its failures disabled: it says so itself when its time comes)."""
        states = self.ctx.store.job_states()
        coming = [
            occurrence
            for name, occurrence in self.plans.items()
            if (states.get(name) or {}).get("disabled_at") is None
        ]
        for line in plan.first_runs_in_words(coming, self.clock()):
            log.info("%s", line)

    def _loop(self, wakeups: Wakeups, dispatcher: Dispatcher) -> None:
        last_ping = 0.0
        while True:
            self._fire_due(self.clock(), on_queued=dispatcher.poke)
            interval = self.notifier.watchdog_interval
            if interval and time.monotonic() - last_ping >= interval:
                self.notifier.watchdog()
                last_ping = time.monotonic()
            if wakeups.wait(self._sleep_for(wakeups.watch)):
                dispatcher.poke()
            if dispatcher.fatal is not None:
                raise dispatcher.fatal
            loaded = self.config
            if self._handle_signals(wakeups.take_signals()):
                return
            if wakeups.watch.changed():
                self.reload("the config file changed")
            if self.config is not loaded:
                dispatcher.poke()  # the lanes take their new widths now, not at the next run
            self.check_clock()

    def check_clock(self) -> None:
        """Replan after the wall clock was set back, so no job waits out the jump.

        A jump forward needs nothing: each job's missed occurrence fires once and the next is
        planned after the new now, so there is no flood of runs either way.
        """
        wall, mono = self.clock(), self.monotonic()
        last_wall, last_mono = self._clock_pair
        self._clock_pair = (wall, mono)
        jump = (wall - last_wall) - (mono - last_mono)
        if abs(jump) < CLOCK_JUMP_SECONDS:
            return
        log.warning(
            "the wall clock jumped %s by %.0f s", "forward" if jump > 0 else "back", abs(jump)
        )
        if jump < 0:
            self.plans.clear()
            self._plan_all(start_up=False)

    def _sleep_for(self, watch: ConfigWatch) -> float:
        limits = [MAX_SLEEP_SECONDS]
        if self._heap:
            limits.append(self._heap[0][0] - QUEUE_AHEAD_SECONDS - self.clock())
        if watch.poll_interval:
            limits.append(watch.poll_interval)
        if self.notifier.watchdog_interval:
            limits.append(self.notifier.watchdog_interval)
        return max(min(limits), 0.0)

    def _handle_signals(self, signals: list[int]) -> bool:
        """True when asked to stop; SIGHUP reloads at once."""
        stop = False
        for signum in signals:
            if signum == signal.SIGHUP:
                self.reload("SIGHUP")
            else:
                log.info("received %s: stopping", signal.Signals(signum).name)
                stop = True
        return stop

    def _shut_down(self, dispatcher: Dispatcher) -> None:
        """Start nothing new; give every running attempt ``shutdown_grace``; then interrupt
        those still running."""
        self.notifier.stopping()
        self._lock.mark("stopping")  # `status` says so during the grace
        dispatcher.stop_new()
        grace = self.config.settings.shutdown_grace
        if not dispatcher.join(grace):
            log.warning(
                "%s did not finish within %g s: interrupting",
                "the running attempt" if dispatcher.running <= 1 else "the running attempts",
                grace,
            )
            dispatcher.interrupt()
            dispatcher.join(self.config.settings.kill_grace + 5.0)
        log.info("scheduler stopped")

    def _executor(self) -> Dispatcher:
        """Who runs the queued runs: this host's lane threads, or a cluster's workers."""
        if not self.ctx.clustered:
            return Dispatcher(lambda: self.config)
        from batch_runner.cluster.runtime import ClusterRuntime

        return ClusterRuntime(lambda: self.config, "scheduler")  # type: ignore[return-value]

    # --- planning -----------------------------------------------------------------------------

    def _plan_all(self, *, start_up: bool) -> None:
        states = self.ctx.store.job_states() if start_up else None
        for occurrence in plan.first_plans(self.config.jobs, self.clock(), self.rand, states):
            self._plan(occurrence)
        if self.ctx.clustered:
            # Every host's interval jobs count from the same last occurrence: one grid.
            anchors = self.ctx.store.chain_anchors()  # type: ignore[attr-defined]
            for name, anchor in anchors.items():
                job, planned = self.config.job(name), self.plans.get(name)
                if job is None or planned is None or planned.trigger == "catch_up":
                    continue  # a run owed for the time no scheduler ran is decided as such
                if plan.interval_of(job):
                    self._plan(plan.on_chain(job, anchor, self.clock(), self.rand()))
        self._store_next_runs()

    def _store_next_runs(self) -> None:
        next_runs: dict[str, str | None] = {n: iso(o.scheduled_for) for n, o in self.plans.items()}
        # A startup job has no next run, even while its run at this start waits to be queued.
        next_runs.update((job.name, None) for job in self.config.jobs if plan.is_startup(job))
        self.ctx.store.set_next_runs(next_runs)

    def _plan(self, occurrence: plan.Occurrence) -> None:
        self.plans[occurrence.job_name] = occurrence
        self._seq += 1
        heapq.heappush(self._heap, (occurrence.due, self._seq, occurrence))

    def _ahead_of_waiting(self, job: JobSpec) -> float:
        """A startup run's due time: ahead of every run waiting in its lane, so that it runs
        first among runs of its priority (the claim's order is priority, then due time)."""
        waiting = self.ctx.store.next_due_at(lane=job.lane)
        return (time.time() if waiting is None else min(waiting, time.time())) - 0.001

    def _fire_due(self, now: float, on_queued: Callable[[], None] | None = None) -> int:
        """Fire every occurrence due within ``QUEUE_AHEAD_SECONDS`` of ``now``; ``on_queued``
        is called as soon as each run is in the queue, before anything else is done for it."""
        fired = 0
        while self._heap and self._heap[0][0] <= now + QUEUE_AHEAD_SECONDS:
            _, _, occurrence = heapq.heappop(self._heap)
            if self.plans.get(occurrence.job_name) is not occurrence:
                continue  # replaced by a reload
            job = self.config.job(occurrence.job_name)
            if job is None:
                continue
            try:
                self._fire(job, occurrence, now, on_queued)
                fired += 1
            except DamagedState:
                raise  # no job can be queued: the scheduler exits with the sentence
            except BackendUnavailable as exc:
                self._fire_later(job, occurrence, now, exc)
                continue
            except Exception:
                # One job's failure never stops the others.
                log.exception("could not fire %s", job.name)
                if not plan.is_startup(job):
                    self._plan(plan.following_occurrence(job, occurrence, now, self.rand()))
        return fired

    def _fire(
        self,
        job: JobSpec,
        occurrence: plan.Occurrence,
        now: float,
        on_queued: Callable[[], None] | None,
    ) -> None:
        # The following occurrence is planned first (pure) and stored with the run in one
        # write: a second write here would take the database's write lock just as the
        # executor claims the run, and SQLite's busy handler makes the loser sleep >= 1 ms.
        ahead = occurrence.due - now
        # Planned as of the due time; a run queued ahead waits for it in real time (the clock
        # given to the scheduler may be another one, in tests).
        firing = plan.firing(job, occurrence, max(now, occurrence.due), self.rand())
        if plan.is_startup(job):
            due_at: float | None = self._ahead_of_waiting(job)
        else:
            due_at = time.time() + ahead if ahead > 0 else None
        decision = _Decision(self.ctx, job, occurrence) if self.ctx.clustered else None
        run_id = enqueue_job(
            self.ctx,
            job,
            occurrence.trigger,
            due_at=due_at,
            scheduled_for=firing.scheduled_for,
            next_run=firing.next_run,
            decide=decision,
        )
        if run_id is not None and on_queued is not None:
            on_queued()
        if decision is not None and decision.anchor is not None:
            # Another scheduler's chain: count from its last occurrence, as it does.
            self._plan(plan.on_chain(job, decision.anchor, now, self.rand()))
        elif decision is not None and occurrence.trigger == "catch_up" and plan.interval_of(job):
            # The chain counts from the occurrence decided, not from when its run was due
            # (one host's rule): every scheduler then plans the same next one.
            self._plan(plan.on_chain(job, occurrence.scheduled_for, now, self.rand()))
        elif firing.following is not None:
            self._plan(firing.following)
        else:  # a startup job: nothing more until the next scheduler start
            self.plans.pop(job.name, None)
        if decision is not None and not decision.ours:
            return
        if run_id is not None:
            late = now - occurrence.due
            log.info(
                "queued %s (run %s, %s%s)",
                job.name,
                run_id,
                occurrence.trigger,
                f", {late:.1f} s late" if late > 1 else "",
            )

    def _fire_later(
        self, job: JobSpec, occurrence: plan.Occurrence, now: float, exc: Exception
    ) -> None:
        """The cluster's database did not answer: a ``catch_up`` job's occurrence is tried
        again until it does (then runs once, late); another's is missed, as while down."""
        log.warning("could not queue %s: %s", job.name, exc)
        if job.catch_up and not plan.is_startup(job):
            retry_at = now + BACKEND_RETRY_SECONDS
            self._plan(dataclasses.replace(occurrence, due=retry_at, trigger="catch_up"))
        elif not plan.is_startup(job):
            self._plan(plan.following_occurrence(job, occurrence, now, self.rand()))
        else:
            self._plan(dataclasses.replace(occurrence, due=now + BACKEND_RETRY_SECONDS))

    # --- reload -------------------------------------------------------------------------------

    def reload(self, why: str) -> bool:
        try:
            with reaper.Holding():  # the validate child's exit status is its own
                new = load_validated(self.config_path, self.root)
        except ConfigError as exc:
            log.error(
                "config reload (%s) failed; keeping the previous config: %s",
                why,
                exc.render().replace("\n", " |"),
            )
            return False
        old = self.config
        self.config = new
        self.ctx.config = new
        now = self.clock()
        drop, replan = plan.replans_after_reload(old, new, self.plans)
        for name in drop:
            self.plans.pop(name, None)
        for job in replan:
            self._plan(plan.first_occurrence(job, now, self.rand()))
        self._store_next_runs()
        enabled = sum(job.enabled for job in new.jobs)
        log.info("config reloaded (%s): %d jobs, %d enabled", why, len(new.jobs), enabled)
        settle_garbage_collector()
        return True


class _Decision:
    """Whether an occurrence is this scheduler's to queue (a cluster's schedulers all plan
    it): asked by ``enqueue_job`` in the transaction that queues it."""

    def __init__(self, ctx: RunnerContext, job: JobSpec, occurrence: plan.Occurrence) -> None:
        self.ctx, self.job, self.occurrence = ctx, job, occurrence
        self.ours = False
        self.anchor: float | None = None

    def __call__(self) -> bool:
        store: Any = self.ctx.store
        result = store.decide_occurrence(
            self.job.name,
            self.occurrence.scheduled_for,
            plan.interval_of(self.job),
            catch_up=self.occurrence.trigger == "catch_up",
        )
        if isinstance(result, float):
            self.anchor = result
        self.ours = result == "new"
        return self.ours
