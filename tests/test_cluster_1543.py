"""procrastinate issue #1543 is our combination: a queueing lock, a lock, retries and stalled
recovery can leave a job ``doing`` under a live worker, holding its lock for ever, which only a
manual repair ends. We keep the promises those features make in our own tables and never set a
queueing lock, a retry strategy or call ``retry_job`` (docs/cluster-design.md, section 2); these
tests drive the paths that would reach it if we did: retries arriving while the next occurrence
is due, a dead worker with a run waiting behind it in a lane of width 1, and a worker frozen
past the sweep whose late end must not count twice.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from cluster_hosts import Cluster
from conftest import job, wait_for
from test_cluster_multi import check_invariants, settled

pytestmark = pytest.mark.slow


def test_a_retry_storm_leaves_nothing_to_repair(cluster: Cluster) -> None:
    # Every second an occurrence, each failing in 0.3 s and retried twice 0.5 s later: the
    # next occurrence is due while a retry waits or runs, so it is skipped, never queued twice.
    jobs = [
        job(
            "flaky",
            "sleep 0.3; exit 1",
            schedule_time="1",
            max_attempts=3,
            backoff="fixed",
            backoff_seconds=0.5,
        )
    ]
    hosts = [cluster.host(name, jobs) for name in ("h1", "h2", "h3")]
    hosts[0].start("scheduler")
    hosts[1].start("scheduler")
    hosts[2].start("queue", "worker", "--forever")
    wait_for(
        lambda: (
            cluster.value(
                "SELECT count(*) FROM batch_runner.runs WHERE status = 'error' AND attempt = 3"
            )
            >= 3
        ),
        timeout=60,
        interval=0.3,
    )
    # The schedulers stop; the worker left finishes the retries that wait.
    hosts[0].stop_all()
    hosts[1].stop_all()
    try:
        wait_for(lambda: settled(cluster), timeout=30, interval=0.3)
    except AssertionError:
        raise AssertionError(cluster.diagnosis()) from None
    hosts[2].stop_all()
    outcomes = dict(
        cluster.query("SELECT outcome, count(*) FROM batch_runner.occurrences GROUP BY 1")
    )
    assert outcomes.get("skipped", 0) > 0, outcomes  # occurrences did meet a run in play
    assert set(outcomes) <= {"run", "skipped"}
    # Each run's attempts are 1, 2, 3 at most, each recorded once.
    counts = cluster.query(
        "SELECT run_id, count(*), max(attempt) FROM batch_runner.attempts "
        "WHERE status <> 'skipped' GROUP BY 1"
    )
    assert all(n == top and top <= 3 for _, n, top in counts), counts
    assert cluster.value("SELECT count(*) FROM procrastinate_jobs WHERE attempts > 1") == 0
    for host in hosts:
        for path in host.root.glob("*.stderr"):
            text = path.read_text()
            assert "UniqueViolation" not in text, text
            assert "Task exception was never retrieved" not in text, text
    check_invariants(cluster)


def test_a_dead_host_in_a_full_lane_is_recovered_once_elsewhere(cluster: Cluster) -> None:
    # Lane "one" of width 1: a long run, another job's run waiting behind it. The host of the
    # long run loses power (its worker and its job die at once); the two other hosts'
    # sweepers race for the run: it is interrupted once, retried on one of them, and the run
    # behind it gets the lane.
    command = 'test "$BATCH_ATTEMPT" -ge 2 || sleep 60'
    jobs = [
        job("long", command, lane="one", max_attempts=2, backoff="fixed", backoff_seconds=0.2),
        job("behind", "true", lane="one"),
    ]
    # The stale bound users get (10 s): this test checks README's "about 15 s".
    h1 = cluster.host("h1", jobs, stale=None, lanes={"one": 1})
    others = [cluster.host(name, jobs, stale=None, lanes={"one": 1}) for name in ("h2", "h3")]
    worker1 = h1.start("queue", "worker", "--forever")
    long_id = cluster.start_running(h1, "long")
    behind_id = cluster.start_running(h1, "behind", started=False)
    for host in others:
        host.start("queue", "worker", "--forever")
    assert cluster.status(behind_id) == "pending"  # the lane is full
    pgid = cluster.value("SELECT pgid FROM batch_runner.runs WHERE run_id = %s", long_id)
    killed_at = time.monotonic()
    worker1.kill()
    os.killpg(pgid, signal.SIGKILL)
    worker1.wait(timeout=10)
    try:
        wait_for(
            lambda: cluster.status(long_id) == "success" and cluster.status(behind_id) == "success",
            timeout=60,
            interval=0.2,
        )
    except AssertionError:
        raise AssertionError(cluster.diagnosis()) from None
    recovered = time.monotonic() - killed_at
    attempts = cluster.query(
        "SELECT attempt, status, host FROM batch_runner.attempts WHERE run_id = %s "
        "ORDER BY attempt",
        long_id,
    )
    assert attempts[0] == (1, "interrupted", "h1")
    assert attempts[1][:2] == (2, "success") and attempts[1][2] in ("h2", "h3"), attempts
    assert len(attempts) == 2
    # Stale after 10 s, swept within 2 s more, retried after its backoff: README says about
    # 15 s to `interrupted`; the retry's own start and end come on top.
    assert recovered < 25, recovered
    check_invariants(cluster)


def test_a_frozen_workers_late_end_is_not_recorded_twice(cluster: Cluster) -> None:
    command = 'test "$BATCH_ATTEMPT" -ge 2 || sleep 10'
    jobs = [job("slow", command, max_attempts=2, backoff="fixed", backoff_seconds=0.2)]
    h1, h2 = cluster.host("h1", jobs), cluster.host("h2", jobs)
    worker1 = h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h1, "slow")
    h2.start("queue", "worker", "--forever")
    worker1.send_signal(signal.SIGSTOP)  # frozen: no beats, no process row, its job runs on
    try:
        wait_for(
            lambda: (
                cluster.value(
                    "SELECT count(*) FROM batch_runner.attempts WHERE run_id = %s", run_id
                )
                == 2
            ),
            timeout=60,
            interval=0.2,
        )
    finally:
        worker1.send_signal(signal.SIGCONT)
    # The first attempt's job ends (its sleep) after the sweep: the worker wakes and records
    # that end in its host's JSONL; the database keeps the sweep's verdict and the retry's end.
    wait_for(
        lambda: any(r["run_id"] == run_id and r["attempt"] == 1 for r in h1.results()),
        timeout=40,
        interval=0.3,
    )
    time.sleep(1)  # the late end's database write, which must change nothing, is done by now
    attempts = cluster.query(
        "SELECT attempt, status, host FROM batch_runner.attempts WHERE run_id = %s "
        "ORDER BY attempt",
        run_id,
    )
    assert attempts == [(1, "interrupted", "h1"), (2, "success", "h2")], attempts
    row = cluster.query(
        "SELECT status, attempt, host, log_file FROM batch_runner.runs WHERE run_id = %s", run_id
    )[0]
    second = cluster.value(
        "SELECT record->>'log_file' FROM batch_runner.attempts WHERE run_id = %s AND attempt = 2",
        run_id,
    )
    assert row == ("success", 2, "h2", second), row
    h1.stop_all()
    check_invariants(cluster)
