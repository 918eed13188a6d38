"""One attempt of a real command: spawn, wait, timeout, stop, kill, capture (SPEC 5).

Real tiny processes with short real timeouts. ``execute`` bounds every wait by the request's
timeout, and every helper that waits has its own bound. A check that something ends promptly
makes the broken path wait ``SLOW`` seconds (a grace, the job's own end) and asserts ``PROMPT``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import process_running as running
from margins import PROMPT, SLOW

from batch_runner.execution.capture import cut_marker
from batch_runner.execution.command import build_child_env
from batch_runner.execution.executor import AttemptOutcome, AttemptRequest, execute

PY = sys.executable


def make_request(tmp_path: Path, argv: list[str], **overrides: Any) -> AttemptRequest:
    run_id = overrides.pop("run_id", f"test-{uuid.uuid4().hex[:12]}")
    values: dict[str, Any] = {
        "run_id": run_id,
        "job_name": "job",
        "attempt": 1,
        "argv": argv,
        "cwd": str(tmp_path),
        "env": build_child_env(
            os.environ,
            overrides.pop("job_env", {}),
            run_id=run_id,
            job_name="job",
            attempt=1,
            config_path="/etc/config.json",
        ),
        "timeout": 10.0,
        "kill_grace": 1.0,
        "log_path": tmp_path / "logs" / "runs" / "run.log",
        "run_log_max_bytes": 10 * 1024 * 1024,
        "output_max_bytes": 65536,
    }
    return AttemptRequest(**{**values, **overrides})


def run(tmp_path: Path, argv: list[str], **overrides: Any) -> AttemptOutcome:
    return execute(make_request(tmp_path, argv, **overrides))


def py(code: str) -> list[str]:
    return [PY, "-c", code]


@pytest.fixture
def reap_leftovers() -> Iterator[list[int]]:
    """Pids a test expects gone; anything still running is killed so no test leaks processes."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def process_state(pid: int) -> str:
    """One letter from /proc: R, S, T (stopped), Z..., or "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def wait_until(condition: Any, timeout: float = SLOW) -> bool:
    """For process-table changes, which give no event to wait on."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


# -- success, exit codes, signals ---------------------------------------------------------


def test_success_captures_output_and_writes_the_run_log(tmp_path: Path) -> None:
    request = make_request(tmp_path, ["sh", "-c", "echo out; echo err >&2"])
    before = time.time()
    outcome = execute(request)
    assert (outcome.status, outcome.exit_code, outcome.error) == ("success", 0, None)
    assert outcome.output == "out\n"  # standard output only (issue 17.15)
    assert outcome.output_truncated is False
    assert before <= outcome.started_at <= outcome.ended_at <= time.time()
    assert outcome.pid is not None and outcome.pid > 0
    # The run log has both streams, marked where they change over (in the order they came).
    log = request.log_path.read_text().splitlines()
    assert sorted(log) == ["[batch_runner: stderr]", "err", "out"] or sorted(log) == [
        "[batch_runner: stderr]",
        "[batch_runner: stdout]",
        "err",
        "out",
    ]


def test_non_zero_exit_is_an_error_with_the_stderr_tail(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["sh", "-c", "echo progress; echo 'bad input' >&2; exit 2"])
    assert (outcome.status, outcome.exit_code) == ("error", 2)
    assert outcome.error == "exit code 2\nbad input"


def test_stderr_tail_in_the_error_is_small(tmp_path: Path) -> None:
    outcome = run(tmp_path, py("import sys; sys.stderr.write('e' * 100000 + 'END'); sys.exit(1)"))
    reason, tail = outcome.error.split("\n", 1)
    assert reason == "exit code 1"
    assert tail.endswith("END") and 1000 < len(tail) <= 2048


def test_killed_by_a_signal(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["sh", "-c", "kill -9 $$"])
    assert (outcome.status, outcome.exit_code) == ("error", None)
    assert outcome.error == "killed by signal 9 (SIGKILL)"


# -- the child's world --------------------------------------------------------------------


def test_environment_has_the_run_variables(tmp_path: Path) -> None:
    names = [
        "BATCH_RUN_ID",
        "BATCH_JOB_ID",
        "BATCH_JOB_NAME",
        "BATCH_ATTEMPT",
        "BATCH_RUNNER_CONFIG",
        "PYTHONUNBUFFERED",
        "JOB_VAR",
    ]
    request = make_request(
        tmp_path,
        py(f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"),
        job_env={"JOB_VAR": "from the job"},
    )
    seen = json.loads(execute(request).output)
    assert seen == {
        "BATCH_RUN_ID": request.run_id,
        "BATCH_JOB_ID": request.run_id,
        "BATCH_JOB_NAME": "job",
        "BATCH_ATTEMPT": "1",
        "BATCH_RUNNER_CONFIG": "/etc/config.json",
        "PYTHONUNBUFFERED": "1",
        "JOB_VAR": "from the job",
    }


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["sh", "-c", "readlink /proc/self/fd/0; cat; echo done"])
    assert outcome.output == "/dev/null\ndone\n"


def test_own_session_and_process_group(tmp_path: Path) -> None:
    outcome = run(tmp_path, py("import os; print(os.getsid(0), os.getpgrp(), os.getpid())"))
    sid, pgid, pid = map(int, outcome.output.split())
    assert sid == pgid == pid == outcome.pid
    assert sid != os.getsid(0)


def test_runs_in_cwd_and_inherits_no_stray_fds(tmp_path: Path) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)
    try:
        code = "import os; print(os.getcwd()); print(os.listdir('/proc/self/fd'))"
        outcome = run(tmp_path, py(code))
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    cwd, fds = outcome.output.splitlines()
    assert cwd == str(tmp_path)
    assert sorted(json.loads(fds.replace("'", '"'))) == ["0", "1", "2", "3"]  # 3: listdir's own


# -- cannot start -------------------------------------------------------------------------


def test_command_not_found(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["no-such-program-xyz", "--flag"])
    assert (outcome.status, outcome.exit_code, outcome.pid) == ("error", None, None)
    assert outcome.error == "command not found: no-such-program-xyz"


def test_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    outcome = run(tmp_path, ["./x.sh"])
    assert (outcome.status, outcome.error) == ("error", "permission denied: ./x.sh")


def test_missing_working_directory(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["true"], cwd=str(tmp_path / "nope"))
    assert outcome.error == f"working directory does not exist: {tmp_path / 'nope'}"


def test_not_an_executable_format_and_missing_interpreter(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"\x00\x01\x02garbage")
    (tmp_path / "script").write_text("#!/no/such/interpreter\n")
    for name in ("blob", "script"):
        (tmp_path / name).chmod(0o755)
    assert run(tmp_path, ["./blob"]).error == (
        "cannot execute ./blob: not a program, nor a script with a #! line"
    )
    assert run(tmp_path, ["./script"]).error == (
        "cannot execute ./script: its #! interpreter was not found"
    )


def test_empty_command(tmp_path: Path) -> None:
    assert run(tmp_path, []).error == "empty command"


# -- timeouts and the process tree --------------------------------------------------------


def test_timeout_kills_the_whole_tree(tmp_path: Path, reap_leftovers: list[int]) -> None:
    start = time.monotonic()
    argv = ["bash", "-c", f"sleep 1000 & echo $!; sleep {SLOW:g}"]
    outcome = run(tmp_path, argv, timeout=0.3, kill_grace=SLOW)
    elapsed = time.monotonic() - start
    grandchild = int(outcome.output.split()[0])
    reap_leftovers += [grandchild, outcome.pid]
    assert (outcome.status, outcome.exit_code) == ("timeout", None)
    assert outcome.error == "timed out after 0.3 s"
    # Ended at the timeout by SIGTERM alone: not at the job's own end, nor after the grace.
    assert 0.3 <= elapsed < PROMPT
    assert not running(grandchild) and not running(outcome.pid)


def test_timeout_kills_stragglers_that_left_the_group(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    outcome = run(tmp_path, ["sh", "-c", "setsid sleep 1000 & echo $!; sleep 1000"], timeout=0.3)
    escaped = int(outcome.output.split()[0])
    reap_leftovers.append(escaped)
    assert outcome.status == "timeout"
    assert not running(escaped)


def test_sigterm_ignored_means_sigkill_after_the_grace(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    start = time.monotonic()
    script = f"trap '' TERM; sleep {SLOW:g} & echo $!; wait"  # sleep inherits the ignored TERM
    outcome = run(tmp_path, ["sh", "-c", script], timeout=0.2, kill_grace=0.3)
    elapsed = time.monotonic() - start
    child = int(outcome.output)
    reap_leftovers += [child, outcome.pid]
    assert outcome.status == "timeout"
    # The grace was given in full, and SIGKILL ended both at its end, not at the job's own end.
    assert 0.5 <= elapsed < PROMPT
    assert not running(child) and not running(outcome.pid)


def test_a_stopped_job_is_woken_to_handle_sigterm(tmp_path: Path) -> None:
    def stopped(pid: int) -> None:  # on_started: the timeout is only checked once this returns
        assert wait_until(lambda: process_state(pid) == "T"), "the job never stopped itself"

    script = "trap 'echo cleaning up; exit 3' TERM; kill -STOP $$; echo resumed"
    request = make_request(tmp_path, ["sh", "-c", script], timeout=0.2, kill_grace=SLOW)
    start = time.monotonic()
    outcome = execute(request, on_started=stopped)
    # SIGCONT let SIGTERM through: its handler ran, and no SIGKILL came at the grace's end.
    assert (outcome.status, outcome.exit_code, outcome.output) == ("timeout", 3, "cleaning up\n")
    assert time.monotonic() - start < PROMPT


def test_output_written_while_dying_is_kept(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('cleaning up'), sys.exit(3)))\n"
        "print('ready', flush=True)\ntime.sleep(1000)\n"
    )
    outcome = run(tmp_path, py(code), timeout=0.5)
    assert (outcome.status, outcome.exit_code) == ("timeout", 3)
    assert outcome.output == "ready\ncleaning up\n"


# -- what the main process leaves behind --------------------------------------------------


def test_grandchild_holding_the_pipe_does_not_hang_the_run(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    start = time.monotonic()
    argv = ["bash", "-c", f"sleep {SLOW:g} & echo $!; echo hi"]
    outcome = run(tmp_path, argv, timeout=2 * SLOW)
    grandchild = int(outcome.output.split()[0])
    reap_leftovers.append(grandchild)
    assert (outcome.status, outcome.output.split()[1]) == ("success", "hi")
    assert time.monotonic() - start < PROMPT  # not until the pipe's EOF, nor the timeout
    assert not running(grandchild)  # the group is the run's: nothing of it outlives the run


def test_background_member_without_the_pipes_is_ended_too(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    outcome = run(tmp_path, ["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
    reap_leftovers.append(int(outcome.output))
    assert outcome.status == "success"
    assert not running(int(outcome.output))


def test_a_deliberate_daemon_outlives_a_successful_run(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    """A process that left the session and the pipes was started on purpose (documented)."""
    # The job ends once the daemon has left its session (field 6 of stat), so a slow fork on a
    # loaded machine cannot leave it in the run's group when the group is looked at.
    script = (
        "setsid sleep 1000 >/dev/null 2>&1 & d=$!; "
        "while [ \"$(cut -d' ' -f6 /proc/$d/stat)\" = $$ ]; do :; done; echo $d"
    )
    outcome = run(tmp_path, ["sh", "-c", script])
    reap_leftovers.append(int(outcome.output))
    assert outcome.status == "success"
    assert running(int(outcome.output))


def test_late_output_of_a_background_process_is_kept(tmp_path: Path) -> None:
    # "late" comes once the main process is gone (reaped: kill -0 fails), not after a nap that
    # a loaded machine could stretch past the quiet window.
    script = "(while kill -0 $$ 2>/dev/null; do :; done; echo late) & echo early"
    outcome = run(tmp_path, ["sh", "-c", script])
    assert outcome.output == "early\nlate\n"


# -- stop and interrupt -------------------------------------------------------------------


def test_cancel_through_wake_fd_stops_at_once(tmp_path: Path, reap_leftovers: list[int]) -> None:
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    asked = threading.Event()
    calls: list[float] = []

    def cancel() -> str | None:
        calls.append(time.monotonic())
        return "stopped" if asked.is_set() else None

    def request_stop() -> None:
        asked.set()
        os.write(write_fd, b"x" * 10)

    timer = threading.Timer(0.1, request_stop)
    timer.start()
    start = time.monotonic()
    try:
        outcome = execute(
            make_request(tmp_path, ["bash", "-c", "sleep 1000 & echo $!; wait"], timeout=2 * SLOW),
            cancel=cancel,
            wake_fd=read_fd,
            cancel_poll_interval=2 * SLOW,
        )
    finally:
        timer.cancel()
        os.close(read_fd)
        os.close(write_fd)
    reap_leftovers.append(int(outcome.output))
    assert (outcome.status, outcome.error) == ("stopped", "stopped by request")
    assert time.monotonic() - start < PROMPT  # the wake-up, not the poll interval, asked
    assert len(calls) == 1  # only the wake-up asked; its bytes were read, so no busy loop
    assert not running(int(outcome.output))


def test_cancel_is_polled_without_a_wake_fd(tmp_path: Path) -> None:
    calls: list[int] = []
    interval, asked = 0.01, 20

    def cancel() -> str | None:
        calls.append(1)
        return "interrupted" if len(calls) >= asked else None

    start = time.monotonic()
    outcome = execute(
        make_request(tmp_path, ["sleep", "1000"], timeout=2 * SLOW),
        cancel=cancel,
        cancel_poll_interval=interval,
    )
    elapsed = time.monotonic() - start
    assert (outcome.status, outcome.error) == ("interrupted", "interrupted: runner shutting down")
    # Never more often than the interval; and at it: 20 checks at the default second would be
    # 20 s, and without polling the run would go on to its timeout.
    assert asked * interval <= elapsed < PROMPT


def test_a_failing_cancel_check_does_not_end_the_job(tmp_path: Path) -> None:
    def cancel() -> str | None:
        raise RuntimeError("database is locked")

    outcome = execute(
        make_request(tmp_path, ["sh", "-c", "sleep 0.2; echo ok"]),
        cancel=cancel,
        cancel_poll_interval=0.02,
    )
    assert (outcome.status, outcome.output) == ("success", "ok\n")


def test_on_started_gets_the_pid_and_its_exception_leaves_no_process(
    tmp_path: Path, reap_leftovers: list[int]
) -> None:
    pids: list[int] = []

    def on_started(pid: int) -> None:
        pids.append(pid)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        execute(make_request(tmp_path, ["sleep", "1000"]), on_started=on_started)
    reap_leftovers += pids
    assert not running(pids[0])
    seen: list[int] = []
    gate = tmp_path / "reported"

    def report(pid: int) -> None:
        seen.append(pid)
        gate.touch()

    # Reported once the child has run for STARTED_REPORT_DELAY (a quicker one may not be): this
    # one runs until it is reported, so a loaded machine cannot make it the quicker kind.
    waiting = ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done"]
    outcome = execute(make_request(tmp_path, waiting), on_started=report)
    assert outcome.status == "success" and seen == [outcome.pid]


def test_on_spawned_comes_once_the_child_runs_and_not_for_one_that_cannot_start(
    tmp_path: Path,
) -> None:
    seen: list[tuple[int, bool]] = []

    def on_spawned(pid: int) -> None:
        seen.append((pid, Path(f"/proc/{pid}").exists()))  # not reaped yet: ours to watch

    outcome = execute(make_request(tmp_path, ["sleep", "0.05"]), on_spawned=on_spawned)
    assert seen == [(outcome.pid, True)]
    seen.clear()
    outcome = execute(make_request(tmp_path, ["no-such-program-here"]), on_spawned=on_spawned)
    assert outcome.status == "error" and seen == []


# -- bounded output -----------------------------------------------------------------------


def test_run_log_keeps_head_marker_and_exact_tail(tmp_path: Path) -> None:
    lines = "".join(f"{i:07d}\n" for i in range(100_000)).encode()  # 800 kB, in 100 writes
    code = (
        "import sys\n"
        "for k in range(100):\n"
        "    sys.stdout.write(''.join(f'{i:07d}\\n' for i in range(k * 1000, k * 1000 + 1000)))\n"
    )
    request = make_request(tmp_path, py(code), run_log_max_bytes=1000, output_max_bytes=100)
    outcome = execute(request)
    cut = len(lines) - 1000
    assert request.log_path.read_bytes() == lines[:500] + cut_marker(cut) + lines[-500:]
    assert outcome.output == lines[-100:].decode()
    assert outcome.output_truncated is True


def test_binary_garbage_stays_decodable(tmp_path: Path) -> None:
    outcome = run(tmp_path, ["head", "-c", "300000", "/dev/urandom"], output_max_bytes=4096)
    assert outcome.status == "success"
    json.dumps(outcome.output)
    outcome.output.encode("utf-8")  # no lone surrogates
    assert 1000 < len(outcome.output) <= 4096


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_while_a_job_prints_200_mb_in_one_line(tmp_path: Path) -> None:
    peak, done = [rss_kib()], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak.append(rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    baseline = rss_kib()
    sampler.start()
    try:
        request = make_request(
            tmp_path, ["head", "-c", "200000000", "/dev/zero"], run_log_max_bytes=2 * 1024 * 1024
        )
        outcome = execute(request)
    finally:
        done.set()
        sampler.join(timeout=5)
    assert outcome.status == "success" and outcome.output_truncated
    assert len(outcome.output) == 65536
    kept = 2 * 1024 * 1024
    assert request.log_path.stat().st_size == kept + len(cut_marker(200_000_000 - kept))
    assert max(peak) - baseline < 30 * 1024  # KiB; a buffered line would be 200 000 KiB


# -- without pidfds ---------------------------------------------------------------------


def test_works_without_pidfd_support(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reap_leftovers: list[int]
) -> None:
    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    assert run(tmp_path, ["sh", "-c", "echo hi; exit 4"]).error == "exit code 4"
    outcome = run(tmp_path, ["bash", "-c", "sleep 1000 & echo $!; sleep 1000"], timeout=0.2)
    reap_leftovers.append(int(outcome.output))
    assert outcome.status == "timeout"
    assert not running(int(outcome.output))


def test_the_run_log_is_made_for_every_attempt_and_keeps_output_printed_at_once(
    tmp_path: Path,
) -> None:
    # The file is created just after the child starts; what it printed first waits in the pipe.
    log = tmp_path / "logs" / "runs" / "run.log"
    outcome = run(tmp_path, ["sh", "-c", "printf first; sleep 0.05; printf ' last'"])
    assert outcome.status == "success"
    assert log.read_bytes() == b"first last"
    silent = tmp_path / "silent.log"
    assert run(tmp_path, ["true"], log_path=silent).status == "success"
    assert silent.exists() and silent.read_bytes() == b""
    missing = tmp_path / "missing.log"
    assert run(tmp_path, ["/no/such/program"], log_path=missing).status == "error"
    assert missing.exists()
