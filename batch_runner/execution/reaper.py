"""Orphans: what a job leaves behind when it detaches, brought back to the runner and reaped.

A descendant that calls ``setsid`` and drops its environment (``env -i setsid daemon &``) has
left the run's process group and no longer carries ``BATCH_RUN_ID``: once its parent exits,
nothing tied it to the run. So the runner makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``, Linux 3.4+): every orphan of its jobs is reparented to it
rather than to init, and after a timeout, stop or interrupt the run's orphans are found among
the runner's own children (``RunScope``) and ended with the rest of the run. As PID 1 (in a
container) every orphan in the namespace comes to the runner anyway.

Orphans become the runner's children, so they must be reaped, but never by a blanket
``waitpid(-1)``: a ``subprocess.Popen`` child reaped behind its back reports exit status 0.
Orphans are reparented to the main thread (the first live thread of the process), so only
the main thread's children are candidates, less the jobs the executor is running
(``spawned``) and the processes in the runner's own session; and nothing is reaped while the
main thread waits for a child of its own (``Holding``: the scheduler's ``validate``). Each is
reaped with ``waitpid(pid, WNOHANG | __WNOTHREAD)``, which cannot touch a child of another
thread (a notifier's command). A daemon a successful run started on purpose is left to run,
and reaped once it exits.

An orphan that carries another run's ``BATCH_RUN_ID`` may be that run's daemon's (a helper it
forked meanwhile), so it is spared, but only when that run may have one: the caller's
``is_known_run`` (the store) says so of a run still going or one that ended in success. Any
id will do in an environment (``env -i BATCH_RUN_ID=decoy setsid ...``), so an id no run has,
or a failed run's, is no alibi: the orphan is this run's.
The store is asked only when a run is ended and such an orphan is found, once per id.

Several runs may execute at once, one per thread (the scheduler's lanes): an orphan is then
told apart by when it was born (see ``flights``), and a child of another thread (a
notifier's command) is never taken for one, since orphans come to the main thread.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from batch_runner.execution import flights, procs
from batch_runner.logs import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterable

    from batch_runner.execution.procs import Proc

log = get_logger("batch_runner")

_PR_SET_CHILD_SUBREAPER = 36
# Wait only for children of the calling thread (linux/wait.h; the os module does not name it).
_WNOTHREAD = 0x20000000
_LINUX = sys.platform == "linux"

# Clock ticks since boot, the clock of /proc/PID/stat's start times: read before a spawn.
ticks = flights.ticks

_adopting: list[bool] = []  # set once: whether orphans come back to this process
_adopt_lock = threading.Lock()  # executor threads adopt as they start their first job
_holding = [0]  # how many ``Holding`` blocks the main thread is in


def adopt() -> bool:
    """Have orphans of our jobs reparented to this process; True when they are (Linux).

    Done once per process, before its first job starts. Costs ~0.5 ms the first time (the
    ``_ctypes`` extension: the ``ctypes`` package on top of it would cost 2 ms more).
    """
    if not _adopting:
        with _adopt_lock:
            if not _adopting:
                _adopting.append(_LINUX and (_set_child_subreaper() or os.getpid() == 1))
    return _adopting[0]


def _set_child_subreaper() -> bool:
    try:
        import _ctypes

        class _ULong(_ctypes._SimpleCData):  # type: ignore[type-arg]
            _type_ = "L"  # prctl reads its arguments as unsigned longs

        class _Int(_ctypes._SimpleCData):  # type: ignore[type-arg]
            _type_ = "i"

        class _Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _Int

        # dlopen(NULL): the program itself, whose symbols include libc's (glibc or musl).
        libc = _ctypes.dlopen(None)  # type: ignore[arg-type]
        prctl = _Function(_ctypes.dlsym(libc, "prctl"))
        one, zero = _ULong(1), _ULong(0)
        if prctl(_PR_SET_CHILD_SUBREAPER, one, zero, zero, zero) == 0:
            return True
        reason = os.strerror(_ctypes.get_errno())
    except (ImportError, AttributeError, OSError, TypeError) as exc:
        reason = str(exc)
    log.warning(
        "cannot become a child subreaper (%s): a process that detaches from a run and "
        "drops BATCH_RUN_ID may outlive its timeout",
        reason,
    )
    return False


def taking_off(run_id: str) -> flights.Flight:
    """Run ``run_id`` is about to spawn its job: it is in flight from now on."""
    return flights.begin(run_id, ticks())


def spawned(pid: int, flight: flights.Flight) -> None:
    """The executor started ``pid`` with Popen for ``flight``'s run: never to be taken for an
    orphan."""
    flights.attach(flight, pid)


def waited(pid: int | None, flight: flights.Flight, ended_by_us: bool, grace: float = 0.0) -> None:
    """The executor's Popen has reaped ``pid`` (or given up on it; None: it never started);
    ``ended_by_us``: after a timeout, stop, interrupt or an error of ours.

    An orphan spared because it may be this run's or others' (see ``flights``) is ended now if
    each of those runs has been ended by us and it still runs (the last of them usually ended
    it with its own processes): SIGTERM, then SIGKILL ``grace`` s later, in a thread of its
    own, so that this run's end does not wait for it.
    """
    for orphan, started in flights.end(flight, pid, ended_by_us):
        fields = _stat(orphan, 20)
        if fields is None or fields[0] in (b"Z", b"X") or int(fields[19]) != started:
            continue  # gone, or its pid is another process's now
        args = (orphan, started, grace)
        try:
            # Not a daemon (a lane thread's would be): the SIGKILL after the grace must not be
            # lost to the scheduler's exit.
            threading.Thread(
                target=procs.terminate_process, args=args, name="orphan-end", daemon=False
            ).start()
        except RuntimeError:  # the interpreter is shutting down: no new threads
            procs.terminate_process(*args)


class Holding:
    """A block in which the main thread waits for a child it started itself (the scheduler's
    ``validate``), known to no registry: orphans wait to be reaped until it ends."""

    def __enter__(self) -> None:
        _holding[0] += 1

    def __exit__(self, *exc_info: object) -> None:
        _holding[0] -= 1
        reap_zombies()  # those that exited meanwhile


class RunScope:
    """What belongs to a run besides its group and the carriers of its ``BATCH_RUN_ID``.

    Every descendant of its job, however it detached, while the job runs; and every orphan
    reparented to us since the job started: a child of the main thread that no Popen of ours
    waits for, outside our session, started after the job (at the same clock tick, with a
    higher pid), and not carrying the id of another run that ``is_known_run`` vouches for
    (without it, no other run is). Born while this run alone was in flight, it is the run's,
    not a daemon an earlier run left (that one started before); born while others were in
    flight too, it is the run's only once they have all been ended by us (see ``flights``).

    Made only for a run that is being ended by us (timeout, stop, interrupt, abort).
    """

    def __init__(
        self,
        job: subprocess.Popen[bytes],
        is_known_run: Callable[[str], bool] | None = None,
    ) -> None:
        self.job = job
        self._started: int | None = None
        self._is_known_run = is_known_run
        self._known: dict[str, bool] = {}  # each id is asked about once per ending
        self._flight = flights.ending(job.pid)

    def members(self, table: list[Proc]) -> set[int]:
        """The pids among ``table`` (every running process) that are the run's this way."""
        started = self._job_started()
        if started is None:
            return set()
        me, session, after = os.getpid(), os.getsid(0), (started, self.job.pid)
        others = _other_threads_children()
        roots = [self.job.pid]
        for proc in table:
            if (
                proc.ppid == me
                and not flights.flying(proc.pid)
                and proc.pid not in others
                and proc.session != session
                and (proc.started, proc.pid) > after
                and (proc.marked or self._unclaimed(proc))
            ):
                roots.append(proc.pid)
        return procs.descendants(roots, table)

    def _unclaimed(self, orphan: Proc) -> bool:
        """Whether an orphan without this run's id is the run's all the same: no other run may
        own it, neither one its id names nor one in flight when it was born. What a notifier
        command left behind is no run's."""
        if orphan.notice or self._another_runs(orphan.tag):
            return False
        return self._flight is None or flights.is_ours(self._flight, orphan.pid, orphan.started)

    def _another_runs(self, tag: str | None) -> bool:
        """Whether ``tag`` (not this run's id) names a run ``is_known_run`` vouches for: its
        orphans are spared.

        A failing check spares the orphan, as before there was one: better a helper left
        running than a daemon another run started on purpose killed.
        """
        if not tag or self._is_known_run is None:
            return False
        if tag not in self._known:
            try:
                self._known[tag] = bool(self._is_known_run(tag))
            except Exception as exc:  # the caller's: it must not leave the run half-ended
                log.warning("cannot tell whether run %r exists (%s): orphans spared", tag, exc)
                self._known[tag] = True
        return self._known[tag]

    def _job_started(self) -> int | None:
        """The job's start time; None once Popen reaped it (its pid may be another's now)."""
        if self._started is None and self.job.returncode is None:
            fields = _stat(self.job.pid, 20)
            self._started = None if fields is None else int(fields[19])
        return self._started


def reap_zombies() -> int:
    """Reap every orphan that has exited; returns how many. A no-op off the main thread.

    One system call when there is nothing to reap (the usual case): ``waitid`` with
    ``WNOWAIT`` tells whether any child of the main thread has exited, and reaps nothing.
    """
    if not _LINUX or _holding[0] or threading.get_ident() != threading.main_thread().ident:
        return 0
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT | _WNOTHREAD
        if os.waitid(os.P_ALL, 0, flags) is None:
            return 0
    except OSError:  # ChildProcessError: no children at all
        return 0
    # 0: our session's leader is outside our PID namespace (``unshare --fork`` from a shell),
    # and so may be an orphan's that entered it: the session tells nothing then.
    session, reaped = os.getsid(0) or None, 0
    for pid in _main_thread_children():
        sid = _session_of(pid)
        if flights.flying(pid) or sid is None or sid == session:
            continue
        try:
            done, status = os.waitpid(pid, os.WNOHANG | _WNOTHREAD)
        except ChildProcessError:
            continue  # reaped meanwhile, or a child of another thread
        if done:
            reaped += 1
            log.debug("reaped orphan %d (wait status %d)", done, status)
    return reaped


def reap_on_sigchld(start_threads: Callable[[], None]) -> None:
    """From now on, reap every orphan as it exits, for a process that sleeps long (the
    scheduler); ``start_threads`` starts its other threads. Call from the main thread.

    Only the main thread may reap orphans, and a blocking call there may last a minute. So
    SIGCHLD must reach it: the other threads block the signal (it is blocked while they are
    started, and they keep that mask), or the kernel could pick one of them to deliver it to
    and the main thread would sleep on. The handler reaps at once: an interrupted select()
    resumes its wait after a handler (PEP 475), and ``reap_zombies`` never blocks.
    """
    adopt()
    signal.signal(signal.SIGCHLD, lambda signum, frame: reap_zombies())
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        start_threads()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def _main_thread_children() -> Iterable[int]:
    """Children of the main thread, where orphans land; without the kernel's children file
    (CONFIG_PROC_CHILDREN), every child of the process: ``__WNOTHREAD`` sorts them out."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", "rb") as file:
            return [int(pid) for pid in file.read().split()]
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return []
    return [pid for pid, ppid in _parents() if ppid == me]


def _other_threads_children() -> set[int]:
    """Children of this process's threads but the main one: Popen children of theirs (a
    notifier's command), never orphans, which come to the main thread."""
    me = os.getpid()
    found: set[int] = set()
    try:
        threads = os.listdir(f"/proc/{me}/task")
    except OSError:
        return found
    for tid in threads:
        if tid != str(me):
            try:
                with open(f"/proc/{me}/task/{tid}/children", "rb") as file:
                    found.update(int(pid) for pid in file.read().split())
            except (OSError, ValueError):
                pass  # the thread has exited, or the kernel has no children files
    return found


def _parents() -> Iterable[tuple[int, int]]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            fields = _stat(int(name))
            if fields is not None:
                yield int(name), int(fields[1])


def _session_of(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[3])


def _stat(pid: int, count: int = 4) -> list[bytes] | None:
    """``/proc/PID/stat`` from its state on (state, ppid, pgrp, session, ...), split into
    ``count`` fields and the rest; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        # The command name may hold spaces and parentheses: split after the last ")".
        fields = stat[stat.rindex(b")") + 2 :].split(b" ", count)
    except (OSError, ValueError):
        return None
    return fields if len(fields) > count else None
