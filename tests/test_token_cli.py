"""``token create|list|revoke`` and ``audit`` as a user runs them (SPEC 14)."""

from __future__ import annotations

import json
import os
import pwd
from datetime import datetime
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config

from batch_runner.state.sqlite.store import SqliteStore
from batch_runner.state.tokens import hash_secret


@pytest.fixture
def root(project: Path) -> Path:
    write_config(project, [job("nightly", "true")])
    return project


def _database(root: Path) -> Path:
    return root / "logs" / "state" / "batch_runner.sqlite3"


def _store(root: Path) -> SqliteStore:
    return SqliteStore(_database(root))


def test_create_prints_the_token_alone_and_keeps_only_its_hash(root: Path) -> None:
    done = run_cli(root, "token", "create", "ci", "--scope", "operate")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert done.stdout == secret + "\n" and secret.startswith("br_") and " " not in secret
    assert len(done.stderr.splitlines()) == 1
    assert "shown this once" in done.stderr and "Authorization: Bearer" in done.stderr
    store = _store(root)
    try:
        assert store.token_by_hash(hash_secret(secret))["scope"] == "operate"
    finally:
        store.close()
    listed = run_cli(root, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (token,) = json.loads(listed.stdout)
    assert set(token) == {"name", "scope", "created_at", "last_used_at", "revoked_at"}
    assert token["name"] == "ci" and token["revoked_at"] is None
    assert hash_secret(secret) not in listed.stdout and secret not in listed.stdout
    table = run_cli(root, "token", "list")
    assert table.returncode == 0 and "ci" in table.stdout and "operate" in table.stdout
    assert hash_secret(secret) not in table.stdout


def test_a_name_in_use_is_refused_in_one_sentence(root: Path) -> None:
    assert run_cli(root, "token", "create", "ci", "--scope", "read").returncode == 0
    again = run_cli(root, "token", "create", "ci", "--scope", "admin")
    assert again.returncode == 1 and again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "exists already" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "ci/prod", "é", "a\nb"])
def test_a_bad_name_is_a_usage_error(root: Path, name: str) -> None:
    done = run_cli(root, "token", "create", name, "--scope", "read")
    assert done.returncode == 2 and done.stdout == ""
    assert "must be 1 to 64 letters, digits" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_scope_outside_the_three_is_a_usage_error(root: Path) -> None:
    done = run_cli(root, "token", "create", "ci", "--scope", "root")
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr


def test_revoke_ends_the_token_and_an_unknown_name_is_exit_3(root: Path) -> None:
    secret = run_cli(root, "token", "create", "ci", "--scope", "read").stdout.strip()
    unknown = run_cli(root, "token", "revoke", "nobody")
    assert unknown.returncode == 3 and "no token named 'nobody'" in unknown.stderr
    done = run_cli(root, "token", "revoke", "ci")
    assert done.returncode == 0, done.stderr
    store = _store(root)
    try:
        assert store.token_by_hash(hash_secret(secret)) is None
    finally:
        store.close()
    again = run_cli(root, "token", "revoke", "ci")
    assert again.returncode == 0 and "already revoked" in again.stdout
    (token,) = json.loads(run_cli(root, "token", "list", "--json").stdout)
    assert token["revoked_at"] is not None


def test_audit_lists_the_token_changes_as_json(root: Path) -> None:
    assert run_cli(root, "token", "create", "ci", "--scope", "admin").returncode == 0
    assert run_cli(root, "token", "revoke", "ci").returncode == 0
    assert run_cli(root, "token", "create", "ci", "--scope", "read").returncode == 0
    done = run_cli(root, "audit", "--json")
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    keys = {"at", "actor", "scope", "action", "run_id", "job_name", "remote", "detail"}
    assert all(set(entry) == keys for entry in entries)
    assert [e["action"] for e in entries] == ["token.create", "token.revoke", "token.create"]
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert {e["actor"] for e in entries} == {f"cli:{user}"}
    assert "ci" in entries[1]["detail"]
    assert datetime.fromisoformat(entries[0]["at"]).utcoffset() is not None
    limited = json.loads(run_cli(root, "audit", "--json", "--limit", "1").stdout)
    assert [e["action"] for e in limited] == ["token.create"]
    table = run_cli(root, "audit")
    assert table.returncode == 0 and "token.revoke" in table.stdout


def test_audit_of_one_run_and_with_nothing_stored(root: Path) -> None:
    empty = run_cli(root, "audit", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    assert not _database(root).exists()  # reading the trail creates no database
    store = _store(root)
    try:
        store.record_audit({"at": 1.0, "actor": "ci", "action": "run.stop", "run_id": "r1"})
        store.record_audit({"at": 2.0, "actor": "ci", "action": "run.stop", "run_id": "r2"})
    finally:
        store.close()
    only = json.loads(run_cli(root, "audit", "--json", "--run", "r1").stdout)
    assert [(e["run_id"], e["actor"]) for e in only] == [("r1", "ci")]
    bad = run_cli(root, "audit", "--limit", "-1")
    assert bad.returncode == 2 and "--limit" in bad.stderr
