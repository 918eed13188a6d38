"""What the PostgreSQL store does for a cluster beyond the interface both backends share
(tests/test_pg_store.py): a due run handed to procrastinate in the commit that queues it or
frees its slot, hosts that take turns on one job, a reserved run taken back, each host's own
unwritten lines, no psycopg error but as one sentence, and a lost or stopped server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import wait_for
from pg_server import PgDatabase
from test_pg_store import FAR, new_run, pg_store

from batch_runner.errors import EXIT_BUSY, BackendUnavailable, OperationFailed, StorageError
from batch_runner.state import tokens
from batch_runner.state.postgres.store import PostgresStore


@pytest.fixture
def pg(cluster_database: PgDatabase) -> Iterator[PostgresStore]:
    store = pg_store(cluster_database.dsn)
    yield store
    store.close()


def sql(db: PgDatabase, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def status(store: PostgresStore, run_id: str) -> str:
    return str(store.get_run(run_id)["status"])  # type: ignore[index]


# --- dispatch ---------------------------------------------------------------------------------


def test_a_due_run_goes_to_a_worker_in_the_commit_that_queues_it(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    run = {**new_run("r1", status="pending")}
    del run["lane"]  # a job's run where no lanes are configured: the default lane
    pg.insert_run(run)
    reserved = pg.get_run("r1")
    assert reserved is not None and reserved["lane"] == "default"
    assert (reserved["status"], reserved["slot"]) == ("reserved", 0)
    assert sql(cluster_database, "SELECT id, status, args FROM procrastinate_jobs") == [
        (reserved["pq_job_id"], "todo", {"run_id": "r1"})
    ]
    pg.insert_run(new_run("r2", job_name="b", status="pending"))
    pg.insert_run(new_run("later", job_name="c", status="pending", due_at=FAR))
    assert status(pg, "r2") == "pending"  # the lane's one slot is r1's
    assert status(pg, "later") == "pending"
    with pytest.raises(RuntimeError), pg.transaction():
        pg.insert_run(new_run("x", job_name="x", lane="other", status="pending"))
        assert status(pg, "x") == "reserved"
        raise RuntimeError("the enqueue failed after the insert")
    assert pg.get_run("x") is None
    assert sql(cluster_database, "SELECT count(*) FROM procrastinate_jobs") == [(1,)]


def test_an_end_or_a_retry_hands_the_slot_to_the_next_due_run(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    pg.insert_run(new_run("r1", status="pending", due_at=1.0))
    pg.insert_run(new_run("r2", job_name="b", status="pending", due_at=2.0))
    pg.update_run("r1", status="running", started_at=5.0, attempt=1)
    assert status(pg, "r2") == "pending"
    pg.update_run("r1", status="pending", due_at=FAR, attempt_status="error")  # its retry
    assert (status(pg, "r1"), status(pg, "r2")) == ("pending", "reserved")
    slots = "SELECT slot, run_id FROM batch_runner.lane_slots WHERE lane = 'default'"
    assert sql(cluster_database, slots) == [(0, "r2")]
    pg.update_run("r2", status="success", ended_at=9.0)
    assert sql(cluster_database, slots) == [(0, None)]
    assert status(pg, "r1") == "pending"  # not due


def test_a_paused_queue_hands_out_nothing_until_it_resumes(pg: PostgresStore) -> None:
    pg.set_paused(True)
    pg.insert_run(new_run("r1", status="pending"))
    assert status(pg, "r1") == "pending"
    pg.set_paused(False)
    assert status(pg, "r1") == "reserved"


def test_a_reserved_run_is_taken_back_unless_a_worker_has_it(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    pg.insert_run(new_run("r1", status="pending"))
    pg.insert_run(new_run("r2", job_name="b", status="pending"))
    job_of_r1 = pg.get_run("r1")["pq_job_id"]  # type: ignore[index]
    assert not pg.request_stop("r1")  # reserved: nothing runs to stop
    assert pg.end_if_pending("r1", "canceled", "removed", 50.0, started=lambda run: True)
    run = pg.get_run("r1")
    assert run is not None
    assert (run["status"], run["error"], run["ended_at"]) == ("canceled", "removed", 50.0)
    assert sql(
        cluster_database, "SELECT status FROM procrastinate_jobs WHERE id = %s", job_of_r1
    ) == [("cancelled",)]
    assert status(pg, "r2") == "reserved"  # r1's slot, in the same commit
    job_of_r2 = pg.get_run("r2")["pq_job_id"]  # type: ignore[index]
    sql(cluster_database, "UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", job_of_r2)
    assert not pg.end_if_pending("r2", "canceled", None, 60.0)  # a worker is starting it
    assert status(pg, "r2") == "reserved"


def test_two_hosts_queuing_one_job_take_turns(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    other = pg_store(cluster_database.dsn, host="h2")
    other._write("SET lock_timeout = '30s'")  # waits on h1 here, however slow the machine
    other_pid = other._value("SELECT pg_backend_pid()")
    seen: list[Any] = []

    def enqueue_on_h2() -> None:
        with other.transaction():
            seen.append(other.active_run_of_job("nightly"))

    try:
        with pg.transaction():
            assert pg.active_run_of_job("nightly") is None
            thread = threading.Thread(target=enqueue_on_h2)
            thread.start()
            wait_for(
                lambda: sql(
                    cluster_database,
                    "SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory' "
                    "AND NOT granted",
                    other_pid,
                ),
                timeout=10,
            )
            pg.insert_run(new_run("r1", status="pending", due_at=FAR))
        thread.join(10)
        assert [run["run_id"] for run in seen] == ["r1"]
    finally:
        other.close()


def test_a_second_active_run_of_a_job_is_refused_in_one_sentence(pg: PostgresStore) -> None:
    pg.insert_run(new_run("r1", status="running"))
    with pytest.raises(StorageError) as refused:
        pg.insert_run(new_run("r2", status="pending"))
    assert isinstance(refused.value.__cause__, psycopg.errors.UniqueViolation)
    assert "\n" not in str(refused.value)
    assert "runs_one_active_job" in str(refused.value)
    assert pg.get_run("r2") is None and status(pg, "r1") == "running"


def test_the_single_host_drain_is_refused(pg: PostgresStore) -> None:
    run = new_run("r1")
    for call in (
        lambda: pg.claim_next(1.0, 1, "h1"),
        lambda: pg.unclaim("r1", 1),
        lambda: pg.reserve_next(1.0, 1, "h1", lane="default", slot=0),
        lambda: pg.start_reserved(run, 1),
        lambda: pg.release_reserved("r1"),
        lambda: pg.reservation_holds(run, 1, 1.0),
    ):
        with pytest.raises(NotImplementedError, match="cluster's workers take runs from"):
            call()


def test_set_next_run_keeps_the_last_occurrence_decided(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    with pg.transaction():
        assert pg.decide_occurrence("a", 1000.0, None) == "new"
    pg.set_next_run("a", "2026-03-02T08:00:00+00:00")
    pg.set_next_runs({"a": "2026-03-03T08:00:00+00:00"})
    assert sql(
        cluster_database,
        "SELECT next_run, extract(epoch FROM last_scheduled_for)::float FROM batch_runner.job_plan",
    ) == [("2026-03-03T08:00:00+00:00", 1000.0)]


# --- each host's own lines, and what PostgreSQL refuses to hold -------------------------------


def test_each_host_keeps_and_appends_only_its_own_unwritten_lines(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    other = pg_store(cluster_database.dsn, host="h2")
    try:
        pg.remember_unwritten("r1", 1.0, {"run_id": "r1", "host": "h1"})
        assert not other.has_unwritten() and other.unwritten() == []
        other.remember_unwritten("r2", 2.0, {"run_id": "r2", "host": "h2"})
        (mine,) = pg.unwritten()
        (theirs,) = other.unwritten()
        assert (mine["run_id"], theirs["run_id"]) == ("r1", "r2")
        assert not pg.forget_unwritten(theirs["seq"])
        assert other.forget_unwritten(theirs["seq"]) and not other.has_unwritten()
        assert pg.has_unwritten()
    finally:
        other.close()


def test_nul_bytes_of_a_jobs_output_do_not_lose_its_end(pg: PostgresStore) -> None:
    pg.insert_run(new_run("r1", status="running", label="a\x00b"))
    pg.update_run("r1", status="error", output_tail="bin\x00ary", error="exit 1\x00")
    pg.remember_unwritten("r1", 1.0, {"output": "bin\x00ary", "n": ["\x00"], "x": "\\u0000"})
    run = pg.get_run("r1")
    assert run is not None
    assert (run["status"], run["output_tail"], run["error"], run["label"]) == (
        "error",
        "bin\ufffdary",
        "exit 1\ufffd",
        "a\ufffdb",
    )
    (line,) = pg.unwritten()
    assert line["record"] == {"output": "bin\ufffdary", "n": ["\ufffd"], "x": "\\u0000"}


def test_a_refused_token_leaves_the_callers_transaction_usable(pg: PostgresStore) -> None:
    pg.add_token("ci", "read", tokens.hash_secret("one"), 1.0)
    with pg.transaction():
        with pytest.raises(OperationFailed):
            pg.add_token("ci", "admin", tokens.hash_secret("two"), 2.0)
        pg.record_audit({"at": 3.0, "actor": "cli:me", "action": "token.add"})
    assert [line["action"] for line in pg.audit_entries()] == ["token.add"]


def test_a_database_that_sorts_text_by_language_still_orders_bytewise(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    if not sql(cluster_database, "SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'"):
        pytest.skip("this PostgreSQL has no ICU collations")
    # As a database created with a linguistic default collation would have these columns.
    sql(
        cluster_database,
        'ALTER TABLE batch_runner.tokens ALTER COLUMN name TYPE text COLLATE "und-x-icu"',
    )
    sql(
        cluster_database,
        'ALTER TABLE batch_runner.runs ALTER COLUMN lane TYPE text COLLATE "und-x-icu"',
    )
    pg.add_token("alice", "read", tokens.hash_secret("a"), 1.0)
    pg.add_token("Bob", "read", tokens.hash_secret("b"), 1.0)
    assert [token["name"] for token in pg.list_tokens()] == ["Bob", "alice"]
    pg.set_paused(True)
    pg.insert_run(new_run("r1", job_name="a", status="pending", lane="a", due_at=5.0))
    pg.insert_run(new_run("r2", job_name="b", status="pending", lane="B", due_at=5.0))
    assert [lane for lane, _, _ in pg.lanes_waiting(10.0)] == ["B", "a"]


# --- what the watcher reads -------------------------------------------------------------------


def test_data_version_never_settles_on_a_change_not_yet_committed(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    pg.insert_run(new_run("r1", status="pending", due_at=FAR))
    with psycopg.connect(cluster_database.dsn) as writer:  # a transaction open on another host
        writer.execute("UPDATE batch_runner.runs SET priority = 7 WHERE run_id = 'r1'")
        seen = pg.data_version()
        assert pg.get_run("r1")["priority"] == 0  # type: ignore[index]
        writer.commit()
    assert pg.data_version() != seen  # so the watcher reads r1 again
    settled = pg.data_version()
    assert pg.data_version() == settled and pg.get_run("r1")["priority"] == 7  # type: ignore[index]


# --- errors -------------------------------------------------------------------------------------


def test_no_psycopg_error_leaves_the_store(pg: PostgresStore) -> None:
    pg.insert_run(new_run("r1", status="running"))
    with pytest.raises(StorageError, match=r"^the cluster database at 127\.0\.0\.1:\d+ refused"):
        pg.update_run("r1", no_such_column=1)
    with pytest.raises(StorageError), pg.transaction():
        pg.update_run("r1", priority=1)
        pg.update_run("r1", no_such_column=1)
    assert pg.get_run("r1")["priority"] == 0  # type: ignore[index]


def test_a_connection_lost_to_a_restart_is_replaced_outside_a_transaction(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    pg.insert_run(new_run("r1", status="running"))
    cluster_database.server.restart()
    with pytest.raises(BackendUnavailable), pg.transaction():
        pg.update_run("r1", priority=2)  # the transaction is lost with its connection
    assert status(pg, "r1") == "running"  # a new connection
    cluster_database.server.restart()
    try:
        pg.get_run("r1")  # may find the connection dead: one sentence, then it is replaced
    except BackendUnavailable as exc:
        assert "\n" not in str(exc)
    assert pg.is_paused() is False and status(pg, "r1") == "running"


def test_a_stopped_server_is_backend_unavailable_at_once(
    pg: PostgresStore, cluster_database: PgDatabase
) -> None:
    pg.insert_run(new_run("r1", status="running"))
    cluster_database.server.stop()
    started = time.monotonic()
    for call in (
        lambda: pg.get_run("r1"),
        lambda: pg.get_run("r1"),
        lambda: pg_store(cluster_database.dsn),
    ):
        with pytest.raises(
            BackendUnavailable, match=r"cluster database at 127\.0\.0\.1:\d+"
        ) as down:
            call()
        assert down.value.exit_code == EXIT_BUSY == 75 and "\n" not in str(down.value)
    assert time.monotonic() - started < 3.0
    cluster_database.server.start()
    assert status(pg, "r1") == "running"
