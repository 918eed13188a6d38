"""The scheduler daemon as systemd and operators run it: a real process, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO, job, read_results, run_cli, start_cli, write_config
from conftest import wait_for as wait_until
from margins import SLOW


class Daemon:
    """A running ``batch_runner scheduler`` whose stderr is collected in a file."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.log = root / "scheduler.stderr"
        full_env = {
            **os.environ,
            "BATCH_RUNNER_ROOT": str(root),
            "PYTHONPATH": str(REPO),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", "scheduler"],
            cwd=root,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "w"),  # noqa: SIM115
        )
        wait_for(lambda: "scheduler started" in self.text() or self.proc.poll() is not None)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def wait_for(predicate, timeout: float = 15.0) -> None:
    wait_until(predicate, timeout)


def start(root: Path, daemons: list, **kwargs) -> Daemon:
    daemon = Daemon(root, **kwargs)
    daemons.append(daemon)
    assert daemon.proc.poll() is None, daemon.text()
    return daemon


def statuses(root: Path, name: str) -> list[str]:
    return [r["status"] for r in read_results(root) if r["job_name"] == name]


def test_fires_interval_jobs_and_stops_cleanly_on_sigterm(project: Path, daemons) -> None:
    write_config(project, [job("tick", "echo tick", schedule_time="1")])
    daemon = start(project, daemons)
    wait_for(lambda: len(statuses(project, "tick")) >= 2)
    assert daemon.stop() == 0
    records = [r for r in read_results(project) if r["job_name"] == "tick"]
    assert all(r["status"] == "success" and r["trigger"] == "schedule" for r in records)
    assert all(r["scheduled_for"] for r in records)
    text = daemon.text()
    assert "scheduler started" in text and "scheduler stopped" in text
    assert "\x1b[" not in text  # no colour when stderr is not a terminal


def test_an_occurrence_while_the_job_runs_is_skipped(project: Path, daemons) -> None:
    # The run lasts until the daemon stops: the next occurrence always finds it running.
    write_config(
        project,
        [job("slowtick", f"sleep {SLOW:g}", schedule_time="1")],
        settings={"shutdown_grace": 0.2, "kill_grace": 0.2},
    )
    daemon = start(project, daemons)
    wait_for(lambda: "skipped" in statuses(project, "slowtick"))
    daemon.stop()
    skipped = [r for r in read_results(project) if r["status"] == "skipped"]
    assert "already" in skipped[0]["error"]


def test_edit_is_picked_up_by_itself_and_a_bad_edit_keeps_the_old_config(
    project: Path, daemons
) -> None:
    config = write_config(project, [job("a", "true", schedule_time="3600")])
    daemon = start(project, daemons)
    _replace(
        config,
        {"jobs": [job("a", "true", schedule_time="3600"), job("b", "echo b", schedule_time="1")]},
    )
    wait_for(lambda: "success" in statuses(project, "b"), timeout=10)
    assert "config reloaded" in daemon.text()
    _replace(config, {"jobs": [{"name": "b", "schedule_type": "dayly"}]})
    wait_for(lambda: "reload" in daemon.text() and "failed" in daemon.text(), timeout=10)
    assert str(config) in daemon.text() or "batch_config.json" in daemon.text()
    runs_before = len(statuses(project, "b"))
    wait_for(lambda: len(statuses(project, "b")) > runs_before, timeout=10)  # still in force
    assert daemon.stop() == 0


def test_sighup_reloads_at_once(project: Path, daemons) -> None:
    config = write_config(project, [job("a", "true", schedule_time="3600")])
    daemon = start(project, daemons)
    _replace(
        config,
        {"jobs": [job("a", "true", schedule_time="3600"), job("c", "true", schedule_time="3600")]},
    )
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in daemon.text(), timeout=5)
    assert daemon.stop() == 0


def _replace(path: Path, document: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


def test_sigterm_gives_grace_then_interrupts_the_whole_group(project: Path, daemons) -> None:
    pids = project / "pids"
    write_config(
        project,
        [job("long", f"bash -c 'sleep 1000 & echo $! > {pids}; sleep 1000'", schedule_time="1")],
        settings={"shutdown_grace": 0.5, "kill_grace": 0.5},
    )
    daemon = start(project, daemons)
    wait_for(lambda: pids.exists() and pids.read_text().strip())
    assert daemon.stop() == 0
    assert statuses(project, "long")[-1] == "interrupted"
    grandchild = int(pids.read_text())
    wait_for(lambda: not _alive(grandchild), timeout=5)


def test_after_sigkill_the_next_start_records_the_lost_run(project: Path, daemons) -> None:
    pids = project / "pids"
    write_config(
        project,
        [job("long", f"bash -c 'sleep 1000 & echo $! > {pids}; sleep 1000'", schedule_time="1")],
        settings={"kill_grace": 0.5},
    )
    first = start(project, daemons)
    wait_for(lambda: pids.exists() and pids.read_text().strip())
    first.stop(signal.SIGKILL)
    grandchild = int(pids.read_text())
    assert _alive(grandchild)
    pids.unlink()
    second = start(project, daemons)
    wait_for(lambda: "interrupted" in statuses(project, "long"))
    wait_for(lambda: not _alive(grandchild), timeout=5)
    second.stop(signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return False
    return state != "Z"


def test_a_run_left_running_by_a_killed_run_job_is_reaped_at_start_with_nothing_due(
    project: Path, daemons
) -> None:
    marker = project / "started"
    write_config(
        project, [job("long", f"sh -c 'touch {marker}; sleep 1000'")], settings={"kill_grace": 0.5}
    )
    runner = start_cli(project, "run-job", "long")
    wait_for(marker.exists)
    runner.kill()
    runner.wait(timeout=10)
    start(project, daemons)  # the job is due in an hour: only start-up reaping finds the run
    wait_for(lambda: "interrupted" in statuses(project, "long"), timeout=10)


def test_a_paused_queue_holds_scheduled_runs_without_spinning_until_resumed(
    project: Path, daemons
) -> None:
    write_config(project, [job("tick", "echo tick", schedule_time="0.5")])
    assert run_cli(project, "queue", "pause").returncode == 0
    daemon = start(project, daemons)
    # The first run waits in the queue; the occurrences after it are skipped meanwhile.
    wait_for(lambda: _skips(project) >= 1)
    first, before = _skips(project), _activity(daemon.proc.pid)
    wait_for(lambda: _skips(project) >= first + 2)
    last, after = _skips(project), _activity(daemon.proc.pid)
    # What it does per occurrence, not per second of the clock: load stretches neither. Idle
    # between occurrences, it wakes once and writes 4 times for each; spinning on the paused
    # queue, it writes thousands of times and burns a tenth of a second or more.
    per = {key: (after[key] - before[key]) / (last - first) for key in before}
    assert per["wakeups"] <= 10 and per["writes"] <= 40 and per["cpu"] <= 0.05, per
    assert "success" not in statuses(project, "tick")
    assert run_cli(project, "queue", "resume").returncode == 0
    wait_for(lambda: "success" in statuses(project, "tick"), timeout=10)
    assert daemon.stop() == 0


def _skips(root: Path) -> int:
    return statuses(root, "tick").count("skipped")


def _activity(pid: int) -> dict[str, float]:
    """A process's CPU seconds, times it went to sleep (all threads) and write system calls."""
    cpu = wakeups = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that has just ended
        cpu += int(fields[11]) + int(fields[12])
        wakeups += int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return {
        "cpu": cpu / os.sysconf("SC_CLK_TCK"),
        "wakeups": wakeups,
        "writes": int(io["syscw"]),
    }


def test_systemd_notify_ready_watchdog_stopping(project: Path, daemons, tmp_path: Path) -> None:
    write_config(project, [job("a", "true", schedule_time="3600")])
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    try:
        daemon = start(project, daemons, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        messages = [sock.recv(4096).decode() for _ in range(3)]
        assert any("READY=1" in m for m in messages)
        assert any(m == "WATCHDOG=1" for m in messages)
        daemon.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in (message := sock.recv(4096).decode()):
            assert message == "WATCHDOG=1"
        assert daemon.proc.wait(timeout=10) == 0
    finally:
        sock.close()


def test_status_reports_the_live_scheduler(project: Path, daemons) -> None:
    write_config(project, [job("a", "true", schedule_time="3600")])
    before = json.loads(run_cli(project, "status", "--json").stdout)
    assert before["scheduler"] == {"alive": False, "pid": None}
    daemon = start(project, daemons)
    status = json.loads(run_cli(project, "status", "--json").stdout)
    assert status["scheduler"] == {"alive": True, "pid": daemon.proc.pid}
    assert status["running"] == [] and status["paused"] is False
    second = run_cli(project, "scheduler")
    assert second.returncode == 75 and "already running" in second.stderr
    daemon.stop()


def test_next_lists_occurrences_in_time_order(project: Path) -> None:
    write_config(
        project,
        [
            job("hourly", "true", schedule_time="1h"),
            {
                "name": "nightly",
                "command": "true",
                "schedule_type": "daily",
                "schedule_time": "02:00",
                "timezone": "UTC",
            },
            {
                "name": "off",
                "command": "true",
                "schedule_type": "daily",
                "schedule_time": "03:00",
                "enabled": False,
            },
        ],
    )
    result = run_cli(project, "next", "--count", "5", "--json")
    assert result.returncode == 0, result.stderr
    upcoming = json.loads(result.stdout)
    assert len(upcoming) == 5
    assert {u["name"] for u in upcoming} <= {"hourly", "nightly"}
    times = [u["time"] for u in upcoming]
    from datetime import datetime

    parsed = [datetime.fromisoformat(t) for t in times]
    assert parsed == sorted(parsed) and all(p.tzinfo for p in parsed)
