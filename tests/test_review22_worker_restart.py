"""Review of issue 22: after a database restart, a host's worker must take new runs again while
a long attempt of its own still runs.

procrastinate's worker stops on the first failed side task (its heartbeat after the restart),
and its ``_shutdown`` then waits for every running job (we pass no
``shutdown_graceful_timeout``). ``PqWorker._supervise`` awaits that same ``worker.run()``
before it starts a new worker: so until the long attempt ends (hours, for a long job), this
host fetches nothing. Runs handed to it stay ``reserved`` with a ``todo`` procrastinate job
(which ``requeue_stuck_reserved`` leaves alone), and each later occurrence of those jobs is
``skipped``. The design (1.7) says the supervisor "starts a new Worker with backoff while the
old one drains".
"""

from __future__ import annotations

import time

import pytest
from cluster_hosts import Cluster
from conftest import job, wait_for

pytestmark = pytest.mark.slow


def test_a_worker_takes_new_runs_after_a_restart_while_a_long_one_runs(cluster: Cluster) -> None:
    jobs = [job("long", "sleep 120"), job("short", "true", lane="b")]
    # Two lanes of one: this host's worker runs two attempts at once.
    h1 = cluster.host("h1", jobs, lanes={"default": 1, "b": 1}, shutdown_grace=1, kill_grace=1)
    h1.start("queue", "worker", "--forever")
    cluster.start_running(h1, "long")
    server = cluster.database.server
    server.stop("fast")
    try:
        # Down long enough for the worker's heartbeat (every 2 s) to fail.
        down = time.monotonic()
        wait_for(lambda: time.monotonic() - down > 4, timeout=10, interval=0.2)
    finally:
        server.start()
    queued: list[str] = []

    def queue_short() -> bool:
        result = h1.run("run-job", "short", "--queue")
        if result.returncode == 0:
            queued.append(result.stdout.strip())
        return bool(queued)

    wait_for(queue_short, timeout=20, interval=0.5)  # the database takes writes again
    try:
        wait_for(
            lambda: (
                cluster.value("SELECT status FROM batch_runner.runs WHERE run_id = %s", queued[0])
                == "success"
            ),
            timeout=25,
            interval=0.2,
        )
    except AssertionError:
        raise AssertionError(
            "the short run did not run while the long one ran:\n" + cluster.diagnosis()
        ) from None
