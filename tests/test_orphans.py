"""Descendants that detach from a run (``setsid``, ``env -i``) and come back to the runner.

The runner is a child subreaper: whatever a job leaves behind is reparented to it, not to
init. So a timeout, a stop or a shutdown can end every descendant however it detached, and an
orphan that exits is reaped rather than left a zombie. Each detached process carries a unique
marker argument (``sleep 302.<digits>``) so the tests find exactly their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import job, process_running, read_results, run_cli, start_cli, wait_for, write_config

from batch_runner.execution import reaper
from batch_runner.execution.command import build_child_env
from batch_runner.execution.executor import AttemptRequest, execute

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="subreapers are Linux's")

# Generous bounds: a loaded 2-core machine may take seconds where an idle one takes ms.
SETTLE = 20.0


def with_marker(marker: str) -> list[int]:
    """Running processes (zombies excluded) whose command line holds ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as file:
                cmdline = file.read()
        except OSError:
            continue
        if marker.encode() in cmdline.split(b"\0") and process_running(int(name)):
            found.append(int(name))
    return found


def stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` from the state on (state, ppid, pgrp, session, ...); [] when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def zombie_children(pid: int) -> list[int]:
    """The zombies whose parent is ``pid``."""
    zombies = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(int(name))
            if fields and fields[0] == "Z" and fields[1] == str(pid):
                zombies.append(int(name))
    return zombies


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique ``sleep`` duration; whatever still runs with it at the end is killed."""
    value = f"302.{uuid.uuid4().int % 10**9:09d}"
    yield value
    for pid in with_marker(value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def clis() -> Iterator[list[subprocess.Popen]]:
    """CLI processes a test started; any still running at the end is killed, each is reaped."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:  # poll() reaps one that has exited
            process.kill()
            process.communicate(timeout=SETTLE)


def detaching_job(marker: str, timeout: float) -> dict:
    return job(
        "detach",
        ["sh", "-c", f"env -i setsid sleep {marker} & sleep 100"],
        timeout=timeout,
    )


# -- through the command line, as reported --------------------------------------------------


def test_timeout_ends_a_grandchild_that_left_the_session_and_the_environment(
    project: Path, marker: str
) -> None:
    # As reported, but the job says the grandchild's pid once it runs ``sleep``: the test
    # need not catch it in the act, on a machine too loaded to look within the second.
    ready = f"until grep -qaF {marker} /proc/$!/cmdline; do sleep 0.01; done; echo $!"
    command = ["sh", "-c", f"env -i setsid sleep {marker} & {ready}; sleep 100"]
    write_config(project, [job("detach", command, timeout=1)], settings={"kill_grace": 1})
    runner = run_cli(project, "run-job", "detach")
    assert runner.returncode == 124, runner.stderr
    (record,) = read_results(project)
    assert record["output"].strip().isdigit(), "the grandchild did not start within the timeout"
    grandchild = int(record["output"])
    assert not process_running(grandchild)
    assert not with_marker(marker)


def test_stop_ends_a_grandchild_that_left_the_session_and_the_environment(
    project: Path, marker: str, clis: list[subprocess.Popen]
) -> None:
    write_config(project, [detaching_job(marker, 100)], settings={"kill_grace": 1})
    runner = start_cli(project, "run-job", "detach")
    clis.append(runner)
    wait_for(lambda: with_marker(marker) or runner.poll() is not None, SETTLE)
    assert with_marker(marker), "the detached grandchild never started"
    stop = run_cli(project, "stop", "detach")
    assert stop.returncode == 0, stop.stderr
    out, err = runner.communicate(timeout=SETTLE)
    assert runner.returncode == 1, err
    assert "detach: stopped" in out
    assert not with_marker(marker)


def test_scheduler_shutdown_ends_a_grandchild_that_left_the_session(
    project: Path, marker: str, clis: list[subprocess.Popen]
) -> None:
    write_config(
        project,
        [detaching_job(marker, 100)],
        settings={"kill_grace": 1, "shutdown_grace": 0.5},
    )
    scheduler = start_cli(project, "scheduler")
    clis.append(scheduler)
    queued = run_cli(project, "run-job", "--queue", "detach")
    assert queued.returncode == 0, queued.stderr
    wait_for(lambda: with_marker(marker) or scheduler.poll() is not None, SETTLE)
    assert with_marker(marker), "the detached grandchild never started"
    scheduler.send_signal(signal.SIGTERM)
    _, err = scheduler.communicate(timeout=SETTLE)
    assert scheduler.returncode == 0, err
    assert [r["status"] for r in read_results(project)] == ["interrupted"]
    assert not with_marker(marker)


def orphan_under_id(marker: str, run_id: str, ready: Path | None = None) -> list[str]:
    """A job that leaves an orphan carrying ``BATCH_RUN_ID=run_id`` alone, then waits.

    Once the orphan runs ``sleep`` (before, it is a shell of the job, with the job's id), the
    job says its pid on stdout, or in ``ready``: the test need not catch it in the act.
    """
    detach = f"env -i BATCH_RUN_ID={run_id} setsid sleep {marker} >/dev/null 2>&1 & echo $!"
    said = f"echo $pid >{ready}.tmp && mv {ready}.tmp {ready}" if ready else "echo $pid"
    wait = 'until [ "$(cat /proc/$pid/comm 2>/dev/null)" = sleep ]; do sleep 0.01; done'
    # The command substitution's shell exits at once: the orphan is the runner's from then on.
    return ["sh", "-c", f"pid=$({detach}); {wait}; {said}; sleep 100"]


@pytest.mark.parametrize("fake_id", ["decoy", "20200101-000000-abcdef"], ids=["made-up", "unknown"])
def test_timeout_ends_an_orphan_that_carries_an_id_of_no_run(
    project: Path, marker: str, fake_id: str
) -> None:
    """As reported: ``(env -i BATCH_RUN_ID=decoy setsid sleep ... &); sleep 100``. An id the
    store does not know (made up, or well-formed) spares nothing: the orphan is this run's."""
    write_config(
        project,
        [job("decoy", orphan_under_id(marker, fake_id), timeout=2)],
        settings={"kill_grace": 1},
    )
    runner = run_cli(project, "run-job", "decoy")
    assert runner.returncode == 124, runner.stderr
    (record,) = read_results(project)
    assert record["output"].strip().isdigit(), "the orphan did not start within the timeout"
    orphan = int(record["output"])
    assert not process_running(orphan)
    assert not with_marker(marker)


@pytest.mark.parametrize(
    ("earlier_job", "earlier_status"),
    [
        (job("first", ["sleep", "100"], timeout=1), "timeout"),
        (job("first", ["false"]), "error"),
    ],
    ids=["timed-out", "failed"],
)
def test_timeout_ends_an_orphan_that_carries_the_id_of_a_run_that_failed(
    project: Path, marker: str, earlier_job: dict, earlier_status: str
) -> None:
    """As reported: an earlier run that timed out (or failed) left no daemon on purpose, so
    its id spares nothing; only a running or successful run's id is an alibi."""
    write_config(project, [earlier_job], settings={"kill_grace": 1})
    assert run_cli(project, "run-job", "first").returncode in (1, 124)
    (earlier,) = read_results(project)
    assert earlier["status"] == earlier_status
    command = orphan_under_id(marker, earlier["run_id"])
    write_config(
        project, [earlier_job, job("later", command, timeout=2)], settings={"kill_grace": 1}
    )
    runner = run_cli(project, "run-job", "later")
    assert runner.returncode == 124, runner.stderr
    record = read_results(project)[-1]
    assert record["output"].strip().isdigit(), "the orphan did not start within the timeout"
    assert not process_running(int(record["output"]))
    assert not with_marker(marker)


def test_an_orphan_that_carries_an_earlier_runs_id_is_spared(
    project: Path, marker: str, clis: list[subprocess.Popen]
) -> None:
    """A real earlier run's id: the orphan may be its daemon's (respawned, say), not ours."""
    write_config(project, [job("first", ["true"])])
    assert run_cli(project, "run-job", "first").returncode == 0
    (earlier,) = read_results(project)
    assert earlier["status"] == "success"
    ready = project / "orphan.pid"
    command = orphan_under_id(marker, earlier["run_id"], ready)
    write_config(project, [job("first", ["true"]), job("later", command, timeout=100)])
    runner = start_cli(project, "run-job", "later")
    clis.append(runner)
    wait_for(lambda: ready.exists() or runner.poll() is not None, SETTLE)
    orphan = int(ready.read_text())
    assert run_cli(project, "stop", "later").returncode == 0
    _, err = runner.communicate(timeout=SETTLE)
    assert runner.returncode == 1, err
    assert [r["status"] for r in read_results(project)] == ["success", "stopped"]
    assert with_marker(marker) == [orphan]
    os.kill(orphan, signal.SIGKILL)
    wait_for(lambda: not process_running(orphan), SETTLE)
    if stat_fields(orphan)[1:2] == [str(os.getpid())]:  # we are a subreaper since adopt()
        os.waitpid(orphan, 0)


def test_a_later_timeout_in_the_same_runner_spares_an_earlier_runs_daemon(
    project: Path, marker: str, clis: list[subprocess.Popen]
) -> None:
    """The worker's own orphan from a successful run is no part of the next run it ends."""
    daemon_command = ["sh", "-c", f"env -i setsid sleep {marker} >/dev/null 2>&1 &"]
    write_config(
        project,
        [job("daemon", daemon_command), job("slow", ["sleep", "100"], timeout=1)],
        settings={"kill_grace": 1},
    )
    worker = start_cli(project, "queue", "worker", "--forever")
    clis.append(worker)
    assert run_cli(project, "run-job", "--queue", "daemon").returncode == 0
    wait_for(lambda: with_marker(marker) or worker.poll() is not None, SETTLE)
    (daemon,) = with_marker(marker)
    wait_for(lambda: stat_fields(daemon)[1] == str(worker.pid), SETTLE)
    assert run_cli(project, "run-job", "--queue", "slow").returncode == 0
    wait_for(lambda: len(read_results(project)) == 2 or worker.poll() is not None, SETTLE)
    assert [r["status"] for r in read_results(project)] == ["success", "timeout"]
    assert with_marker(marker) == [daemon]
    os.kill(daemon, signal.SIGTERM)
    wait_for(lambda: not stat_fields(daemon), SETTLE)  # reaped by the worker
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=SETTLE)


@pytest.mark.parametrize(
    "runner", [["scheduler"], ["queue", "worker", "--forever"]], ids=["scheduler", "worker"]
)
def test_a_daemon_left_by_a_successful_run_stays_and_is_reaped_when_it_exits(
    project: Path, marker: str, runner: list[str], clis: list[subprocess.Popen]
) -> None:
    """Not killed (it was started on purpose), but adopted: once it exits, it is no zombie."""
    command = ["sh", "-c", f"env -i setsid sleep {marker} >/dev/null 2>&1 &"]
    write_config(project, [job("daemon", command)])
    process = start_cli(project, *runner)
    clis.append(process)
    assert run_cli(project, "run-job", "--queue", "daemon").returncode == 0
    wait_for(lambda: read_results(project) or process.poll() is not None, SETTLE)
    assert [r["status"] for r in read_results(project)] == ["success"]
    wait_for(lambda: with_marker(marker), SETTLE)  # it may still be on its way to ``sleep``
    (daemon,) = with_marker(marker)
    assert stat_fields(daemon)[1] == str(process.pid)  # it came back to the runner
    os.kill(daemon, signal.SIGTERM)
    wait_for(lambda: not stat_fields(daemon), SETTLE)  # reaped: not even a zombie
    assert not zombie_children(process.pid)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=SETTLE)
    assert process.returncode == 0


# -- in this process: the executor, and what the reaper may never touch -----------------------


def request(
    tmp_path: Path, argv: list[str], timeout: float, kill_grace: float = 1.0
) -> AttemptRequest:
    """An attempt with a fresh run id; its log is its own (several may share ``tmp_path``)."""
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    env = build_child_env(
        os.environ, {}, run_id=run_id, job_name="job", attempt=1, config_path="/x.json"
    )
    return AttemptRequest(
        run_id=run_id,
        job_name="job",
        attempt=1,
        argv=argv,
        cwd=str(tmp_path),
        env=env,
        timeout=timeout,
        kill_grace=kill_grace,
        log_path=str(tmp_path / f"{run_id}.log"),
        run_log_max_bytes=1 << 20,
        output_max_bytes=1 << 16,
    )


def test_a_timed_out_attempt_leaves_no_orphan_running_nor_a_zombie(
    tmp_path: Path, marker: str
) -> None:
    # The orphan's parent exits at once: it is ours (reparented) well before the timeout.
    script = f"(env -i setsid sh -c 'echo $$; exec sleep {marker}' &); sleep 100"
    outcome = execute(request(tmp_path, ["sh", "-c", script], timeout=2.0))
    assert outcome.status == "timeout"
    assert outcome.output.strip().isdigit(), "the orphan did not start within the timeout"
    assert not stat_fields(int(outcome.output))  # neither running nor a zombie
    assert not with_marker(marker)


def orphan_zombie(marker: str) -> int:
    """A process reparented to us (its parent exited at once) that has exited, unreaped."""
    reaper.adopt()
    leader = subprocess.Popen(
        ["sh", "-c", f"setsid sh -c 'echo $$; exec sleep {marker}' &"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    orphan = int(leader.stdout.readline())
    assert leader.wait(timeout=SETTLE) == 0
    leader.stdout.close()
    wait_for(lambda: stat_fields(orphan)[1] == str(os.getpid()), SETTLE)
    os.kill(orphan, signal.SIGKILL)
    wait_for(lambda: stat_fields(orphan)[0] == "Z", SETTLE)
    return orphan


def test_an_orphan_that_exits_is_reaped(marker: str) -> None:
    orphan = orphan_zombie(marker)
    assert reaper.reap_zombies() >= 1  # others: what earlier tests' children left to us
    assert not stat_fields(orphan)


def test_popen_children_of_other_threads_keep_their_exit_status(marker: str) -> None:
    """A Popen child in a session of its own (as a notifier's) is never reaped by us."""
    spawned: list[subprocess.Popen[bytes]] = []
    exited = threading.Event()
    release = threading.Event()

    def notifier() -> None:
        spawned.append(subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True))
        wait_for(lambda: stat_fields(spawned[0].pid)[0] == "Z", SETTLE)
        exited.set()
        release.wait(SETTLE)

    thread = threading.Thread(target=notifier)
    thread.start()
    try:
        assert exited.wait(SETTLE)
        orphan = orphan_zombie(marker)  # something to reap beside it
        assert reaper.reap_zombies() >= 1
        assert not stat_fields(orphan)
    finally:
        release.set()
        thread.join(SETTLE)
    assert spawned[0].wait(timeout=SETTLE) == 3


def test_popen_children_in_our_own_session_keep_their_exit_status(marker: str) -> None:
    """As the scheduler's ``validate`` child, started from the main thread.

    Run in a session of its own: where the session's leader is outside our PID namespace (a
    CI container, ``unshare --fork``), getsid() says 0, the session tells nothing and only
    ``Holding`` guards such a child (the next test).
    """
    here = str(Path(__file__).parent)
    body = (
        f"import sys; sys.path[:0] = [{here!r}]; import test_orphans; "
        f"test_orphans.popen_child_in_own_session_keeps_exit_status({marker!r})"
    )
    result = subprocess.run(
        [sys.executable, "-c", body],
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=4 * SETTLE,
    )
    assert result.returncode == 0, result.stderr


def popen_child_in_own_session_keeps_exit_status(marker: str) -> None:
    assert os.getsid(0) == os.getpid()  # the session's leader: the guard applies
    child = subprocess.Popen(["sh", "-c", "exit 5"])
    wait_for(lambda: stat_fields(child.pid)[0] == "Z", SETTLE)
    orphan = orphan_zombie(marker)
    assert reaper.reap_zombies() >= 1
    assert not stat_fields(orphan)
    assert child.wait(timeout=SETTLE) == 5


def test_nothing_is_reaped_while_the_main_thread_holds_for_a_child_of_its_own(
    marker: str,
) -> None:
    """The scheduler's ``validate`` child, were our session no guard (see test_pid1)."""
    orphan = orphan_zombie(marker)
    with reaper.Holding():
        child = subprocess.Popen(["sh", "-c", "exit 6"], start_new_session=True)
        wait_for(lambda: stat_fields(child.pid)[0] == "Z", SETTLE)
        assert reaper.reap_zombies() == 0  # as a SIGCHLD handler would, meanwhile
        assert child.wait(timeout=SETTLE) == 6
    assert not stat_fields(orphan)  # reaped as the block ended


def test_the_running_job_is_left_to_its_popen(tmp_path: Path) -> None:
    """The executor's job is a child of the main thread in a session of its own, as an orphan
    is: once it has exited, it is still the executor's to reap, for its exit status."""
    gate = tmp_path / "gate"
    reaped_while_a_zombie: list[int] = []

    def on_started(pid: int) -> None:
        gate.touch()  # the job runs until it is reported: a loaded machine cannot change that
        wait_for(lambda: stat_fields(pid)[0] == "Z", SETTLE)
        reaper.reap_zombies()
        reaped_while_a_zombie.append(pid)

    argv = ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done; exit 7"]
    outcome = execute(request(tmp_path, argv, timeout=SETTLE), on_started=on_started)
    assert reaped_while_a_zombie == [outcome.pid]
    assert (outcome.status, outcome.exit_code) == ("error", 7)


@pytest.mark.parametrize("answer", [True, False, None], ids=["known", "unknown", "check-fails"])
def test_a_stopped_attempt_asks_once_whether_an_orphans_run_exists(
    tmp_path: Path, marker: str, answer: bool | None
) -> None:
    """Asked once per id however often the table is read; a failing check spares the orphan
    (a daemon must not die for a failed read) and does not end the attempt in an error."""
    ready = tmp_path / "orphan.pid"
    asked: list[str] = []

    def is_known_run(run_id: str) -> bool:
        asked.append(run_id)
        if answer is None:
            raise RuntimeError("database is locked")
        return answer

    argv = orphan_under_id(marker, "other-run", ready)
    outcome = execute(
        request(tmp_path, argv, timeout=SETTLE * 5),
        cancel=lambda: "stopped" if ready.exists() else None,
        cancel_poll_interval=0.02,
        is_known_run=is_known_run,
    )
    assert outcome.status == "stopped"
    orphan = int(ready.read_text())
    assert asked == ["other-run"]
    assert process_running(orphan) is (answer is not False)
    with contextlib.suppress(ProcessLookupError):
        os.kill(orphan, signal.SIGKILL)
    wait_for(lambda: not process_running(orphan), SETTLE)
    reaper.reap_zombies()  # it came back to us (execute made us a subreaper)
    assert not stat_fields(orphan)
