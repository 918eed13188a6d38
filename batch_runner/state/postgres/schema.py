"""Our tables in the cluster's database (schema ``batch_runner``), their version, and the
creation or upgrade ``batch_runner cluster init`` makes under an advisory lock.

procrastinate's own tables stay in the default schema (``pqschema``). Promises are kept by
the database itself where it can: one waiting-or-running run per named job
(``runs_one_active_job``), one decision per occurrence (``occurrences``' key), one run per
lane slot (``lane_slots.run_id`` unique). Times are ``timestamptz``; ``last_run`` stays the
text the JSONL line and the config carry (with its offset), as in SQLite.
"""

from __future__ import annotations

import psycopg

from batch_runner.errors import StorageError
from batch_runner.valuetype import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1
# The advisory lock every creation or upgrade holds, ours and procrastinate's: "br_init".
INIT_LOCK = 0x62725F696E6974

_TABLES = """
CREATE SCHEMA IF NOT EXISTS batch_runner;
CREATE TABLE batch_runner.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE batch_runner.runs (
    seq bigserial UNIQUE, run_id text PRIMARY KEY, job_name text NOT NULL, kind text NOT NULL,
    spec jsonb NOT NULL, trigger text NOT NULL, priority int NOT NULL DEFAULT 0,
    status text NOT NULL, attempt int NOT NULL DEFAULT 0, max_attempts int NOT NULL DEFAULT 1,
    lane text NOT NULL, slot int, due_at timestamptz NOT NULL, scheduled_for text,
    created_at timestamptz NOT NULL, start_time timestamptz, end_time timestamptz,
    exit_code int, error text, output text, output_truncated bool NOT NULL DEFAULT false,
    log_file text, host text, pid int, pgid int, label text, tags jsonb,
    progress_percent real, progress_message text, stop_requested bool NOT NULL DEFAULT false,
    attempt_status text, reserved_at timestamptz, pq_job_id bigint, beat_at timestamptz);
-- SPEC 4 "skipped": one waiting-or-running run per named job, enforced here.
CREATE UNIQUE INDEX runs_one_active_job ON batch_runner.runs (job_name)
    WHERE kind = 'job' AND status IN ('pending', 'reserved', 'running');
CREATE INDEX runs_waiting_lane ON batch_runner.runs (lane, priority DESC, due_at, seq)
    WHERE status = 'pending';
CREATE INDEX runs_beating ON batch_runner.runs (beat_at) WHERE status = 'running';
CREATE INDEX runs_job ON batch_runner.runs (job_name, seq);
CREATE INDEX runs_status ON batch_runner.runs (status, seq);
CREATE INDEX runs_created ON batch_runner.runs (created_at);
-- Exactly one decision (run or skipped) per occurrence, whichever scheduler makes it.
CREATE TABLE batch_runner.occurrences (
    job_name text, scheduled_for timestamptz, outcome text NOT NULL, run_id text,
    host text NOT NULL, decided_at timestamptz NOT NULL, PRIMARY KEY (job_name, scheduled_for));
-- Each attempt's JSONL line verbatim (SPEC 7 names; json, not jsonb, keeps its keys' order
-- and any text), some of it as columns to filter on.
CREATE TABLE batch_runner.attempts (
    seq bigserial PRIMARY KEY, run_id text, attempt int, record json NOT NULL, job_name text,
    start_time timestamptz, end_time timestamptz, status text, exit_code int, trigger text,
    scheduled_for text, host text, UNIQUE (run_id, attempt));
CREATE INDEX attempts_job ON batch_runner.attempts (job_name, seq);
CREATE INDEX attempts_end ON batch_runner.attempts (end_time);
CREATE INDEX attempts_newest
    ON batch_runner.attempts (COALESCE(start_time, end_time) DESC, seq DESC);
-- An attempt's output, for `logs` from another host: head and tail, cut as run logs are.
CREATE TABLE batch_runner.output_chunks (
    run_id text, attempt int, n int, data bytea NOT NULL, PRIMARY KEY (run_id, attempt, n));
CREATE TABLE batch_runner.lane_slots (
    lane text, slot int, run_id text UNIQUE, retired bool NOT NULL DEFAULT false,
    PRIMARY KEY (lane, slot));
CREATE TABLE batch_runner.processes (
    host text, pid int, started_at timestamptz, role text, last_seen timestamptz NOT NULL,
    config_hash text, PRIMARY KEY (host, pid, started_at));
CREATE TABLE batch_runner.job_state (
    job_name text PRIMARY KEY, last_run text, last_status text,
    error_count int NOT NULL DEFAULT 0, notified int NOT NULL DEFAULT 0, disabled_reason text,
    disabled_at timestamptz);
-- What the schedulers planned (text, as `list` shows it) and the last occurrence decided, from
-- which interval jobs count on every host.
CREATE TABLE batch_runner.job_plan (
    job_name text PRIMARY KEY, next_run text, last_scheduled_for timestamptz);
-- Result lines this host's JSONL could not take (a full disk), kept until appended.
CREATE TABLE batch_runner.unwritten (
    seq bigserial PRIMARY KEY, host text NOT NULL, run_id text, started_at double precision
    NOT NULL, record json NOT NULL);
-- Switches: "paused" (0 or 1).
CREATE TABLE batch_runner.flags (name text PRIMARY KEY, value bigint NOT NULL DEFAULT 0);
CREATE TABLE batch_runner.tokens (
    name text PRIMARY KEY, hash text NOT NULL UNIQUE, scope text NOT NULL,
    created_at timestamptz NOT NULL, last_used_at timestamptz, revoked_at timestamptz);
CREATE TABLE batch_runner.sessions (
    hash text PRIMARY KEY, token_name text NOT NULL, csrf text NOT NULL,
    created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE batch_runner.audit (
    seq bigserial PRIMARY KEY, at timestamptz NOT NULL, actor text NOT NULL, scope text,
    action text NOT NULL, run_id text, job_name text, remote text, detail text);
CREATE INDEX audit_run ON batch_runner.audit (run_id);
INSERT INTO batch_runner.flags (name, value) VALUES ('paused', 0);
-- data_version(): bumped by every statement that changes what views show; a sequence, so that
-- writers on many hosts never wait for each other on a counter's row.
CREATE SEQUENCE batch_runner.data_version;
CREATE FUNCTION batch_runner.bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM nextval('batch_runner.data_version'); RETURN NULL; END $$;
CREATE TRIGGER runs_changed AFTER INSERT OR UPDATE OR DELETE ON batch_runner.runs
    FOR EACH STATEMENT EXECUTE FUNCTION batch_runner.bump_data_version();
CREATE TRIGGER job_state_changed AFTER INSERT OR UPDATE OR DELETE ON batch_runner.job_state
    FOR EACH STATEMENT EXECUTE FUNCTION batch_runner.bump_data_version();
CREATE TRIGGER flags_changed AFTER INSERT OR UPDATE OR DELETE ON batch_runner.flags
    FOR EACH STATEMENT EXECUTE FUNCTION batch_runner.bump_data_version();
"""

# How to bring a database of version N up to N + 1: statements run in one transaction with
# the version's update, so an upgrade cut short leaves version N as it was.
_MIGRATIONS: dict[int, list[str]] = {}


class Outcome(Record):
    """What ``ensure`` did: ``before`` None when it created the tables."""

    before: int | None
    after: int


def installed_version(conn: psycopg.Connection[Any], where: str) -> int | None:
    """The version of our tables in the database; None where there are none yet. A version
    newer than this code is refused: an older batch_runner would misread what it finds."""
    row = conn.execute("SELECT to_regclass('batch_runner.meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    row = conn.execute(
        "SELECT value FROM batch_runner.meta WHERE key = 'schema_version'"
    ).fetchone()
    if row is None or not str(row[0]).isdigit():
        found = "no schema version" if row is None else f"the schema version {row[0]!r}"
        raise StorageError(
            f"the cluster database at {where} has a batch_runner schema with {found}; "
            "it was not made by `batch_runner cluster init`: give batch_runner a database "
            "of its own"
        )
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"the cluster database at {where} has batch_runner schema version {version}, newer "
            f"than this batch_runner understands ({SCHEMA_VERSION}); upgrade batch_runner on "
            "this host"
        )
    return version


def ensure(conn: psycopg.Connection[Any], where: str) -> Outcome:
    """Create our tables, or bring them up to this version; the caller holds ``INIT_LOCK``."""
    before = installed_version(conn, where)
    if before == SCHEMA_VERSION:
        return Outcome(before, SCHEMA_VERSION)
    with conn.transaction():
        if before is None:
            conn.execute(_TABLES)  # no parameters: one round trip, the statements in order
            conn.execute(
                "INSERT INTO batch_runner.meta (key, value) VALUES ('schema_version', %s)",
                (str(SCHEMA_VERSION),),
            )
        else:
            for step in range(before, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
            conn.execute(
                "UPDATE batch_runner.meta SET value = %s WHERE key = 'schema_version'",
                (str(SCHEMA_VERSION),),
            )
    return Outcome(before, SCHEMA_VERSION)


class Initialized(Record):
    """What ``initialize`` did to each schema."""

    ours: Outcome
    procrastinate: Any  # pqschema.Outcome


def initialize(conn: psycopg.Connection[Any], where: str) -> Initialized:
    """Our schema and procrastinate's, created or upgraded, one process at a time: a second
    ``cluster init`` waits for the first (within the connection's lock timeout), then finds
    everything done. The lock is the session's: it goes with the connection if we die."""
    from batch_runner.state.postgres import pqschema

    conn.execute("SELECT pg_advisory_lock(%s)", (INIT_LOCK,))
    try:
        ours = ensure(conn, where)
        theirs = pqschema.ensure(conn, where)
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (INIT_LOCK,))
        except psycopg.Error:
            pass  # the connection is gone, and the lock with it; its error is the one to tell
    return Initialized(ours, theirs)
