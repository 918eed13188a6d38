"""The service's tokens, sessions and audit trail in the state database (schema 7), and the
run list the API pages through."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from batch_runner.errors import OperationFailed
from batch_runner.state import tokens
from batch_runner.state.sqlite import schema
from batch_runner.state.sqlite.store import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SqliteStore(tmp_path / "state.sqlite3")
    yield opened
    opened.close()


def _run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job_name": "nightly",
        "kind": "job",
        "spec": {},
        "trigger": "queue",
        "status": "success",
        "due_at": 1.0,
        "created_at": 1.0,
        **extra,
    }


def _version_6_schema() -> str:
    """The schema as version 6 created it: no tags, tokens, sessions, audit nor runs_job."""
    old = schema.SCHEMA.replace(",\n    tags TEXT", "")
    old = old[: old.index("CREATE TABLE IF NOT EXISTS tokens")]
    assert "tags" not in old and "audit" not in old and "runs_job" not in old
    return old


def test_a_version_6_database_upgrades_keeping_its_runs_and_gains_the_tables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_version_6_schema())
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '6')")
        db.execute(
            "INSERT INTO runs (run_id, job_name, kind, spec, trigger, status, due_at, "
            "created_at) VALUES ('r1', 'nightly', 'job', '{}', 'queue', 'pending', 1, 1)"
        )
    store = SqliteStore(path)
    try:
        run = store.get_run("r1")
        assert run is not None and run["status"] == "pending" and run["tags"] is None
        store.insert_run(_run("r2", tags=["a"]))
        assert store.get_run("r2")["tags"] == ["a"]
        assert not store.has_active_tokens()
        store.add_token("ci", "read", tokens.hash_secret("x"), 1.0)
        assert store.token_by_hash(tokens.hash_secret("x"))["name"] == "ci"
        store.record_audit({"at": 1.0, "actor": "ci", "action": "run.stop", "run_id": "r1"})
        assert store.audit_entries(run_id="r1")[0]["action"] == "run.stop"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "7",
        )
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"tokens", "sessions", "audit", "audit_run", "runs_job"} <= indexes
    assert schema.SCHEMA_VERSION == 7


def test_each_scope_allows_itself_and_the_scopes_before_it() -> None:
    assert tokens.SCOPES == ("read", "operate", "admin")
    allowed = {
        (have, need)
        for have in tokens.SCOPES
        for need in tokens.SCOPES
        if tokens.scope_allows(have, need)
    }
    assert allowed == {
        ("read", "read"),
        ("operate", "read"),
        ("operate", "operate"),
        ("admin", "read"),
        ("admin", "operate"),
        ("admin", "admin"),
    }
    assert not tokens.scope_allows("root", "read")
    assert not tokens.scope_allows("admin", "superuser")


def test_secrets_are_random_and_kept_only_as_their_hash(store: Any) -> None:
    secret = tokens.new_secret()
    assert secret.startswith("br_") and len(secret) > 40 and secret != tokens.new_secret()
    assert tokens.new_session_id() != tokens.new_session_id()
    digest = tokens.hash_secret(secret)
    assert digest != secret and len(digest) == 64 and digest == tokens.hash_secret(secret)
    store.add_token("ci", "operate", digest, 10.0)
    (listed,) = store.list_tokens()
    assert listed == {
        "name": "ci",
        "scope": "operate",
        "created_at": 10.0,
        "last_used_at": None,
        "revoked_at": None,
    }
    assert store.token_by_hash(tokens.hash_secret("br_wrong")) is None
    store.touch_token("ci", 70.0)
    assert store.token_by_hash(digest) == {
        "name": "ci",
        "scope": "operate",
        "created_at": 10.0,
        "last_used_at": 70.0,
    }
    dump = "\n".join(store._db.iterdump())
    assert secret not in dump


def test_an_active_name_is_refused_and_a_revoked_one_is_free_again(store: Any) -> None:
    store.add_token("ci", "read", tokens.hash_secret("one"), 1.0)
    with pytest.raises(OperationFailed, match="a token named 'ci' exists already"):
        store.add_token("ci", "admin", tokens.hash_secret("two"), 2.0)
    assert store.token_by_hash(tokens.hash_secret("one"))["scope"] == "read"
    assert store.revoke_token("ci", 3.0) and not store.revoke_token("ci", 4.0)
    assert not store.revoke_token("nobody", 4.0)
    assert store.token_by_hash(tokens.hash_secret("one")) is None
    assert not store.has_active_tokens()
    store.add_token("ci", "admin", tokens.hash_secret("two"), 5.0)
    assert store.token_by_hash(tokens.hash_secret("two"))["scope"] == "admin"
    assert store.has_active_tokens()
    assert [t["revoked_at"] for t in store.list_tokens()] == [None]


def test_revoking_a_token_ends_its_sessions_and_no_other(store: Any) -> None:
    store.add_token("alice", "operate", tokens.hash_secret("a"), 1.0)
    store.add_token("bob", "read", tokens.hash_secret("b"), 1.0)
    store.add_session("sa", "alice", "csrf-a", 10.0, 1000.0)
    store.add_session("sb", "bob", "csrf-b", 10.0, 1000.0)
    assert store.session_by_hash("sa", 20.0) == {
        "token_name": "alice",
        "scope": "operate",
        "csrf": "csrf-a",
        "expires_at": 1000.0,
    }
    assert store.revoke_token("alice", 30.0)
    assert store.session_by_hash("sa", 31.0) is None
    assert store._first("SELECT 1 FROM sessions WHERE hash = 'sa'") is None
    assert store.session_by_hash("sb", 31.0)["token_name"] == "bob"
    store.drop_session("sb")
    assert store.session_by_hash("sb", 32.0) is None


def test_an_expired_session_is_refused_and_forgotten_at_the_next_sign_in(store: Any) -> None:
    store.add_token("alice", "read", tokens.hash_secret("a"), 1.0)
    store.add_session("old", "alice", "c1", 10.0, 100.0)
    assert store.session_by_hash("old", 99.0) is not None
    assert store.session_by_hash("old", 100.0) is None
    store.add_session("new", "alice", "c2", 200.0, 300.0)
    assert store._first("SELECT 1 FROM sessions WHERE hash = 'old'") is None
    assert store.session_by_hash("new", 250.0)["csrf"] == "c2"


def test_the_session_of_a_token_revoked_behind_its_back_is_refused(store: Any) -> None:
    # As a repair, or another process's revoke that left the row: the token is what counts.
    store.add_token("alice", "admin", tokens.hash_secret("a"), 1.0)
    store.add_session("s", "alice", "c", 10.0, 1000.0)
    store._write("UPDATE tokens SET revoked_at = 20 WHERE name = 'alice'")
    assert store.session_by_hash("s", 30.0) is None


def test_an_audit_line_commits_with_its_change_or_not_at_all(store: Any) -> None:
    store.insert_run(_run("r1", status="pending"))
    with pytest.raises(RuntimeError), store.transaction():
        store.update_run("r1", status="canceled")
        store.record_audit({"at": 5.0, "actor": "ci", "action": "run.cancel", "run_id": "r1"})
        raise RuntimeError("the request failed after the change")
    assert store.get_run("r1")["status"] == "pending"
    assert store.audit_entries() == []
    with store.transaction():
        store.update_run("r1", status="canceled")
        store.record_audit(
            {"at": 6.0, "actor": "ci", "scope": "operate", "action": "run.cancel", "run_id": "r1"}
        )
    (line,) = store.audit_entries()
    assert {k: line[k] for k in ("actor", "scope", "action", "run_id", "remote")} == {
        "actor": "ci",
        "scope": "operate",
        "action": "run.cancel",
        "run_id": "r1",
        "remote": None,
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


def _ids(runs: list[dict[str, Any]]) -> list[str]:
    return [run["run_id"] for run in runs]


@pytest.fixture
def runs(store: Any) -> Any:
    store.insert_run(_run("a", created_at=100.0, tags=["nightly", "db"]))
    store.insert_run(_run("b", created_at=200.0, status="error", tags=["nightly-extra"]))
    store.insert_run(_run("c", created_at=300.0, job_name="weekly", tags=["db"]))
    store.insert_run(_run("d", created_at=400.0, status="pending", tags=[]))
    store.insert_run(_run("e", created_at=500.0, job_name="weekly", status="error"))
    return store


def test_list_runs_filters_combine(runs: Any) -> None:
    assert _ids(runs.list_runs()) == ["e", "d", "c", "b", "a"]
    assert _ids(runs.list_runs(statuses=["error"])) == ["e", "b"]
    assert _ids(runs.list_runs(statuses=["error", "pending"])) == ["e", "d", "b"]
    assert _ids(runs.list_runs(job="weekly")) == ["e", "c"]
    assert _ids(runs.list_runs(job="weekly", statuses=["error"])) == ["e"]
    assert _ids(runs.list_runs(since=200.0, until=400.0)) == ["c", "b"]
    assert _ids(runs.list_runs(since=450.0)) == ["e"]
    assert _ids(runs.list_runs(until=100.0)) == []
    assert runs.get_run("d")["tags"] is None  # none is NULL, not "[]"
    assert runs.get_run("a")["tags"] == ["nightly", "db"]


def test_list_runs_matches_one_tag_exactly_never_a_substring(runs: Any) -> None:
    assert _ids(runs.list_runs(tag="nightly")) == ["a"]
    assert _ids(runs.list_runs(tag="night")) == []
    assert _ids(runs.list_runs(tag="db")) == ["c", "a"]
    assert _ids(runs.list_runs(tag="db", job="weekly")) == ["c"]
    assert _ids(runs.list_runs(tag='"db"')) == []
    assert _ids(runs.list_runs(tag="%")) == []


def test_cursor_paging_yields_every_run_once(store: Any) -> None:
    for n in range(23):
        store.insert_run(_run(f"r{n:02d}", status="error" if n % 3 else "success"))
    for filters, expected in (({}, 23), ({"statuses": ["error"]}, 15)):
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_runs(before_seq=cursor, limit=5, **filters)
            if not page:
                break
            assert [run["seq"] for run in page] == sorted((r["seq"] for r in page), reverse=True)
            seen += _ids(page)
            cursor = page[-1]["seq"]
        assert len(seen) == len(set(seen)) == expected
