"""Review of issue 22: a worker that dies after its attempt's JSONL line is written but before
its row is (the database was away) must not have that attempt taken for an interrupted one.

The job ended ``success`` while the database was away; its line is in this host's JSONL and
``_record_end_when_back`` waits to write its row. The worker is then killed (systemd's stop
timeout after a SIGTERM: on SIGTERM the process does not exit while the end waits, up to
``END_WAIT_SECONDS`` = 600 s, since the executor's threads are joined at exit). Once the database
is back, another host's sweep finds the row ``running`` with no beat and ends it ``interrupted``
and *retries* it: a job that succeeded runs again, and the shared history says attempt 1 was
interrupted while h1's JSONL says success. The single host's recovery reads the JSONL line
first (``runs.recovery._reap_running``); the cluster's sweep never does, not even on the
run's own host.
"""

from __future__ import annotations

import signal

import pytest
from cluster_hosts import Cluster
from conftest import job, wait_for

pytestmark = pytest.mark.slow


def test_a_success_whose_end_waits_for_the_database_is_not_run_again(cluster: Cluster) -> None:
    jobs = [job("short", "sleep 1", max_attempts=2, backoff="fixed", backoff_seconds=0.1)]
    h1 = cluster.host("h1", jobs, shutdown_grace=1, kill_grace=1)
    h2 = cluster.host("h2", jobs)
    worker = h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h1, "short")
    server = cluster.database.server
    server.stop("fast")
    try:
        wait_for(lambda: any(r["run_id"] == run_id for r in h1.results()), timeout=20, interval=0.1)
        assert [r["status"] for r in h1.results()] == ["success"]
        worker.send_signal(signal.SIGKILL)  # systemd's TimeoutStopSec after a SIGTERM, a crash
        worker.wait(timeout=30)
    finally:
        server.start()
    # systemd starts the worker again on h1 (Restart=): its sweep finds the end in h1's JSONL.
    # (A host that never comes back cannot be read: another host's sweep then records the
    # attempt as interrupted and retries it, README's "what it does not promise".)
    h1.start("queue", "worker", "--forever", log="restarted")
    h2.start("queue", "worker", "--forever")
    wait_for(
        lambda: cluster.status(run_id) not in ("running", "pending", "reserved"),
        timeout=45,
        interval=0.3,
    )
    attempts = cluster.query(
        "SELECT attempt, status, host FROM batch_runner.attempts WHERE run_id = %s "
        "ORDER BY attempt",
        run_id,
    )
    assert attempts == [(1, "success", "h1")], attempts


def test_sigterm_while_an_end_waits_for_the_database_exits_within_the_grace(
    cluster: Cluster,
) -> None:
    """SPEC 6: on SIGTERM, the running attempt gets ``shutdown_grace``, then the process exits.
    Here the attempt is over and only its row waits for the database: the process does not
    exit (Python joins the executor's non-daemon threads at exit, and the end waits up to
    600 s), so a service manager's stop timeout ends in a SIGKILL (the test above)."""
    jobs = [job("short", "sleep 1")]
    h1 = cluster.host("h1", jobs, shutdown_grace=1, kill_grace=1)
    worker = h1.start("queue", "worker", "--forever")
    run_id = cluster.start_running(h1, "short")
    server = cluster.database.server
    server.stop("fast")
    try:
        wait_for(lambda: any(r["run_id"] == run_id for r in h1.results()), timeout=20, interval=0.1)
        worker.send_signal(signal.SIGTERM)
        # shutdown_grace 1 + kill_grace 1 + the 5 s the runtime's join allows, with a margin.
        wait_for(lambda: worker.poll() is not None, timeout=15, interval=0.2)
    finally:
        server.start()
