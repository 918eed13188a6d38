"""This process's part of the cluster: a procrastinate worker running attempts, and the keeper
thread that hands due runs to the workers of every host (``dispatch_due``: delayed runs and
retries falling due; a run due when queued is handed off in the commit that queues it), beats
the heart of this host's running attempts and of this process, and sweeps the runs of dead
workers. The scheduler and ``queue worker`` run one, with the interface of the scheduler's
lane threads (``scheduling.dispatch.Dispatcher``): start, poke, stop_new, join, interrupt.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

from batch_runner.cluster.attempts import Attempts
from batch_runner.cluster.sweep import sweep
from batch_runner.cluster.worker import PqWorker
from batch_runner.errors import StorageError
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.state.postgres.cluster import STALE_SECONDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from batch_runner.config.spec import ConfigSpec
    from batch_runner.runs.execute import Observer

log = get_logger("batch_runner")

# A running attempt's heartbeat, and this process's: four to a stale bound, so that a beat or
# two held up by a loaded machine never makes a live run look dead.
BEAT_SECONDS = min(2.0, STALE_SECONDS / 4)
SWEEP_SECONDS = BEAT_SECONDS
DISPATCH_POLL_SECONDS = 0.25  # the longest wait before a delayed run falling due is handed off
# The sweep waits this long after (re)connecting: a database that was away must not make live
# workers look dead (their beats could not be written either).
SWEEP_GRACE_SECONDS = STALE_SECONDS + BEAT_SECONDS
MAX_CONCURRENCY = 8


def concurrency_of(config: ConfigSpec) -> int:
    """How many attempts this host's worker runs at once: the sum of the lanes' widths (the
    default lane's one included), at most ``MAX_CONCURRENCY``."""
    widths = {"default": 1, **config.settings.lanes}
    return max(1, min(sum(widths.values()), MAX_CONCURRENCY))


class ClusterRuntime:
    def __init__(
        self, config: Callable[[], ConfigSpec], role: str, observer: Observer | None = None
    ) -> None:
        self._config = config
        self.role = role
        self.started_at = time.time()
        self.attempts = Attempts(config, observer)
        self.fatal: Any = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="cluster-keeper", daemon=True)
        # Beats on a thread of their own: a dispatch or a sweep held up by the database must
        # never make this host's live runs look dead to the others.
        self._heart = threading.Thread(target=self._beat, name="cluster-heart", daemon=True)
        self._worker: PqWorker | None = None
        self._synced_for: ConfigSpec | None = None

    # --- the Dispatcher interface ------------------------------------------------------------

    def start(self) -> None:
        config = self._config()
        from batch_runner.state.postgres.open import endpoint_of

        ctx = RunnerContext(config=config)
        self._worker = PqWorker(
            endpoint_of(config.settings.backend),
            self.attempts,
            concurrency_of(config),
            f"{ctx.host}/{os.getpid()}",
        )
        self._worker.start()
        self._heart.start()
        self._keeper.start()

    def poke(self) -> None:
        self._wake.set()

    @property
    def busy(self) -> bool:
        return bool(self.attempts.ids())

    @property
    def running(self) -> int:
        return len(self.attempts.ids())

    def stop_new(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def interrupt(self) -> None:
        from batch_runner.runs.finish import ENDS_GIVE_UP

        self.attempts.interrupt_all()
        # An end still waiting for the database gives up: its line is in this host's JSONL,
        # from which this host's next sweep records it.
        ENDS_GIVE_UP.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.busy:
            self._stopping.set()
            self._wake.set()
            if self._worker is not None:
                self._worker.join(max(deadline - time.monotonic(), 0.5))
        return not self.busy

    # --- the keeper -----------------------------------------------------------------------------

    def _keep(self) -> None:
        ctx: RunnerContext | None = None
        connected_since: float | None = None
        next_sweep = 0.0
        warned: str | None = None
        outage = False
        while not self._stopping.is_set():
            pause = DISPATCH_POLL_SECONDS
            try:
                ctx = self._context(ctx)
                store: Any = ctx.store
                store.dispatch_due()
                now = time.monotonic()
                connected_since = connected_since or now
                if outage and self._worker is not None:
                    self._worker.renew()
                outage = False
                if now >= next_sweep and now - connected_since >= SWEEP_GRACE_SECONDS:
                    next_sweep = now + SWEEP_SECONDS
                    sweep(ctx, set(self.attempts.ids()))
                due_in = store.next_pending_due()
                if due_in is not None and due_in > 0:
                    # A run due already waits for a slot: the end that frees one hands it on.
                    pause = min(pause, due_in)
                warned = None
            except StorageError as exc:
                connected_since = None
                outage = True
                if str(exc) != warned:
                    log.warning("%s; trying again", exc)
                    warned = str(exc)
                pause = 1.0
            except Exception:
                log.exception("the cluster keeper failed; trying again")
                pause = 1.0
            self._wake.wait(pause)
            self._wake.clear()
        if ctx is not None:
            ctx.close()

    def _beat(self) -> None:
        """Every ``BEAT_SECONDS``: this host's running attempts and this process are alive."""
        ctx: RunnerContext | None = None
        config_hash = ""
        while True:
            try:
                config = self._config()
                if ctx is None or ctx.config is not config:
                    ctx = RunnerContext(config) if ctx is None else ctx.renewed(config)
                    config_hash = _hash(ctx)  # read once per config, not at every beat
                store: Any = ctx.store
                store.beat(self.attempts.ids())
                store.process_alive(os.getpid(), self.started_at, self.role, config_hash)
            except StorageError:
                pass  # the keeper says the database is away; the next beat tries again
            except Exception:
                log.exception("the cluster's heartbeat failed; trying again")
            if self._stopping.wait(BEAT_SECONDS):
                break
        if ctx is not None:
            ctx.close()

    def _context(self, ctx: RunnerContext | None) -> RunnerContext:
        config = self._config()
        ctx = RunnerContext(config) if ctx is None else ctx.renewed(config)
        if self._synced_for is not config:
            ctx.store.sync_lanes(ctx.lane_widths)  # type: ignore[attr-defined]
            self._synced_for = config
        return ctx


def _hash(ctx: RunnerContext) -> str:
    """Which config a process runs, to tell hosts whose configs differ."""
    try:
        with open(ctx.config.path, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()[:12]
    except OSError:
        return ""
