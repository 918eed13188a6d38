"""A slot's runs back to back, with the bookkeeping off the path between two runs.

Between one run's end and the next run's start a slot's runner does only what must come
first: the ended attempt's JSONL line (from then on its end is durable), a look at whether
the next run may still start, a note that it starts, the spawn. Everything else goes into one
commit made right after the spawn, while the child starts: the rows of the runs that ended and
their jobs' state, and the run after this one reserved.

The next run is reserved during the run before it (``reserved``: taken, not started). Its
start is written to the slot's lock file, not to the database (``Slot.note_start``: one write
into the page cache, where a commit costs a tenth of a millisecond): a reserved run its slot
notes as started *is* started, for whoever reads it under the store's write lock, and the
runner marks its row ``running`` once it has run ``STARTED_REPORT_DELAY`` (with its process
group), or with its end when it ends sooner. The note is written under the write lock, after
a re-check of the reservation (cheap: unless another process committed since our last commit,
nothing changed), so another process changes a reserved run (``queue remove``, a pause, a run
of higher priority added) either before the re-check, which puts the reservation back, or
after the note, when it finds the run started (``runs.endings``).

A runner killed in between leaves evidence for recovery (``runs.recovery``): an ended run's
JSONL line (its row still says running or reserved), a started run's note. Reservations are
made in lanes of width one: in a wider lane a reserved run would wait for this slot's run
while another slot has nothing to do.
"""

from __future__ import annotations

import time

from batch_runner.errors import StorageError
from batch_runner.logs import get_logger
from batch_runner.runs import notices
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.finish import Ended, write_ended, write_waiting_results
from batch_runner.state.slots import Slot

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


log = get_logger("batch_runner")


class NotStarted(Exception):
    """The reserved run may not start after all: it was put back (or ended by someone)."""


# A reservation older than this is checked in full before its start, whatever else changed:
# a waiting run of its lane may have come due meanwhile and rank first.
RECHECK_AFTER = 0.05
# How many of the next runs a slot reserves at once, and how many ended runs it lets wait for
# one commit: a commit per run would cost more than starting a short job.
AHEAD = 8
# How often the result lines a full disk kept back are looked for between runs.
WAITING_LINES_EVERY = 1.0


class Handoff:
    """What one slot's runner carries from one run to the next."""

    def __init__(self, ctx: RunnerContext, slot: Slot, *, reserving: bool) -> None:
        self.ctx, self.slot, self.reserving = ctx, slot, reserving
        self.ended: list[Ended] = []  # lines written, rows not yet
        self.reserved: list[dict[str, Any]] = []  # our next runs, in order
        self._version = -1  # the store's data version after our last commit
        self._lines_looked_at = 0.0
        self._after: dict[str, Any] | None = None  # the run after_spawn was last called for
        self._to_say: list[Callable[[], None]] = []  # end lines, said after the next spawn
        self.error: Exception | None = None  # what saying one raised (a worker's stdout gone)

    # --- the drain's side ----------------------------------------------------------------

    def defer(self, ended: Ended) -> None:
        self.ended.append(ended)

    def say_later(self, say: Callable[[], None]) -> None:
        self._to_say.append(say)

    def take_reserved(self) -> dict[str, Any] | None:
        """The next reserved run, made ready to start (its next attempt; ``before_spawn``)."""
        if not self.reserved:
            return None
        run = self.reserved.pop(0)
        run["reserved"] = True
        run["attempt"] += 1
        # Its log's day, should its id carry none: recovery looks there (reserved_at).
        run["started_at"] = run["reserved_at"]
        return run

    def claim(self, claimer: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """No reserved run: the ends so far and the next claim in one commit."""
        with self.ctx.store.transaction():
            states = self._write_ended()
            run = claimer()
        self._after_commit(states)
        self._say()
        return run

    def close(self) -> None:
        """The drain is over: write what waits, give the reservations back."""
        with self.ctx.store.transaction():
            states = self._write_ended()
            self._release()
        self._after_commit(states)
        self._say()

    # --- the executor's side -------------------------------------------------------------

    def before_spawn(self, run: dict[str, Any]) -> Callable[[], None]:
        """For a reserved run: re-check it and note that it starts, under the write lock."""

        def start() -> None:
            store, ctx = self.ctx.store, self.ctx
            noted = False
            try:
                with store.transaction():
                    now = time.time()
                    if (
                        store.data_version() != self._version
                        or now - run["reserved_at"] > RECHECK_AFTER
                    ) and not store.reservation_holds(run, ctx.pid, now):
                        # Everything ahead is looked at afresh, by a claim.
                        self.reserved.insert(0, run)
                        self._release()
                        states = self._write_ended()
                        run["reserved"] = False
                    else:
                        states = None
                        run["started_at"] = now
                        noted = self.slot.note_start(run["run_id"], run["attempt"])
                        if not noted:
                            # Nothing on disk says it started (a full disk): its row does.
                            store.start_reserved(run, ctx.pid)
            except BaseException:
                if not noted and run.get("reserved"):
                    self.reserved.insert(0, run)  # never started: ``close`` gives it back
                raise
            if states is not None:
                self._after_commit(states)
                raise NotStarted(run["run_id"])
            if not noted:
                run["reserved"] = False  # committed as started

        return start

    def after_spawn(self, run: dict[str, Any]) -> None:
        """Right after a spawn (or an attempt that spawned nothing): the runs ended so far are
        written and the next runs reserved, in one commit, once that is due: when nothing is
        reserved any more, or ``AHEAD`` ends wait. A failure (a full disk) is logged: the job
        runs on, and the next commit tries again."""
        self._after = run
        if (self.reserved or not self.reserving) and len(self.ended) < AHEAD:
            self._say()
            self._look_for_waiting_lines()
            return
        self.commit(run)

    def settle(self, run: dict[str, Any]) -> None:
        """After an attempt: ``after_spawn``, had it not been called (nothing was spawned)."""
        if self._after is not run:
            self.after_spawn(run)

    def started(self, run: dict[str, Any], pid: int) -> None:
        """The job has run ``STARTED_REPORT_DELAY``: its row says so, with the ends so far."""
        store, marked = self.ctx.store, False
        with store.transaction():
            if run.get("reserved"):
                marked = store.start_reserved(run, self.ctx.pid, pid)
            else:
                store.update_run(run["run_id"], pgid=pid, log_file=run["log_file"])
            states = self._write_ended()
        if marked:  # committed: its end need not say when it started
            run["reserved"] = False
        self._after_commit(states)
        self._look_for_waiting_lines()

    def commit(self, run: dict[str, Any]) -> None:
        try:
            with self.ctx.store.transaction():
                states = self._write_ended()
                self._reserve()
        except StorageError as exc:
            self.reserved = []  # rolled back with the rest
            log.warning("run %s: %s; tried again with the next commit", run["run_id"], exc)
            self._say()
            return
        self._after_commit(states)
        self._say()
        self._look_for_waiting_lines()

    def _look_for_waiting_lines(self) -> None:
        """Append the result lines a full disk kept back, if any (looked for once a second:
        the line of each ended run is written without looking, see ``finish._journal``)."""
        now = time.monotonic()
        if now - self._lines_looked_at >= WAITING_LINES_EVERY:
            self._lines_looked_at = now
            write_waiting_results(self.ctx)

    # --- inside ------------------------------------------------------------------------------

    def _reserve(self) -> None:
        store, ctx, slot = self.ctx.store, self.ctx, self.slot
        if self.reserving and not self.reserved:
            runs = store.reserve_next(
                time.time(), ctx.pid, ctx.host, lane=slot.lane, slot=slot.index, limit=AHEAD
            )
            for index, run in enumerate(runs):
                if run["spec"].get("ping_url") or run["spec"].get("type") == "http":
                    # Its start sends something, or spawns nothing: it and those after it are
                    # claimed once this slot is free, the usual way.
                    for later in runs[index:]:
                        store.release_reserved(later["run_id"], ctx.pid)
                    runs = runs[:index]
                    break
            self.reserved = runs
        self._version = store.data_version()

    def _release(self) -> None:
        for run in self.reserved:
            self.ctx.store.release_reserved(run["run_id"], self.ctx.pid)
        self.reserved = []

    def _say(self) -> None:
        to_say, self._to_say = self._to_say, []
        for say in to_say:
            try:
                say()
            except Exception as exc:  # raised by the drain once the attempt running now ends
                self.error = self.error or exc

    def _write_ended(self) -> list[tuple[Ended, dict[str, Any] | None]]:
        return [(ended, write_ended(self.ctx, ended)) for ended in self.ended]

    def _after_commit(self, states: list[tuple[Ended, dict[str, Any] | None]]) -> None:
        """The ends are committed: what follows a run's end (a job's recovery notice)."""
        if not states:
            return
        self.ended = []
        for ended, state in states:
            notices.run_finished(self.ctx, {**ended.run, **ended.fields}, ended.outcome, state)
