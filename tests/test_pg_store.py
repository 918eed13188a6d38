"""The store interface (``state.store.Store``) kept alike by both backends: each test runs on
SQLite and on a real PostgreSQL (``cluster_database``) with the same expectations, and the run
dict's shape is compared between the two. What only a cluster does is in
tests/test_pg_store_cluster.py.

Pending runs are given a due time far ahead (or the queue is paused) where their status
matters: on the cluster's database a due run is handed to a worker as it is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_runner.errors import OperationFailed
from batch_runner.state import tokens
from batch_runner.state.postgres import connection
from batch_runner.state.postgres.store import PostgresStore
from batch_runner.state.sqlite.store import SqliteStore

FAR = 4_000_000_000.0  # 2096: a pending run not due yet, on either backend
Opener = Callable[[], Any]


def new_run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job_name": "nightly",
        "kind": "job",
        "spec": {"command": ["true"], "timeout": 60.0},
        "trigger": "queue",
        "status": "success",
        "due_at": 1.0,
        "created_at": 1.0,
        "lane": "default",
        **extra,
    }


def pg_store(dsn: str, host: str = "h1") -> PostgresStore:
    return PostgresStore(connection.Endpoint(dsn, "BR_DSN"), host=host, role="test")


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one database of the backend (a second one: another connection)."""
    opened: list[Any] = []

    def open_one() -> Any:
        if request.param == "sqlite":
            store: Any = SqliteStore(tmp_path / "state.db")
        else:
            store = pg_store(request.getfixturevalue("cluster_database").dsn)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> Any:
    return opener()


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [run["run_id"] for run in runs]


# --- a run as it comes back ---------------------------------------------------------------


def test_both_backends_hand_out_the_same_run(tmp_path: Path, cluster_database: Any) -> None:
    sqlite, pg = SqliteStore(tmp_path / "state.db"), pg_store(cluster_database.dsn)
    try:
        full = new_run(
            "r1",
            status="running",
            attempt=2,
            max_attempts=3,
            priority=5,
            due_at=100.5,
            created_at=100.25,
            started_at=101.125,
            scheduled_for="2026-03-01T08:00:00+00:00",
            owner_pid=1234,
            host="h1",
            label="nightly backup",
            tags=["db", "ünïcode"],
            output_tail="out",
            output_truncated=1,
            log_file="/logs/r1.log",
            slot=0,
        )
        for store in (sqlite, pg):
            store.insert_run(full)
            store.insert_run(new_run("r2", kind="adhoc", tags=[], spec={}))
            store.update_run("r1", ended_at=102.75, exit_code=0, attempt_status="success")
        for run_id in ("r1", "r2"):
            mine, theirs = sqlite.get_run(run_id), pg.get_run(run_id)
            assert set(theirs) - set(mine) == {"pq_job_id", "beat_at"}
            assert {key: theirs[key] for key in mine} == mine
        r1 = pg.get_run("r1")
        assert r1["started_at"] == 101.125 and r1["ended_at"] == 102.75
        assert r1["tags"] == ["db", "ünïcode"] and r1["output_truncated"] is True
        assert pg.get_run("r2")["tags"] is None and pg.get_run("r2")["spec"] == {}
        assert pg.get_run("nope") is None
    finally:
        sqlite.close()
        pg.close()


def test_find_runs_by_prefix_at_most_two_in_arrival_order(store: Any) -> None:
    for run_id in ("20260301-b", "20260301-a", "20260302-c", "x%_y"):
        store.insert_run(new_run(run_id))
    assert ids(store.find_runs("20260302")) == ["20260302-c"]
    assert ids(store.find_runs("20260301")) == ["20260301-b", "20260301-a"]
    assert ids(store.find_runs("2026")) == ["20260301-b", "20260301-a"]
    assert ids(store.find_runs("x%")) == ["x%_y"]
    assert store.find_runs("%") == [] and store.find_runs("_") == []
    assert store.find_runs("") == [] and store.find_runs("  ") == []
    assert store.find_runs("20260301-b-more") == []


def test_run_extras_of_the_runs_still_held(store: Any) -> None:
    store.insert_run(new_run("r1", priority=3, attempt=2, status="running"))
    store.insert_run(new_run("r2", job_name="other"))
    assert store.set_progress("r1", 12.5, "a quarter of the way")
    extras = store.run_extras(["r1", "r2", "gone"])
    assert extras == {
        "r1": {
            "run_id": "r1",
            "priority": 3,
            "attempt": 2,
            "progress_percent": 12.5,
            "progress_message": "a quarter of the way",
        },
        "r2": {
            "run_id": "r2",
            "priority": 0,
            "attempt": 0,
            "progress_percent": None,
            "progress_message": None,
        },
    }
    assert store.run_extras([]) == {}


def test_the_active_run_of_a_job_is_never_an_adhoc_run_nor_a_finished_one(store: Any) -> None:
    store.insert_run(new_run("done", status="error"))
    store.insert_run(new_run("label", kind="adhoc", status="pending", due_at=FAR))
    assert store.active_run_of_job("nightly") is None
    store.insert_run(new_run("waiting", status="pending", due_at=FAR))
    assert store.active_run_of_job("nightly")["run_id"] == "waiting"
    store.update_run("waiting", status="running", started_at=5.0)
    with store.transaction():
        assert store.active_run_of_job("nightly")["status"] == "running"
    assert store.active_run_of_job("weekly") is None


def test_runs_with_status_running_first_then_priority_due_and_arrival(store: Any) -> None:
    store.set_paused(True)  # due runs stay pending on both backends
    store.insert_run(new_run("low", job_name="a", status="pending", due_at=5.0))
    store.insert_run(new_run("high", job_name="b", status="pending", priority=9, due_at=9.0))
    store.insert_run(new_run("early", job_name="c", status="pending", due_at=2.0))
    store.insert_run(new_run("same", job_name="d", status="pending", due_at=2.0))
    store.insert_run(new_run("run", job_name="e", status="running", priority=-5))
    store.insert_run(new_run("old", job_name="f", status="success"))
    order = ["run", "high", "early", "same", "low"]
    assert ids(store.runs_with_status("pending", "running")) == order
    assert ids(store.runs_with_status("pending", "running", limit=2)) == order[:2]
    assert ids(store.runs_with_status("success")) == ["old"]
    assert store.runs_with_status() == []
    assert store.count_pending() == 4


def test_recent_finished_newest_first(store: Any) -> None:
    for n, status in enumerate(("success", "error", "timeout", "canceled", "interrupted")):
        store.insert_run(new_run(f"r{n}", status=status))
    store.insert_run(new_run("now", status="running", job_name="other"))
    assert ids(store.recent_finished(3)) == ["r4", "r3", "r2"]
    assert ids(store.recent_finished(10)) == ["r4", "r3", "r2", "r1", "r0"]


@pytest.fixture
def listed(store: Any) -> Any:
    store.insert_run(new_run("a", created_at=100.0, tags=["nightly", "db"]))
    store.insert_run(new_run("b", created_at=200.0, status="error", tags=["nightly-extra"]))
    store.insert_run(new_run("c", created_at=300.0, job_name="weekly", tags=["db"]))
    store.insert_run(new_run("d", created_at=400.0, status="pending", due_at=FAR, tags=[]))
    store.insert_run(new_run("e", created_at=500.0, job_name="weekly", status="error"))
    return store


def test_list_runs_filters_combine(listed: Any) -> None:
    assert ids(listed.list_runs()) == ["e", "d", "c", "b", "a"]
    assert ids(listed.list_runs(statuses=["error"])) == ["e", "b"]
    assert ids(listed.list_runs(statuses=("error", "pending"))) == ["e", "d", "b"]
    assert ids(listed.list_runs(statuses=[])) == ["e", "d", "c", "b", "a"]
    assert ids(listed.list_runs(job="weekly")) == ["e", "c"]
    assert ids(listed.list_runs(job="weekly", statuses=["error"])) == ["e"]
    assert ids(listed.list_runs(since=200.0, until=400.0)) == ["c", "b"]
    assert ids(listed.list_runs(since=450.0)) == ["e"]
    assert ids(listed.list_runs(until=100.0)) == []
    assert ids(listed.list_runs(limit=2)) == ["e", "d"]
    assert listed.list_runs(limit=-1) == []


def test_list_runs_matches_one_tag_exactly_never_a_substring(listed: Any) -> None:
    assert ids(listed.list_runs(tag="nightly")) == ["a"]
    assert ids(listed.list_runs(tag="night")) == []
    assert ids(listed.list_runs(tag="db")) == ["c", "a"]
    assert ids(listed.list_runs(tag="db", job="weekly")) == ["c"]
    assert ids(listed.list_runs(tag='"db"')) == []
    assert ids(listed.list_runs(tag="%")) == []
    assert ids(listed.list_runs(tag="")) == []


def test_cursor_paging_yields_every_run_once(store: Any) -> None:
    for n in range(23):
        store.insert_run(new_run(f"r{n:02d}", status="error" if n % 3 else "success"))
    for filters, expected in (({}, 23), ({"statuses": ["error"]}, 15)):
        seen: list[str] = []
        cursor = None
        while page := store.list_runs(before_seq=cursor, limit=5, **filters):
            assert [run["seq"] for run in page] == sorted((r["seq"] for r in page), reverse=True)
            seen += ids(page)
            cursor = page[-1]["seq"]
        assert len(seen) == len(set(seen)) == expected


# --- what waits -----------------------------------------------------------------------------


def test_what_waits_counted_by_lane_and_due_time(store: Any) -> None:
    store.set_paused(True)
    assert store.next_due_at() is None and store.lanes_waiting(50.0) == []
    store.insert_run(new_run("a1", job_name="a", status="pending", lane="io", due_at=10.0))
    store.insert_run(new_run("a2", job_name="b", status="pending", lane="io", due_at=20.0))
    store.insert_run(
        new_run("retry", job_name="c", status="pending", lane="cpu", due_at=30.0, attempt=1)
    )
    store.insert_run(new_run("late", job_name="d", status="pending", lane="z", due_at=90.0))
    store.insert_run(new_run("ran", job_name="e", status="running", lane="io", due_at=1.0))
    store.insert_run(new_run("over", job_name="f", status="success", lane="io", due_at=1.0))
    assert store.count_pending() == 4
    assert store.pending_by_lane() == {"io": 2, "cpu": 1, "z": 1}
    assert store.next_due_at() == 10.0
    assert store.next_due_at(lane="cpu") == 30.0 and store.next_due_at(lane="none") is None
    assert store.next_due_at(retries_only=True) == 30.0
    assert store.next_due_at(retries_only=True, lane="io") is None
    assert store.count_due("io", 15.0, 10) == 1
    assert store.count_due("io", 25.0, 10) == 2 and store.count_due("io", 25.0, 1) == 1
    assert store.count_due("cpu", 25.0, 10) == 0
    assert store.lanes_waiting(25.0) == [("io", 2, 10.0), ("cpu", 0, 30.0), ("z", 0, 90.0)]


def test_lanes_waiting_ranks_the_lane_whose_best_due_run_ranks_first(store: Any) -> None:
    store.set_paused(True)
    store.insert_run(new_run("b1", job_name="a", status="pending", lane="b", due_at=5.0))
    store.insert_run(
        new_run("b2", job_name="x", status="pending", lane="b", due_at=50.0, priority=99)
    )
    store.insert_run(
        new_run("c1", job_name="b", status="pending", lane="c", due_at=8.0, priority=3)
    )
    store.insert_run(new_run("a1", job_name="c", status="pending", lane="a", due_at=9.0))
    store.insert_run(new_run("B1", job_name="d", status="pending", lane="B", due_at=9.0))
    # b2's priority is not due yet; a and B tie on everything but their names (bytewise).
    assert [lane for lane, _, _ in store.lanes_waiting(10.0)] == ["c", "b", "B", "a"]


# --- a run's changes ------------------------------------------------------------------------


def test_a_waiting_run_ends_without_an_attempt_a_started_one_does_not(store: Any) -> None:
    store.insert_run(new_run("w", status="pending", due_at=FAR, error="earlier"))
    store.insert_run(new_run("r", job_name="other", status="running", started_at=2.0))
    assert store.end_if_pending("w", "canceled", None, 50.0)
    run = store.get_run("w")
    assert (run["status"], run["error"], run["ended_at"], run["attempt"]) == (
        "canceled",
        "earlier",
        50.0,
        0,
    )
    assert not store.end_if_pending("w", "skipped", "again", 60.0)
    assert not store.end_if_pending("r", "canceled", "no", 60.0)
    assert not store.end_if_pending("nope", "canceled", None, 60.0)
    assert store.get_run("r")["status"] == "running"


def test_stop_and_progress_are_for_a_running_run(store: Any) -> None:
    store.insert_run(new_run("r", status="running", started_at=2.0))
    store.insert_run(new_run("w", job_name="other", status="pending", due_at=FAR))
    store.insert_run(new_run("done", job_name="old", status="success"))
    assert not store.get_run("r")["stop_requested"]
    assert store.request_stop("r") and store.get_run("r")["stop_requested"] is True
    assert not store.request_stop("w") and not store.request_stop("done")
    assert not store.request_stop("nope")
    assert store.set_progress("r", 50.0, None)
    assert store.set_progress("r", None, "half")
    run = store.get_run("r")
    assert (run["progress_percent"], run["progress_message"]) == (50.0, "half")
    assert not store.set_progress("w", 1.0, "x") and not store.set_progress("done", 1.0, "x")


def test_finished_runs_are_forgotten_by_when_they_ended(store: Any) -> None:
    store.insert_run(new_run("old", status="success", created_at=1.0, ended_at=10.0))
    store.insert_run(new_run("never", status="canceled", created_at=5.0))
    store.insert_run(new_run("new", status="error", created_at=1.0, ended_at=100.0))
    store.insert_run(new_run("wait", job_name="a", status="pending", due_at=FAR, created_at=1.0))
    store.insert_run(new_run("runs", job_name="b", status="running", created_at=1.0))
    assert store.delete_finished_before(50.0) == 2
    assert sorted(ids(store.list_runs())) == ["new", "runs", "wait"]
    assert store.delete_finished_before(50.0) == 0


def test_a_transaction_is_all_or_nothing_and_nests(store: Any) -> None:
    store.insert_run(new_run("r", status="pending", due_at=FAR))
    with pytest.raises(RuntimeError), store.transaction():
        store.update_run("r", status="canceled")
        store.save_job_state(
            {"job_name": "nightly", "last_run": "x", "last_status": "error", "error_count": 1}
        )
        raise RuntimeError("after the change")
    assert store.get_run("r")["status"] == "pending" and store.job_state("nightly") is None
    with store.transaction():
        store.update_run("r", priority=4)
        store.add_token("ci", "read", tokens.hash_secret("a"), 1.0)  # joins
        store.save_job_state(
            {"job_name": "nightly", "last_run": "x", "last_status": "error", "error_count": 1}
        )
    assert store.get_run("r")["priority"] == 4 and store.has_active_tokens()


def test_data_version_moves_when_another_connection_commits(opener: Opener) -> None:
    watcher, writer = opener(), opener()
    writer.insert_run(new_run("r", status="pending", due_at=FAR))
    before = watcher.data_version()
    assert watcher.data_version() == before  # nothing happened
    writer.update_run("r", priority=3)
    after = watcher.data_version()
    assert after != before and watcher.data_version() == after
    writer.save_job_state(
        {"job_name": "a", "last_run": "x", "last_status": "success", "error_count": 0}
    )
    assert watcher.data_version() != after
    after = watcher.data_version()
    writer.set_paused(True)
    assert watcher.data_version() != after


# --- per job ----------------------------------------------------------------------------------


def test_job_state_saved_and_merged_with_the_plan(store: Any) -> None:
    assert store.job_states() == {} and store.job_state("a") is None
    store.save_job_state(
        {"job_name": "a", "last_run": "2026-03-01T08:00:00+01:00", "last_status": "error",
         "error_count": 2, "notified": 1, "extra": "ignored"}
    )  # fmt: skip
    store.set_next_runs({"a": "2026-03-02T08:00:00+01:00", "b": None})
    store.set_next_runs({})
    state = {
        "job_name": "a",
        "last_run": "2026-03-01T08:00:00+01:00",
        "last_status": "error",
        "error_count": 2,
        "notified": 1,
        "disabled_reason": None,
        "disabled_at": None,
    }
    assert store.job_state("a") == state
    assert store.job_states() == {
        "a": {**state, "next_run": "2026-03-02T08:00:00+01:00"},
        "b": {"next_run": None},
    }
    with store.transaction():
        store.set_next_run("b", "2026-03-03T00:00:00+00:00")
    store.set_next_run("a", None)
    assert store.job_states()["a"]["next_run"] is None
    assert store.job_states()["b"] == {"next_run": "2026-03-03T00:00:00+00:00"}


def test_a_disable_is_kept_by_saves_and_undone_by_enable(store: Any) -> None:
    assert store.enable_job("a") is None
    store.save_job_state(
        {"job_name": "a", "last_run": "x", "last_status": "error", "error_count": 3}
    )
    assert store.enable_job("a") is None  # not disabled
    with store.transaction():
        store.disable_job("a", "3 failures in a row (disable_after: 3)", 1000.5)
    store.save_job_state(
        {"job_name": "a", "last_run": "y", "last_status": "error", "error_count": 4}
    )
    state = store.job_state("a")
    assert (state["disabled_reason"], state["disabled_at"], state["error_count"]) == (
        "3 failures in a row (disable_after: 3)",
        1000.5,
        4,
    )
    assert store.job_states()["a"]["disabled_at"] == 1000.5
    was = store.enable_job("a")
    assert was is not None
    assert (was["disabled_reason"], was["disabled_at"], was["error_count"]) == (
        "3 failures in a row (disable_after: 3)",
        1000.5,
        4,
    )
    state = store.job_state("a")
    assert (state["disabled_reason"], state["disabled_at"], state["error_count"]) == (None, None, 0)
    assert state["last_run"] == "y"
    assert store.enable_job("a") is None


def test_the_pause_flag(opener: Opener) -> None:
    store, other = opener(), opener()
    assert not store.is_paused()
    store.set_paused(True)
    assert store.is_paused() and other.is_paused()
    with store.transaction():
        store.set_paused(False)
    assert not other.is_paused()


def test_unwritten_lines_wait_oldest_first_until_forgotten(store: Any) -> None:
    assert not store.has_unwritten() and store.unwritten() == []
    store.remember_unwritten("r1", 10.5, {"run_id": "r1", "status": "error", "n": [1, "ü"]})
    with store.transaction():
        store.remember_unwritten(None, 11.0, {"job_name": "a", "status": "skipped"})
    assert store.has_unwritten()
    lines = store.unwritten()
    assert [(line["run_id"], line["started_at"], line["record"]) for line in lines] == [
        ("r1", 10.5, {"run_id": "r1", "status": "error", "n": [1, "ü"]}),
        (None, 11.0, {"job_name": "a", "status": "skipped"}),
    ]
    assert lines[0]["seq"] < lines[1]["seq"]
    with store.transaction():
        assert store.forget_unwritten(lines[0]["seq"])
    assert not store.forget_unwritten(lines[0]["seq"])
    assert [line["seq"] for line in store.unwritten()] == [lines[1]["seq"]]


# --- tokens, sessions, the audit trail (as tests/test_tokens_store.py on SQLite) --------------


def test_a_token_is_kept_as_its_hash_and_listed_by_name(store: Any) -> None:
    digest = tokens.hash_secret("br_secret")
    store.add_token("ci", "operate", digest, 10.0)
    store.add_token("Bob", "read", tokens.hash_secret("b"), 11.0)
    assert [t["name"] for t in store.list_tokens()] == ["Bob", "ci"]  # bytewise
    assert store.list_tokens()[1] == {
        "name": "ci",
        "scope": "operate",
        "created_at": 10.0,
        "last_used_at": None,
        "revoked_at": None,
    }
    assert store.token_by_hash(tokens.hash_secret("br_wrong")) is None
    store.touch_token("ci", 70.5)
    assert store.token_by_hash(digest) == {
        "name": "ci",
        "scope": "operate",
        "created_at": 10.0,
        "last_used_at": 70.5,
    }


def test_an_active_name_is_refused_and_a_revoked_one_is_free_again(store: Any) -> None:
    store.add_token("ci", "read", tokens.hash_secret("one"), 1.0)
    with pytest.raises(OperationFailed, match="a token named 'ci' exists already"):
        store.add_token("ci", "admin", tokens.hash_secret("two"), 2.0)
    assert store.token_by_hash(tokens.hash_secret("one"))["scope"] == "read"
    assert store.revoke_token("ci", 3.0) and not store.revoke_token("ci", 4.0)
    assert not store.revoke_token("nobody", 4.0)
    assert store.token_by_hash(tokens.hash_secret("one")) is None
    assert store.list_tokens()[0]["revoked_at"] == 3.0
    assert not store.has_active_tokens()
    store.add_token("ci", "admin", tokens.hash_secret("two"), 5.0)
    assert store.token_by_hash(tokens.hash_secret("two"))["scope"] == "admin"
    assert store.has_active_tokens()
    assert [(t["created_at"], t["revoked_at"]) for t in store.list_tokens()] == [(5.0, None)]


def test_sessions_end_with_their_token_or_their_time(store: Any) -> None:
    store.add_token("alice", "operate", tokens.hash_secret("a"), 1.0)
    store.add_token("bob", "read", tokens.hash_secret("b"), 1.0)
    store.add_session("sa", "alice", "csrf-a", 10.0, 1000.0)
    store.add_session("sb", "bob", "csrf-b", 10.0, 100.0)
    assert store.session_by_hash("sa", 20.0) == {
        "token_name": "alice",
        "scope": "operate",
        "csrf": "csrf-a",
        "expires_at": 1000.0,
    }
    assert store.session_by_hash("sb", 99.0)["token_name"] == "bob"
    assert store.session_by_hash("sb", 100.0) is None  # expired
    assert store.revoke_token("alice", 30.0)
    assert store.session_by_hash("sa", 31.0) is None
    store.add_session("sc", "bob", "csrf-c", 200.0, 300.0)  # forgets the expired sb
    store.drop_session("sb")
    store.drop_session("unknown")
    assert store.session_by_hash("sc", 250.0)["csrf"] == "csrf-c"
    store.drop_session("sc")
    assert store.session_by_hash("sc", 250.0) is None


def test_an_audit_line_commits_with_its_change_or_not_at_all(store: Any) -> None:
    store.insert_run(new_run("r1", status="pending", due_at=FAR))
    with pytest.raises(RuntimeError), store.transaction():
        store.update_run("r1", status="canceled")
        store.record_audit({"at": 5.0, "actor": "ci", "action": "run.cancel", "run_id": "r1"})
        raise RuntimeError("the request failed after the change")
    assert store.get_run("r1")["status"] == "pending" and store.audit_entries() == []
    with store.transaction():
        store.update_run("r1", status="canceled")
        store.record_audit(
            {"at": 6.5, "actor": "ci", "scope": "operate", "action": "run.cancel", "run_id": "r1"}
        )
    (line,) = store.audit_entries()
    assert line == {
        "seq": line["seq"],
        "at": 6.5,
        "actor": "ci",
        "scope": "operate",
        "action": "run.cancel",
        "run_id": "r1",
        "job_name": None,
        "remote": None,
        "detail": None,
    }


def test_audit_entries_page_newest_first_and_by_run(store: Any) -> None:
    for n in range(7):
        store.record_audit(
            {"at": float(n), "actor": "ci", "action": "run.queue", "run_id": f"r{n % 2}"}
        )
    first = store.audit_entries(limit=3)
    assert [e["at"] for e in first] == [6.0, 5.0, 4.0]
    rest = store.audit_entries(limit=10, before_seq=first[-1]["seq"])
    assert [e["at"] for e in rest] == [3.0, 2.0, 1.0, 0.0]
    assert [e["at"] for e in store.audit_entries(run_id="r1")] == [5.0, 3.0, 1.0]
    assert [e["at"] for e in store.audit_entries(run_id="r1", before_seq=rest[0]["seq"])] == [1.0]
