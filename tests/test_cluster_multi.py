"""Several hosts on one PostgreSQL (issue 22), as separate processes with distinct host ids
(tests/cluster_hosts.py): exactly one run per occurrence without a leader, lane widths held
across hosts, a killed worker's run interrupted and retried elsewhere, a stop that reaches
another host, and a database restart mid-stream that loses nothing accepted.

Every test ends with the invariant checks of tests/cluster_invariants.py.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_hosts import Cluster
from conftest import job, wait_for

pytestmark = pytest.mark.slow


def interval_job(name: str, command: str, seconds: int = 1, **extra: Any) -> dict[str, Any]:
    return job(name, command, schedule_time=str(seconds), **extra)


def settled(cluster: Cluster) -> bool:
    """Nothing waits or runs."""
    return not cluster.value(
        "SELECT count(*) FROM batch_runner.runs WHERE status IN ('pending','reserved','running')"
    )


def check_invariants(cluster: Cluster) -> None:
    """What must hold at rest, whatever happened: one run per decided occurrence, no run
    without its ending, no procrastinate job left doing, no slot held by a finished run, and
    no queueing lock ever set (the ingredient of procrastinate #1543 we never use)."""
    q = cluster.value
    # A job left doing by a worker the database lost (a restart) is failed by the sweep, once
    # that worker is past its heartbeat: within the stale bound plus the sweeper's grace.
    wait_for(
        lambda: q("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'") == 0,
        timeout=45,
        interval=0.3,
    )
    assert q("SELECT count(*) FROM procrastinate_jobs WHERE queueing_lock IS NOT NULL") == 0
    held = cluster.query(
        "SELECT s.lane, s.slot, r.status FROM batch_runner.lane_slots s "
        "LEFT JOIN batch_runner.runs r ON r.run_id = s.run_id WHERE s.run_id IS NOT NULL"
    )
    assert all(status in ("reserved", "running") for _, _, status in held), held
    duplicates = cluster.query(
        "SELECT job_name, scheduled_for, count(*) FROM batch_runner.runs "
        "WHERE scheduled_for IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert duplicates == []
    # Every attempt of every finished run has exactly one result row.
    missing = cluster.query(
        "SELECT r.run_id, r.attempt FROM batch_runner.runs r WHERE r.status NOT IN "
        "('pending','reserved','running') AND r.attempt > 0 AND NOT EXISTS (SELECT 1 FROM "
        "batch_runner.attempts a WHERE a.run_id = r.run_id AND a.attempt = r.attempt)"
    )
    assert missing == []


def test_two_schedulers_run_each_occurrence_exactly_once(cluster: Cluster) -> None:
    jobs = [interval_job("tick", "true")]
    hosts = [cluster.host(name, jobs) for name in ("h1", "h2")]
    first = hosts[0].start("scheduler")
    hosts[1].start("scheduler")
    # A worker that outlives both: it settles what the killed scheduler leaves behind.
    sweeper = cluster.host("h3", jobs)
    sweeper.start("queue", "worker", "--forever")

    def successes() -> int:
        return int(cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status = 'success'"))

    wait_for(lambda: successes() >= 4, timeout=40, interval=0.2)
    first.kill()  # SIGKILL, perhaps inside a transaction: the other goes on, nothing is missed
    first.wait(timeout=10)
    wait_for(lambda: successes() >= 9, timeout=40, interval=0.2)
    hosts[1].stop_all()
    wait_for(lambda: settled(cluster), timeout=30, interval=0.2)
    check_invariants(cluster)
    sweeper.stop_all()
    times = [
        row[0]
        for row in cluster.query(
            "SELECT extract(epoch FROM scheduled_for) FROM batch_runner.occurrences "
            "WHERE job_name = 'tick' ORDER BY scheduled_for"
        )
    ]
    runs = cluster.value("SELECT count(*) FROM batch_runner.runs WHERE job_name = 'tick'")
    decided = cluster.value("SELECT count(*) FROM batch_runner.occurrences WHERE outcome = 'run'")
    assert runs == decided
    gaps = [float(b - a) for a, b in itertools.pairwise(times)]
    # One grid for both schedulers: every step is the interval, none is doubled or halved,
    # before the kill and after it.
    assert all(abs(gap - 1.0) < 0.01 for gap in gaps), gaps
    lines = {r["run_id"] for h in (*hosts, sweeper) for r in h.results()}
    assert lines == {row[0] for row in cluster.query("SELECT run_id FROM batch_runner.runs")}


def test_a_lane_of_width_two_is_never_exceeded_across_three_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    record = (
        f'echo "start $(date +%s.%N)" >> {marks}/$BATCH_RUN_ID; sleep 0.6; '
        f'echo "end $(date +%s.%N)" >> {marks}/$BATCH_RUN_ID'
    )
    jobs = [job(f"w{i}", record, lane="w") for i in range(8)]
    hosts = [cluster.host(f"h{i}", jobs, lanes={"w": 2}) for i in range(1, 4)]
    for host in hosts:
        host.start("queue", "worker", "--forever")
    for i in range(8):
        result = hosts[i % 3].run("run-job", f"w{i}", "--queue")
        assert result.returncode == 0, result.stderr
    wait_for(
        lambda: (
            cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status = 'success'") == 8
        ),
        timeout=60,
        interval=0.2,
    )
    spans = []
    for path in marks.iterdir():
        lines = dict(line.split() for line in path.read_text().splitlines())
        spans.append((float(lines["start"]), float(lines["end"])))
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2, peak  # reached, never exceeded
    ran_on = {row[0] for row in cluster.query("SELECT DISTINCT host FROM batch_runner.runs")}
    assert len(ran_on) >= 2, ran_on  # the work spread over hosts
    check_invariants(cluster)


def test_a_worker_killed_on_a_live_host_has_its_job_killed_before_the_retry(
    cluster: Cluster,
) -> None:
    # The job runs in a session of its own: the worker's death leaves it running. The host's
    # scheduler lives, so that host (not another) ends it: the group first, then the retry.
    command = 'test "$BATCH_ATTEMPT" -ge 2 || sleep 60'
    jobs = [job("long", command, max_attempts=2, backoff="fixed", backoff_seconds=0.2)]
    h1 = cluster.host("h1", jobs)
    worker = h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h1, "long")
    pgid = cluster.value("SELECT pgid FROM batch_runner.runs WHERE run_id = %s", run_id)
    h1.start("scheduler")
    worker.kill()
    worker.wait(timeout=10)
    assert _group_alive(pgid)  # orphaned, still running
    try:
        wait_for(
            lambda: cluster.status(run_id) == "success",
            timeout=45,
            interval=0.2,
        )
    except AssertionError:
        raise AssertionError(cluster.diagnosis()) from None
    assert not _group_alive(pgid)
    attempts = cluster.query(
        "SELECT attempt, status, host FROM batch_runner.attempts WHERE run_id = %s "
        "ORDER BY attempt",
        run_id,
    )
    assert attempts == [(1, "interrupted", "h1"), (2, "success", "h1")]
    check_invariants(cluster)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie no one reaped does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def test_stop_reaches_a_run_on_another_host(cluster: Cluster) -> None:
    jobs = [job("long", "sleep 60")]
    h1, h2 = cluster.host("h1", jobs), cluster.host("h2", jobs)
    h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h2, "long")
    asked = time.monotonic()
    result = h2.run("stop", run_id)
    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: cluster.status(run_id) == "stopped",
        timeout=20,
        interval=0.05,
    )
    assert time.monotonic() - asked < 2 + 5 + 2  # SPEC: 2 s plus kill_grace, with a margin
    assert cluster.value("SELECT host FROM batch_runner.runs WHERE run_id = %s", run_id) == "h1"
    check_invariants(cluster)


def test_a_database_restart_mid_stream_loses_nothing(cluster: Cluster) -> None:
    jobs = [interval_job("tick", "sleep 0.2", catch_up=True)]
    hosts = [cluster.host(name, jobs) for name in ("h1", "h2")]
    for host in hosts:
        host.start("scheduler")
    wait_for(
        lambda: cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status='success'") >= 3,
        timeout=40,
        interval=0.2,
    )
    before = cluster.value("SELECT count(*) FROM batch_runner.runs")
    server = cluster.database.server
    server.stop("immediate")  # a crash: no checkpoint, recovery from the WAL at the start
    try:
        time.sleep(2.5)  # occurrences fall due while it is down
    finally:
        server.start()
    wait_for(
        lambda: (
            cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status='success'")
            >= before + 3
        ),
        timeout=60,
        interval=0.3,
    )
    # A catch_up job's occurrence missed while the database was away runs once it is back.
    triggers = {row[0] for row in cluster.query("SELECT trigger FROM batch_runner.runs")}
    assert "catch_up" in triggers, triggers
    for host in hosts:
        host.stop_all()
    wait_for(lambda: settled(cluster), timeout=40, interval=0.3)
    check_invariants(cluster)


def test_an_end_while_the_database_is_down_is_recorded_when_it_is_back(
    cluster: Cluster,
) -> None:
    jobs = [job("short", "sleep 2")]
    h1 = cluster.host("h1", jobs)
    h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h1, "short")
    server = cluster.database.server
    server.stop("fast")
    try:
        # The job ends while the database is away; its line is in this host's JSONL.
        wait_for(lambda: any(r["run_id"] == run_id for r in h1.results()), timeout=20, interval=0.1)
        down = h1.run("status")
        assert down.returncode == 75, down.stderr  # a command gives up, in one sentence
        assert down.stderr.count("\n") == 1, down.stderr
    finally:
        server.start()
    try:
        wait_for(
            lambda: cluster.status(run_id) == "success",
            timeout=30,
            interval=0.2,
        )
    except AssertionError:
        raise AssertionError(cluster.diagnosis()) from None
    attempts = cluster.query(
        "SELECT attempt, status FROM batch_runner.attempts WHERE run_id = %s", run_id
    )
    assert attempts == [(1, "success")]
    check_invariants(cluster)


def test_a_worker_waiting_for_a_full_lane_does_not_spin(cluster: Cluster) -> None:
    jobs = [job("long", "sleep 30", lane="one"), job("behind", "true", lane="one")]
    h1 = cluster.host("h1", jobs, lanes={"one": 1}, shutdown_grace=1, kill_grace=1)
    worker = h1.start("queue", "worker", "--forever")
    cluster.start_running(h1, "long")
    h1.run("run-job", "behind", "--queue")  # due now, its lane full
    before = _cpu_seconds(worker.pid)
    time.sleep(2.0)  # the measurement window, not a wait for something to happen
    used = _cpu_seconds(worker.pid) - before
    assert used < 0.6, f"the worker used {used:.2f} s of CPU in 2 s while the lane was full"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_interval_catch_up_after_the_whole_cluster_was_down_runs_once(
    cluster: Cluster,
) -> None:
    jobs = [interval_job("tick", "true", seconds=3, catch_up=True)]
    hosts = [cluster.host(name, jobs) for name in ("h1", "h2")]
    # The cluster ran it until a minute ago, then every host was down; no next run is known,
    # so the run owed is counted from each scheduler's start, off the old grid.
    cluster.query(
        "INSERT INTO batch_runner.job_plan (job_name, last_scheduled_for) VALUES "
        "('tick', now() - interval '60.5 s')"
    )
    hosts[0].start("scheduler")
    time.sleep(0.7)  # the second host starts a moment later, as hosts do
    hosts[1].start("scheduler")
    wait_for(
        lambda: (
            cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status = 'success'") >= 3
        ),
        timeout=40,
        interval=0.2,
    )
    for host in hosts:
        host.stop_all()
    triggers = [row[0] for row in cluster.query("SELECT trigger FROM batch_runner.runs")]
    assert triggers.count("catch_up") == 1, triggers
    check_invariants(cluster)


def test_run_job_waits_for_its_run_anywhere_and_a_ctrl_c_takes_it_back(cluster: Cluster) -> None:
    jobs = [job("quick", "echo hi"), job("never", "true")]
    h1, h2 = cluster.host("h1", jobs), cluster.host("h2", jobs)
    h2.start("queue", "worker", "--forever")
    done = h1.run("run-job", "quick")  # runs on h2's worker; h1 waits and reports
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("quick: success"), done.stdout
    h2.stop_all()  # no worker left: the next run waits
    waiting = h1.start("run-job", "never", log="never")
    wait_for(
        lambda: cluster.value("SELECT count(*) FROM batch_runner.runs WHERE job_name = 'never'"),
        timeout=30,
        interval=0.1,
    )
    waiting.send_signal(signal.SIGINT)
    assert waiting.wait(timeout=20) != 0
    row = cluster.query("SELECT status FROM batch_runner.runs WHERE job_name = 'never'")
    assert row == [("canceled",)], row
    assert (
        cluster.value(
            "SELECT count(*) FROM batch_runner.attempts WHERE job_name = 'never' "
            "AND status = 'canceled'"
        )
        == 1
    )
