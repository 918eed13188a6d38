"""A run's processes: its process group, and stragglers that carry its ``BATCH_RUN_ID``.

Every attempt runs as the leader of its own session and group, so the group is the run. A
descendant that called ``setsid`` has left the group, but it still carries the run's id in its
environment (``/proc/<pid>/environ`` is the environment it was started with), which is how it
is found. One that also dropped its environment is found by the executor's ``RunScope``
(see ``reaper``): it is a descendant of the job, or an orphan the job left to the runner.
Zombies count as gone: some inits (containers) never reap them, and a zombie holds no
resources but its pid.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time

from batch_runner.valuetype import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Protocol

    class Scope(Protocol):
        """What belongs to a run besides its group and its id's carriers (``reaper.RunScope``)."""

        def members(self, table: list[Proc]) -> set[int]: ...


# After SIGKILL, how long to wait for the kernel to finish the processes off.
KILL_WAIT = 1.0
# While waiting, the process table is read again this often to see newly forked members.
_RESCAN = 0.25
# Bound on the pidfds opened at once while waiting (a fork bomb must not exhaust fds).
_MAX_PIDFDS = 256
_TAG = b"\0BATCH_RUN_ID="
_NOTICE = b"\0BATCH_NOTICE_KIND="  # set by notify.command for every notifier command


class Proc(Record):
    """A process found in /proc."""

    pid: int
    pgid: int
    ppid: int
    session: int
    marked: bool  # it carries BATCH_RUN_ID=<run_id>
    tag: str | None  # the BATCH_RUN_ID it carries, this run's or another's (read with run_id)
    started: int  # its start time in clock ticks since boot
    # It carries BATCH_NOTICE_KIND: a notifier command's, or left behind by one (read with
    # run_id). Never a run's orphan, whichever run is in flight when it is born.
    notice: bool = False


def kill_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it no longer exists (or is not ours to signal)."""
    if pgid <= 1:
        return False  # killpg(0) would be our own group, 1 is init's: never a run's
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while a member of the group is running (a zombie is not running)."""
    if not kill_group(pgid, 0):
        return False
    if not os.path.isdir("/proc/self"):
        return True  # no process table to tell zombies apart: assume the worst
    return any(proc.pgid == pgid for proc in _scan(None))


def first_group_of_run(run_id: str) -> int | None:
    """The run's process group, found by ``BATCH_RUN_ID`` alone (its pgid was never recorded).

    The runner started the run's first process as the leader of that group, before everything
    else that carries the run's id: the group is that of the earliest such process still
    running, the leader or, once it has exited, one of the members it left behind.
    """
    # Start times tick in 10 ms: at a tie, a group leader before its members.
    found = [(p.started, p.pgid != p.pid, p.pid, p.pgid) for p in _scan(run_id) if p.marked]
    return min(found)[3] if found else None


def terminate_run(
    pgid: int | None,
    run_id: str,
    grace: float,
    *,
    own_group: bool = False,
    scope: Scope | None = None,
) -> bool:
    """SIGTERM the run's group and stragglers, SIGKILL whatever is left after ``grace`` s.

    ``own_group`` says the caller knows ``pgid`` is the run's (the executor, whose leader is not
    reaped yet). Otherwise, as when a dead runner's run is reaped at start-up, the pid may have
    been reused since, so the group is signalled only if a member carries the run's id.
    ``scope`` adds what the run left that nothing else ties to it (see ``reaper``).
    Returns True when nothing of the run is left running.
    """
    group = _checked_group(pgid, run_id, own_group)
    signal_run(group, run_id, signal.SIGTERM, scope)
    return kill_remaining(group, run_id, time.monotonic() + max(grace, 0.0), scope)


def terminate_process(pid: int, started: int, grace: float) -> bool:
    """``terminate_run`` for one process and its descendants, as long as ``pid`` is still the
    process that started at tick ``started``: a pid recycled since is never signalled.
    Returns True when nothing of it is left running."""
    return terminate_run(None, "", grace, scope=_Subtree(pid, started))


class _Subtree:
    def __init__(self, pid: int, started: int) -> None:
        self.pid, self.started = pid, started

    def members(self, table: list[Proc]) -> set[int]:
        if any(p.pid == self.pid and p.started == self.started for p in table):
            return descendants([self.pid], table)
        return set()


def descendants(roots: list[int], table: Iterable[Proc]) -> set[int]:
    """``roots`` and every process below them in ``table``."""
    children: dict[int, list[int]] = {}
    for proc in table:
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    pending = list(roots)
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending += children.get(pid, ())
    return found


def kill_remaining(
    pgid: int | None, run_id: str, deadline: float, scope: Scope | None = None
) -> bool:
    """After SIGTERM: wait until ``deadline`` (monotonic) for the run to go, then SIGKILL it.

    Split from ``terminate_run`` so the executor can read the pipes while the run dies and
    still send a single SIGTERM (a second one means "hurry" to some programs). SIGKILL goes
    again to whatever each rescan finds, for ``KILL_WAIT`` s: a process forked just before the
    first one, or reparented to us as its parent died, is ended too.
    """
    if _wait_gone(pgid, run_id, deadline, scope):
        return True
    give_up = time.monotonic() + KILL_WAIT
    while time.monotonic() < give_up:
        signal_run(pgid, run_id, signal.SIGKILL, scope)
        if _wait_gone(pgid, run_id, min(time.monotonic() + _RESCAN, give_up), scope):
            return True
    return False


def signal_run(pgid: int | None, run_id: str, sig: int, scope: Scope | None = None) -> None:
    """Send ``sig`` to the group and to every straggler outside it.

    SIGTERM is followed by SIGCONT, as systemd does: a stopped process would otherwise hold
    the SIGTERM pending and be SIGKILLed at the end of the grace without a chance to clean up.
    """
    sigs = (sig, signal.SIGCONT) if sig == signal.SIGTERM else (sig,)
    targets = [p.pid for p in _members(pgid, run_id, scope) if p.pgid != pgid]
    for each in sigs:
        if pgid is not None:
            kill_group(pgid, each)
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, each)


def _checked_group(pgid: int | None, run_id: str, own_group: bool) -> int | None:
    if pgid is None or pgid <= 1 or pgid == os.getpgrp():
        return None  # never signal init's group or the runner's own
    if own_group:
        return pgid
    return pgid if any(p.pgid == pgid and p.marked for p in _scan(run_id)) else None


def _members(pgid: int | None, run_id: str, scope: Scope | None) -> list[Proc]:
    """Every running process of the run: its group, the carriers of its id, its scope's."""
    table = _scan(run_id)
    pids = {p.pid for p in table if p.marked or p.pgid == pgid}
    if scope is not None:
        pids |= scope.members(table)
    pids.discard(os.getpid())
    return [p for p in table if p.pid in pids]


def _wait_gone(pgid: int | None, run_id: str, deadline: float, scope: Scope | None) -> bool:
    while True:
        pids = [p.pid for p in _members(pgid, run_id, scope)]
        if not pids:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        wait_exits(pids[:_MAX_PIDFDS], min(remaining, _RESCAN))


def wait_exits(pids: list[int], timeout: float) -> None:
    """Block until every pid has exited or ``timeout`` passes, woken by pidfds, not sleeps."""
    fds: list[int] = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                fds.append(os.pidfd_open(pid))
        _poll_all(fds, time.monotonic() + timeout)
    except OSError:  # no pidfds (Linux < 5.3): the caller looks again after a short nap
        time.sleep(min(timeout, _RESCAN / 5))
    finally:
        for fd in fds:
            os.close(fd)


def _poll_all(fds: list[int], deadline: float) -> None:
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    waiting = len(fds)
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for fd, _events in poller.poll(remaining * 1000):
            poller.unregister(fd)
            waiting -= 1


def _scan(run_id: str | None) -> list[Proc]:
    """Every running process (not zombies), marked when it carries ``run_id``."""
    needle = f"\0BATCH_RUN_ID={run_id}\0".encode() if run_id else None
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    found = (_read_proc(int(name), needle) for name in names if name.isdigit())
    return [proc for proc in found if proc is not None]


def _read_proc(pid: int, needle: bytes | None) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        # The command name may hold spaces and parentheses: split after the last ")".
        fields = stat[stat.rindex(b")") + 2 :].split(b" ", 20)
        state, ids, started = fields[0], [int(f) for f in fields[1:4]], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None  # gone meanwhile, or not ours to read
    if state in (b"Z", b"X"):
        return None
    env = _environ(pid) if needle is not None else b""
    ppid, pgrp, session = ids  # stat fields 4, 5, 6; the start time is field 22
    marked = needle in env if needle else False
    notice = _NOTICE in env
    return Proc(pid, pgrp, ppid, session, marked, _tag(env), started, notice)


def _tag(env: bytes) -> str | None:
    """The first ``BATCH_RUN_ID`` in ``env`` (the one getenv sees), None if none or empty."""
    start = env.find(_TAG)
    if start < 0:
        return None
    start += len(_TAG)
    end = env.find(b"\0", start)
    return env[start : end if end >= 0 else len(env)].decode(errors="replace") or None


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return b"\0" + file.read()
    except OSError:
        return b""


def exit_fd(pid: int) -> int:
    """An fd that becomes readable when ``pid`` exits, without reaping it.

    A pidfd where the kernel has them (Linux 5.3+); elsewhere a thread blocked in
    ``waitid(WNOWAIT)`` writes to a pipe, which leaves the child for ``Popen.wait`` to reap.
    """
    try:
        return os.pidfd_open(pid)
    except OSError:
        pass
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)

    def watch() -> None:
        try:
            with contextlib.suppress(ChildProcessError):  # already reaped: exited all the same
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        finally:
            os.close(write_fd)  # EOF makes read_fd readable

    threading.Thread(target=watch, name=f"exit-watch-{pid}", daemon=True).start()
    return read_fd
