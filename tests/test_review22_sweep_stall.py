"""Review of issue 22: a sweep that loses its connection mid-transaction must give up at once.

``_sweep_one`` ends a dead worker's run inside ``with store.transaction()``; ``finish_attempt``
then meets a BackendUnavailable and, because the context is a cluster's, waits for the
database in ``_record_end_when_back`` (up to ``END_WAIT_SECONDS`` = 600 s). But each retry
opens a savepoint on a store whose connection broke inside the sweep's transaction
(``_depth`` > 0): ``PgBase.conn`` refuses to reconnect there, so every retry fails the same way
until the deadline. The sweep runs in the keeper thread, which is also what beats this
host's running attempts and this process's ``processes`` row: for ten minutes neither is
written, so other hosts take this host's live runs for dead (interrupted, retried elsewhere
while they still run here).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cluster_hosts import BACKEND, DSN_ENV
from conftest import job, write_config
from pg_server import PgDatabase

from batch_runner.cluster import sweep as sweep_module
from batch_runner.config.loader import load_config
from batch_runner.runs import finish
from batch_runner.runs.context import RunnerContext

pytestmark = pytest.mark.slow


# A run of host h1, which has no live process: its beat stopped a minute ago.
_DEAD_RUN = (
    "INSERT INTO batch_runner.runs (run_id, job_name, kind, spec, trigger, status, "
    "attempt, max_attempts, lane, due_at, created_at, start_time, host, pid, beat_at) "
    "VALUES ('dead1', 'slow', 'job', '{\"command\": \"sleep 60\"}', 'queue', 'running', "
    "1, 2, 'default', now(), now(), now() - interval '70 s', 'h1', 1, "
    "now() - interval '60 s')"
)


def _sweeper_of_h2(
    database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end_wait: float
) -> RunnerContext:
    """Host h2's context, with ``END_WAIT_SECONDS`` shortened to ``end_wait`` (600 s)."""
    monkeypatch.setenv(DSN_ENV, database.dsn)
    monkeypatch.setenv("BATCH_RUNNER_HOST_ID", "h2")
    monkeypatch.setattr(finish, "END_WAIT_SECONDS", end_wait)
    path = write_config(
        tmp_path, [job("slow", "sleep 60", max_attempts=2)], settings={"backend": BACKEND}
    )
    return RunnerContext(config=load_config(path, tmp_path))


def _restart_as_the_sweep_records(
    ctx: RunnerContext, admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The database restarts just as the sweep records the end (what a restart does to the
    sweep's connection: it is terminated); the real ``finish_attempt``, to put back."""
    store: Any = ctx.store
    backend_pid = store._value("SELECT pg_backend_pid()")
    real_finish = sweep_module.finish_attempt

    def finish_after_a_restart(*args: Any, **kwargs: Any) -> Any:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "finish_attempt", finish_after_a_restart)
    return real_finish


def test_a_sweep_whose_connection_breaks_mid_transaction_does_not_stall_the_keeper(
    cluster_database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short enough for the test to end; the real wait is 600 s.
    ctx = _sweeper_of_h2(cluster_database, tmp_path, monkeypatch, 15.0)
    with psycopg.connect(cluster_database.dsn, autocommit=True) as admin:
        admin.execute(_DEAD_RUN)
        _restart_as_the_sweep_records(ctx, admin, monkeypatch)
        took: list[float] = []

        def keeper_sweep() -> None:
            started = time.monotonic()
            try:
                sweep_module.sweep(ctx, set())
            finally:
                took.append(time.monotonic() - started)

        thread = threading.Thread(target=keeper_sweep, daemon=True)
        thread.start()
        thread.join(30)
        assert took, "the sweep never returned"
        # The connection is usable again right away (a new one); the keeper must get back to
        # its beats within seconds, not wait out END_WAIT_SECONDS on a dead transaction.
        assert took[0] < 8.0, f"the keeper's sweep was stuck for {took[0]:.1f} s"


def test_a_sweep_that_fails_after_its_line_does_not_write_the_line_twice(
    cluster_database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep writes the interrupted attempt's JSONL line before its transaction commits
    (``finish_attempt`` journals first); when the commit fails (the database went away), the
    next sweep, here or on another host, writes the line again: two lines for one attempt."""
    from conftest import read_results

    ctx = _sweeper_of_h2(cluster_database, tmp_path, monkeypatch, 0.5)
    with psycopg.connect(cluster_database.dsn, autocommit=True) as admin:
        admin.execute(_DEAD_RUN)
        real_finish = _restart_as_the_sweep_records(ctx, admin, monkeypatch)
        sweep_module.sweep(ctx, set())  # the database "restarts" mid-sweep: nothing committed
        monkeypatch.setattr(sweep_module, "finish_attempt", real_finish)
        assert sweep_module.sweep(ctx, set()) == 1  # the next sweep settles it
    lines = [(r["run_id"], r["attempt"], r["status"]) for r in read_results(tmp_path)]
    assert lines == [("dead1", 1, "interrupted")], lines
