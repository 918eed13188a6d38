"""Flights: when each run of this process was in flight, to tell whose an orphan is.

Every orphan of every run executing in this process comes back to it alike (see ``reaper``),
so when several runs execute at once (the scheduler's lanes, one per thread), what tells
whose an orphan is, is when it was born. Its start time (``/proc/PID/stat`` field 22, in clock
ticks since boot) falls within the flight of the run it came from: from the tick read just
before the run's job was spawned to the tick after the one read once it was reaped. Ticks are
coarse (10 ms), so a birth on a flight's first or last tick counts as within it.

An orphan born while one run alone was in flight is that run's. One born while several were
may be any one's: it is spared, and ended with the last of them once every one of them has
been ended by us (timeout, stop, interrupt). If one of them ended on its own, the orphan may
be a daemon it started on purpose, and it is left running: the limit of telling runs apart by
time, which a cgroup per run would lift.

Only flights that overlapped in time share orphans: two runs back to back (a worker draining
a queue) may share a tick, but an orphan born after the second one's job (which the reaper
checks) is the second's, as it was before runs shared a process.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from batch_runner.logs import get_logger

log = get_logger("batch_runner")

_HZ = os.sysconf("SC_CLK_TCK") if sys.platform == "linux" else 0


class Flight:
    """One attempt's job, from just before its spawn to its reaping."""

    __slots__ = ("by_us", "end", "first", "job", "last", "run_id", "start")

    def __init__(self, run_id: str, start: int, first: int) -> None:
        self.run_id = run_id
        self.start = start  # ticks
        # (start tick, pid) of the job once spawned: what its tree forks comes after it.
        self.job: tuple[int, int] | None = None
        self.end: int | None = None  # ticks; None while in flight
        self.by_us = False  # ended, or being ended, by a timeout, stop or interrupt
        self.first = first  # ``_events`` at the spawn: which flights overlapped in time
        self.last: int | None = None  # ``_events`` at the end

    def overlaps(self, other: Flight) -> bool:
        return (self.last is None or self.last > other.first) and (
            other.last is None or other.last > self.first
        )

    def holds(self, tick: int, pid: int) -> bool:
        """Whether a process born at ``tick`` as ``pid`` may come from this flight's job: born
        while it flew, and after the job itself (on the same tick, with a higher pid)."""
        if tick < self.start or (self.end is not None and tick > self.end):
            return False
        return self.job is None or self.job < (tick, pid)


# Read and changed by the executor threads, under the lock; ``flying`` reads without it (a
# dict lookup is atomic), as it runs in the main thread's SIGCHLD handler, which must never
# wait for a lock the interrupted code may hold.
_lock = threading.Lock()
_in_flight: dict[int, Flight] = {}  # job pid -> its flight, until Popen reaped it
_flights: list[Flight] = []  # in flight, and those ended that may share an orphan with them
_ambiguous: dict[tuple[int, int], tuple[Flight, ...]] = {}  # (pid, start tick) -> its owners
_events = [0]  # spawns and ends counted: their order in time, which ticks are too coarse for


def ticks() -> int:
    """Clock ticks since boot, the clock of a process's start time in ``/proc/PID/stat``."""
    if not _HZ:
        return 0  # no /proc to compare with
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) * _HZ // 1_000_000_000


def begin(run_id: str, start: int) -> Flight:
    """Run ``run_id`` is in flight from tick ``start``, read just before its job is spawned:
    from before the spawn, so that nothing its job forks is ever born outside its flight."""
    with _lock:
        _events[0] += 1
        flight = Flight(run_id, start, _events[0])
        _flights.append(flight)
    return flight


def attach(flight: Flight, pid: int) -> None:
    """``flight``'s job is ``pid``, just spawned: never an orphan, and its start tick orders
    it against orphans born on the same tick."""
    # Born between the flight's start and now: on that tick, when it is still the same one
    # (and ``pid`` is a process: ours, unreaped). Asking /proc instead waits for the job's exec
    # to finish (the kernel holds the new process's locks meanwhile), which kept a queue's
    # runner from doing anything while its job starts.
    started = flight.start if ticks() == flight.start and _exists(pid) else _start_tick(pid)
    with _lock:
        flight.job = None if started is None else (started, pid)
        _in_flight[pid] = flight


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _start_tick(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def flying(pid: int) -> bool:
    """Whether ``pid`` is a job in flight: a Popen of ours will reap it, never an orphan."""
    return pid in _in_flight


def ending(pid: int) -> Flight | None:
    """Job ``pid``'s run is being ended by us; its flight (None if ``pid`` is none in flight).

    Said as soon as the ending starts, so that two runs ended at once (a shutdown) each count
    the other as ended by us when they look for their orphans.
    """
    with _lock:
        flight = _in_flight.get(pid)
        if flight is not None:
            flight.by_us = True
    return flight


def is_ours(flight: Flight, pid: int, started: int) -> bool:
    """Whether the orphan ``pid``, born at tick ``started`` after ``flight``'s job started, is
    to be ended with that run, which is being ended by us (``ending``).

    It is when every run in flight at its birth has been ended by us, or is being ended: the
    run alone, or it and others whose orphans it might be. Otherwise it is spared, with a
    warning the first time.
    """
    with _lock:
        # The run itself is one: the caller knows the orphan was born after its job.
        others = [
            f for f in _flights if f is not flight and f.holds(started, pid) and f.overlaps(flight)
        ]
        owners = [flight, *others]
        if all(f.by_us for f in owners):
            return True
        key = (pid, started)
        new = key not in _ambiguous
        if new:
            _ambiguous[key] = tuple(owners)
        on_purpose = any(f.end is not None and not f.by_us for f in owners)
    if new:
        log.warning(
            "run %s: orphan %d spared: born while runs %s were in flight, it may be any one's; %s",
            flight.run_id,
            pid,
            ", ".join(f.run_id for f in owners),
            "one that ended on its own may have started it on purpose"
            if on_purpose
            else "it is ended once they have all been ended by a timeout, stop or interrupt",
        )
    return False


def end(flight: Flight, pid: int | None, ended_by_us: bool) -> list[tuple[int, int]]:
    """``flight``'s job ``pid`` has been reaped (None: it never started); returns the spared
    orphans, as (pid, start tick), whose every possible run has now ended, each ended by us:
    they are to be ended now. The flight itself is ended, never one a recycled pid names."""
    with _lock:
        if pid is not None and _in_flight.get(pid) is flight:
            del _in_flight[pid]
        if flight.end is not None:
            return []
        _events[0] += 1
        flight.end, flight.last = ticks() + 1, _events[0]
        flight.by_us = flight.by_us or ended_by_us
        due = []
        for key, owners in list(_ambiguous.items()):
            if all(f.end is not None for f in owners):
                del _ambiguous[key]  # settled: ended now, or left running for good
                if all(f.by_us for f in owners):
                    due.append(key)
        _flights[:] = _still_relevant(_flights)
    return due


def _still_relevant(flights: list[Flight]) -> list[Flight]:
    """The flights that may still share an orphan with a run in flight or one to come: those
    in flight, and those that ended after the earliest of them started."""
    earliest = min((f.first for f in flights if f.last is None), default=None)
    if earliest is None:
        return []
    return [f for f in flights if f.last is None or f.last > earliest]
