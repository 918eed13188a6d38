"""Review of issue 22: ``queue remove`` (and ``stop``) of a run a worker has just fetched.

A ``reserved`` run whose procrastinate job a worker has fetched (``doing``) cannot be taken
back (``cancel_dispatched`` is False): the worker is starting it. ``runs.queue.remove`` then
falls through to "has already finished (reserved)", which is false; the design (1.5) says to
refuse "with the pointer to `stop`".
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from cluster_hosts import BACKEND, DSN_ENV
from conftest import job, run_cli, write_config
from pg_server import PgDatabase

pytestmark = pytest.mark.slow


def test_removing_a_run_a_worker_is_starting_does_not_say_it_finished(
    cluster_database: PgDatabase, tmp_path: Path
) -> None:
    write_config(tmp_path, [job("a", "true")], settings={"backend": BACKEND})
    env = {DSN_ENV: cluster_database.dsn, "BATCH_RUNNER_HOST_ID": "h1"}
    queued = run_cli(tmp_path, "run-job", "a", "--queue", env=env)
    assert queued.returncode == 0, queued.stderr
    run_id = queued.stdout.strip()
    with psycopg.connect(cluster_database.dsn, autocommit=True) as conn:
        # No worker runs here: the run is reserved, its job todo. A worker fetches it now.
        assert conn.execute(
            "SELECT status FROM batch_runner.runs WHERE run_id = %s", (run_id,)
        ).fetchone() == ("reserved",)
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing'")
    removed = run_cli(tmp_path, "queue", "remove", run_id, env=env)
    assert removed.returncode != 0
    assert "finished" not in removed.stderr, removed.stderr
    assert "stop" in removed.stderr, removed.stderr
