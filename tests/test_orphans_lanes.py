"""Orphans when several runs execute at once in one process (lanes: one attempt per thread).

Every orphan of every run comes back to the same runner, so what tells whose it is, is when
it was born: its start tick (``/proc/PID/stat`` field 22) against the flights of the runs in
this process. Born while one run alone was in flight, it is that run's; born while several
were, it is spared until each of them has been ended by us, and ended with the last. Each
attempt runs through ``execute()`` in a thread of its own, as a scheduler's slot thread runs
it, and is ended by ``cancel()`` (a stop, or an interrupt at shutdown): the ending path is a
timeout's, and unlike a deadline the test can order it against the other thread's events.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import process_running, wait_for
from margins import PROMPT, SLOW
from notify_servers import capture_runner_log
from test_orphans import SETTLE, stat_fields, with_marker
from test_orphans import request as orphans_request

from batch_runner.execution import flights, procs, reaper
from batch_runner.execution.executor import AttemptRequest, execute
from batch_runner.execution.outcome import AttemptOutcome

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="subreapers are Linux's")

_HZ = os.sysconf("SC_CLK_TCK") if sys.platform == "linux" else 100


def boot_ticks() -> int:
    """Clock ticks since boot, computed here rather than by the code under test."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) * _HZ // 10**9


def start_tick(pid: int) -> int:
    return int(stat_fields(pid)[19])


def request(tmp_path: Path, argv: list[str], kill_grace: float = 1.0) -> AttemptRequest:
    return orphans_request(tmp_path, argv, SLOW * 4, kill_grace)


class Lane:
    """One ``execute()`` in a thread of its own; ``end()`` has ``cancel()`` say ``answer``."""

    def __init__(self, tmp_path: Path, argv: list[str], answer: str = "stopped") -> None:
        self.request = request(tmp_path, argv)
        self.run_id = self.request.run_id
        self.answer = answer
        self.stop = threading.Event()
        self.spawned = threading.Event()
        self.outcome: AttemptOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"slot-{self.run_id}")

    def _run(self) -> None:
        try:
            self.outcome = execute(
                self.request,
                on_spawned=lambda pid: self.spawned.set(),
                cancel=lambda: self.answer if self.stop.is_set() else None,
                cancel_poll_interval=0.02,
            )
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> Lane:
        self.thread.start()
        assert self.spawned.wait(SETTLE), "the job did not start"
        return self

    def join(self) -> AttemptOutcome:
        self.thread.join(SETTLE)
        assert not self.thread.is_alive(), "the attempt did not end"
        assert self.error is None, repr(self.error)
        assert self.outcome is not None
        return self.outcome

    def end(self) -> AttemptOutcome:
        self.stop.set()
        return self.join()


@pytest.fixture
def lanes(tmp_path: Path) -> Iterator[Callable[..., Lane]]:
    """Makes lanes; any still running at the end is stopped."""
    made: list[Lane] = []

    def make(argv: list[str], answer: str = "stopped") -> Lane:
        made.append(Lane(tmp_path, argv, answer))
        return made[-1]

    yield make
    for lane in made:
        lane.stop.set()
    for lane in made:
        if lane.thread.ident is not None:
            lane.thread.join(SETTLE)


@pytest.fixture
def markers() -> Iterator[Callable[[], str]]:
    """Unique ``sleep`` durations; whatever still runs with one at the end is killed, and
    the orphans that were ours are reaped."""
    made: list[str] = []

    def make() -> str:
        made.append(f"303.{uuid.uuid4().int % 10**9:09d}")
        return made[-1]

    yield make
    for marker in made:
        for pid in with_marker(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    reaper.reap_zombies()


def leave_orphan(marker: str, ready: Path, *, deaf: bool = False) -> str:
    """Shell that leaves an orphan outside the session, without the environment (no
    ``BATCH_RUN_ID``): its pid goes to ``ready`` once it has left the session. A ``deaf`` one
    ignores SIGTERM: only the SIGKILL at the end of a kill grace ends it."""
    trap = 'trap "" TERM; ' if deaf else ""
    detached = f"env -i setsid sh -c '{trap}echo $$ >{ready}; exec sleep {marker}' >/dev/null 2>&1"
    return f"({detached} &)"  # the subshell exits at once: the orphan is ours from then on


def orphan_pid(ready: Path) -> int:
    """The orphan's pid once it has written it and come back to us."""
    wait_for(lambda: ready.exists() and ready.read_text().endswith("\n"), SETTLE)
    pid = int(ready.read_text())
    wait_for(lambda: stat_fields(pid)[1:2] == [str(os.getpid())], SETTLE)
    return pid


def sleeping(marker: str) -> list[str]:
    return ["sh", "-c", f"exec sleep {marker}"]


def test_an_orphan_born_while_its_run_ran_alone_is_ended_with_it(
    tmp_path: Path, lanes: Callable[..., Lane], markers: Callable[[], str]
) -> None:
    """B starting later, and running on, makes no doubt of whose it is."""
    marker, ready = markers(), tmp_path / "orphan.pid"
    a = lanes(["sh", "-c", f"{leave_orphan(marker, ready)}; exec sleep {markers()}"]).start()
    orphan = orphan_pid(ready)
    born = start_tick(orphan)
    wait_for(lambda: boot_ticks() > born, SETTLE)  # B's flight starts on a later tick
    b = lanes(sleeping(markers())).start()
    assert a.end().status == "stopped"
    assert not process_running(orphan)
    assert not with_marker(marker)
    assert b.thread.is_alive() and b.outcome is None  # B runs on
    assert b.end().status == "stopped"


def test_a_daemon_of_a_successful_run_born_while_another_ran_is_spared_at_its_end(
    tmp_path: Path, lanes: Callable[..., Lane], markers: Callable[[], str]
) -> None:
    """A run that succeeded may have started its daemon on purpose: another run's end
    must not kill it, though it was born while that run was in flight too."""
    marker, ready = markers(), tmp_path / "daemon.pid"
    a = lanes(sleeping(markers())).start()
    daemon_job = f"{leave_orphan(marker, ready)}; until [ -s {ready} ]; do sleep 0.01; done"
    b = lanes(["sh", "-c", daemon_job]).start()
    assert b.join().status == "success"
    daemon = orphan_pid(ready)
    assert a.end().status == "stopped"
    assert with_marker(marker) == [daemon]


def test_an_orphan_born_while_two_runs_ran_is_spared_until_both_are_ended(
    tmp_path: Path,
    lanes: Callable[..., Lane],
    markers: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Either run's: spared (with a warning naming both) when A is stopped, for B may have
    started it on purpose; ended with B once B is interrupted too, within B's own ending
    (it ignores SIGTERM: B's SIGKILL ends it, not a later one)."""
    capture_runner_log(caplog, monkeypatch)
    marker, ready = markers(), tmp_path / "orphan.pid"
    a = lanes(sleeping(markers())).start()
    job = f"{leave_orphan(marker, ready, deaf=True)}; exec sleep {markers()}"
    b = lanes(["sh", "-c", job], answer="interrupted").start()
    orphan = orphan_pid(ready)
    assert a.end().status == "stopped"
    assert with_marker(marker) == [orphan]
    (warning,) = [r.getMessage() for r in caplog.records if f"orphan {orphan} " in r.message]
    assert a.run_id in warning and b.run_id in warning
    assert b.end().status == "interrupted"
    assert not process_running(orphan)  # ended with B's own processes, within its grace
    assert not with_marker(marker)


def test_an_orphan_of_two_runs_interrupted_at_once_is_ended(
    tmp_path: Path, lanes: Callable[..., Lane], markers: Callable[[], str]
) -> None:
    """A scheduler's shutdown interrupts every run at once. Here each job ignores SIGTERM, so
    the two endings overlap for a kill grace; the orphan they share (deaf too) is SIGKILLed
    within them, not left to a later SIGKILL."""
    marker, ready = markers(), tmp_path / "orphan.pid"
    deaf = 'trap "" TERM; exec sleep'
    a = lanes(["sh", "-c", f"{deaf} {markers()}"], answer="interrupted").start()
    job = f"{leave_orphan(marker, ready, deaf=True)}; {deaf} {markers()}"
    b = lanes(["sh", "-c", job], answer="interrupted").start()
    orphan = orphan_pid(ready)
    a.stop.set()
    b.stop.set()
    assert (a.join().status, b.join().status) == ("interrupted", "interrupted")
    assert not process_running(orphan)
    assert not with_marker(marker)


def test_a_popen_child_of_another_thread_is_no_orphan(
    tmp_path: Path, lanes: Callable[..., Lane], markers: Callable[[], str]
) -> None:
    """A notifier's command, run by another lane's thread while A runs alone, is a child of
    ours outside our session, born after A's job and without an id, as an orphan would be;
    but orphans come to the main thread, and it does not: A's end leaves it alone."""
    marker = markers()
    a = lanes(sleeping(markers())).start()
    started: list[subprocess.Popen[bytes]] = []
    statuses: list[int] = []

    def notifier() -> None:  # waits for its command, as ``notify.command.send`` does
        started.append(subprocess.Popen(["sleep", marker], start_new_session=True))
        statuses.append(started[0].wait(timeout=SETTLE * 5))

    thread = threading.Thread(target=notifier)
    thread.start()
    try:
        wait_for(lambda: started, SETTLE)
        assert a.end().status == "stopped"
        assert process_running(started[0].pid), "the notifier's command was ended with the run"
    finally:
        for command in started:
            command.kill()
        thread.join(SETTLE)
    assert statuses == [-signal.SIGKILL]  # its exit status is its own


def at_once(requests: list[AttemptRequest]) -> dict[int, AttemptOutcome]:
    """Each request executed in a thread of its own, all let go at the same moment."""
    outcomes: dict[int, AttemptOutcome] = {}
    gate = threading.Barrier(len(requests))

    def run(i: int) -> None:
        gate.wait(SETTLE)
        outcomes[i] = execute(requests[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SETTLE + SLOW)
    return outcomes


def test_concurrent_attempts_keep_their_own_status_output_and_pipes(
    tmp_path: Path, markers: Callable[[], str]
) -> None:
    """Four attempts at once, three rounds. Each leaves a daemon that keeps whatever it
    inherited open: a pipe end of another attempt's among it would keep that attempt waiting
    for EOF through its kill grace (``SLOW``)."""
    marker = markers()
    for round_ in range(3):
        requests = []
        for i in range(4):
            ready = tmp_path / f"daemon-{round_}-{i}"
            daemon = f"setsid sh -c 'echo >{ready}; exec sleep {marker}' </dev/null >/dev/null 2>&1"
            wait = f"until [ -s {ready} ]; do sleep 0.01; done"  # it has left the group
            script = f"echo out-{round_}-{i}; {daemon} & {wait}; exit {i}"
            requests.append(request(tmp_path, ["sh", "-c", script], kill_grace=SLOW))
        outcomes = at_once(requests)
        assert sorted(outcomes) == [0, 1, 2, 3]
        for i, outcome in outcomes.items():
            assert (outcome.status, outcome.exit_code) == ("success" if i == 0 else "error", i)
            assert outcome.output == f"out-{round_}-{i}\n"
            assert outcome.ended_at - outcome.started_at < PROMPT, f"attempt {i} waited"
    assert len(with_marker(marker)) == 12  # every daemon was spared


def test_ticks_are_the_clock_of_a_processs_start_time() -> None:
    """A child's start time in /proc falls between the ticks read before and after it."""
    before = reaper.ticks()
    child = subprocess.Popen(["sleep", "30"])
    after = reaper.ticks()
    try:
        assert before <= start_tick(child.pid) <= after
        assert abs(reaper.ticks() - boot_ticks()) <= 1
    finally:
        child.kill()
        child.wait(timeout=SETTLE)


@pytest.fixture
def fake_jobs() -> Iterator[Callable[..., int]]:
    """Flights for jobs no process is (their pids are above any pid_max, 2**22); those still
    in flight at the end are ended, so that no later test sees them."""
    made: list[int] = []

    def make(run_id: str, start: int | None = None) -> int:
        made.append(2**22 + 1000 + len(made))
        flight = flights.begin(run_id, reaper.ticks() if start is None else start)
        reaper.spawned(made[-1], flight)
        _fake_flights[made[-1]] = flight
        return made[-1]

    yield make
    for pid in made:
        fake_waited(pid, True)  # nothing for one that has ended


_fake_flights: dict[int, flights.Flight] = {}


def fake_waited(pid: int, ended_by_us: bool, grace: float = 0.0) -> None:
    """``reaper.waited`` for a fake job, as the executor calls it with the job's flight."""
    reaper.waited(pid, _fake_flights[pid], ended_by_us, grace)


def test_waited_ends_an_ambiguous_orphan_only_while_its_pid_is_the_same_process(
    markers: Callable[[], str], fake_jobs: Callable[..., int]
) -> None:
    """The last owner's end ends the orphan even when no scope of it did (here, none was
    made); a pid whose start tick differs (recycled since) is never signalled."""
    spared, ended = markers(), markers()
    processes = [subprocess.Popen(["sleep", m], start_new_session=True) for m in (spared, ended)]
    try:
        start = min(start_tick(p.pid) for p in processes)
        first, second = fake_jobs("run-0", start), fake_jobs("run-1", start)
        flight = flights.ending(first)
        assert flight is not None
        for process, tick_offset in ((processes[0], 1), (processes[1], 0)):
            born = start_tick(process.pid) + tick_offset  # +1: "recycled" since recorded
            assert not flights.is_ours(flight, process.pid, born)
        fake_waited(first, True, 0.1)
        assert all(p.poll() is None for p in processes)  # run-1 is still in flight
        fake_waited(second, True, 0.1)
        assert processes[1].wait(timeout=PROMPT) == -signal.SIGTERM
        assert processes[0].poll() is None
        assert procs.terminate_process(processes[0].pid, start_tick(processes[0].pid) + 1, 0.1)
        assert processes[0].poll() is None  # not the process that started on that tick
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=SETTLE)


def test_a_flight_that_ended_before_another_began_shares_no_orphan_with_it(
    fake_jobs: Callable[..., int],
) -> None:
    """Back to back in one lane while another lane runs on: the first flight, which ended on
    its own, may share a tick with the second (an end is the tick after the reap), but an
    orphan born after the second began is not the first's, and does not wait for it."""
    other = fake_jobs("other")
    fake_waited(fake_jobs("first"), False)
    tick = reaper.ticks()
    second = fake_jobs("second", tick)
    assert flights.ending(other) is not None
    flight = flights.ending(second)
    assert flight is not None
    assert flights.is_ours(flight, 2**22 + 999, tick)  # other and second: ended by us


def test_runs_being_ended_at_once_count_each_other_as_ended_by_us(
    fake_jobs: Callable[..., int],
) -> None:
    """Neither has ended yet when either looks for its orphans (a shutdown): the orphan they
    share is the run's all the same, to be ended with it rather than later."""
    tick = reaper.ticks()
    a, b = fake_jobs("a", tick), fake_jobs("b", tick)
    flight = flights.ending(a)
    assert flight is not None
    assert not flights.is_ours(flight, 2**22 + 999, tick)  # b may yet end on its own
    assert flights.ending(b) is not None
    assert flights.is_ours(flight, 2**22 + 999, tick)


def test_a_lone_run_ends_its_orphan_without_a_warning(
    tmp_path: Path,
    markers: Callable[[], str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one run in flight (run-job, a worker), an orphan is the run's as before."""
    capture_runner_log(caplog, monkeypatch)
    marker, ready = markers(), tmp_path / "orphan.pid"
    lane = Lane(tmp_path, ["sh", "-c", f"{leave_orphan(marker, ready)}; exec sleep {markers()}"])
    lane.start()
    orphan = orphan_pid(ready)
    assert lane.end().status == "stopped"
    assert not process_running(orphan)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "orphan" in r.message]


def test_an_orphan_born_before_another_runs_job_is_not_that_runs_even_on_its_tick(
    markers: Callable[[], str], fake_jobs: Callable[..., int]
) -> None:
    """Run B's flight began on the tick its job started; a helper of run A born on that tick
    but before B's job (a lower pid) cannot come from B's job, and is A's alone."""
    tick = reaper.ticks()
    a = fake_jobs("a", tick)
    b_flight = flights.begin("b", tick)  # as the executor does, just before B's spawn
    helper = subprocess.Popen(["sleep", markers()], start_new_session=True)
    b_job = subprocess.Popen(["sleep", markers()], start_new_session=True)
    try:
        reaper.spawned(b_job.pid, b_flight)
        flight = flights.ending(a)
        assert flight is not None
        assert flights.is_ours(flight, helper.pid, start_tick(helper.pid))
    finally:
        for process in (helper, b_job):
            process.kill()
            process.wait(timeout=SETTLE)
        reaper.waited(b_job.pid, b_flight, False)


def test_what_a_notifiers_command_leaves_running_is_no_orphan_of_a_run_in_flight(
    tmp_path: Path, lanes: Callable[..., Lane], markers: Callable[[], str]
) -> None:
    """A notifier's command, run by another lane's thread while A runs, leaves a process in
    the background: reparented to us, born during A's flight, without an id. It is the
    notifier's (it carries BATCH_NOTICE_KIND), and A's end leaves it alone."""
    from batch_runner.notify import command

    marker = markers()
    a = lanes(sleeping(markers())).start()
    notice = {"kind": "failure", "job_name": "other"}
    sent = threading.Thread(
        target=command.send,
        args=({"command": f"sleep {marker} >/dev/null 2>&1 &"}, notice),
        kwargs={"cwd": str(tmp_path)},
    )
    sent.start()
    sent.join(SETTLE)
    try:
        wait_for(lambda: with_marker(marker), SETTLE)
        assert a.end().status == "stopped"
        assert with_marker(marker), "what the notifier's command left was ended with the run"
    finally:
        for pid in with_marker(marker):
            os.kill(pid, signal.SIGKILL)
