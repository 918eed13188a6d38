"""tests/cluster_invariants.py against a hand-made database: the design note's tables (section
1.1, copied here until ``cluster init`` creates them) plus procrastinate's real schema. A
consistent scene passes; each kind of damage is reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster_invariants import check_all
from pg_server import PgServer

DDL = """
CREATE SCHEMA batch_runner;
CREATE TABLE batch_runner.runs (seq bigserial UNIQUE, run_id text PRIMARY KEY,
  job_name text NOT NULL, kind text NOT NULL, spec jsonb NOT NULL, trigger text NOT NULL,
  priority int NOT NULL DEFAULT 0, status text NOT NULL, attempt int NOT NULL DEFAULT 0,
  max_attempts int NOT NULL DEFAULT 1, lane text NOT NULL, slot int,
  due_at timestamptz NOT NULL, scheduled_for timestamptz, created_at timestamptz NOT NULL,
  start_time timestamptz, end_time timestamptz, host text, pq_job_id bigint);
CREATE TABLE batch_runner.occurrences (job_name text, scheduled_for timestamptz,
  outcome text NOT NULL, run_id text, host text NOT NULL, decided_at timestamptz NOT NULL,
  PRIMARY KEY (job_name, scheduled_for));
CREATE TABLE batch_runner.attempts (seq bigserial PRIMARY KEY, run_id text, attempt int,
  record jsonb NOT NULL, job_name text, status text, scheduled_for timestamptz,
  UNIQUE (run_id, attempt));
CREATE TABLE batch_runner.output_chunks (run_id text, attempt int, n int, data bytea NOT NULL,
  PRIMARY KEY (run_id, attempt, n));
CREATE TABLE batch_runner.lane_slots (lane text, slot int, run_id text UNIQUE,
  retired bool NOT NULL DEFAULT false, PRIMARY KEY (lane, slot));
"""

# One of everything: a scheduled run that succeeded after a retry, a skipped occurrence, a
# run running in slot w:0 under its doing procrastinate job, one reserved in w:1.
SCENE = """
INSERT INTO batch_runner.lane_slots VALUES ('w', 0, 'r2', false), ('w', 1, 'r3', false);
INSERT INTO procrastinate_jobs (id, queue_name, task_name, lock, status) VALUES
  (7, 'batch_runner', 'batch_runner.attempt', 'lane:w:0', 'doing'),
  (8, 'batch_runner', 'batch_runner.attempt', 'lane:w:1', 'todo');
INSERT INTO batch_runner.runs (run_id, job_name, kind, spec, trigger, status, attempt,
  max_attempts, lane, slot, due_at, scheduled_for, created_at, start_time, host, pq_job_id)
VALUES
  ('r1', 'a', 'job', '{}', 'schedule', 'success', 2, 3, 'w', 0, now(), '2026-01-01 10:00Z',
   now(), now(), 'h1', NULL),
  ('r2', 'a', 'job', '{}', 'schedule', 'running', 1, 1, 'w', 0, now(), '2026-01-01 10:02Z',
   now(), now(), 'h2', 7),
  ('r3', 'b', 'job', '{}', 'manual', 'reserved', 0, 1, 'w', 1, now(), NULL,
   now(), NULL, NULL, 8);
INSERT INTO batch_runner.occurrences VALUES
  ('a', '2026-01-01 10:00Z', 'run', 'r1', 'h1', now()),
  ('a', '2026-01-01 10:01Z', 'skipped', NULL, 'h2', now()),
  ('a', '2026-01-01 10:02Z', 'run', 'r2', 'h1', now());
INSERT INTO batch_runner.attempts (run_id, attempt, record, job_name, status, scheduled_for)
VALUES ('r1', 1, '{}', 'a', 'error', '2026-01-01 10:00Z'),
       ('r1', 2, '{}', 'a', 'success', '2026-01-01 10:00Z'),
       ('s1', 0, '{}', 'a', 'skipped', '2026-01-01 10:01Z');
INSERT INTO batch_runner.output_chunks VALUES ('r1', 2, 0, 'x'), ('r1', 2, 1, 'y');
"""


def make_schema(dsn: str) -> None:
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(dsn) as conn:
        conn.execute(SchemaManager.get_schema().encode())
        conn.execute(DDL.encode())


@pytest.fixture
def conn(pg_server: PgServer) -> Iterator[Any]:
    import psycopg

    name = pg_server.create_database(pg_server.template("br_invariants", make_schema))
    with psycopg.connect(pg_server.dsn(name)) as conn:
        conn.execute(SCENE.encode())
        conn.commit()
        yield conn
    pg_server.drop_database(name)


def test_a_consistent_scene_passes(conn: Any) -> None:
    assert check_all(conn) == []
    assert check_all(conn, settled=True) == [
        "run r2 still running (host h2)",
        "run r3 still reserved (host None)",
        "procrastinate job 7 (lock lane:w:0) still doing",
    ]


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("INSERT INTO batch_runner.runs (run_id, job_name, kind, spec, trigger, status, lane,"
         " due_at, scheduled_for, created_at) SELECT 'r9', job_name, kind, spec, trigger,"
         " 'success', lane, due_at, scheduled_for, created_at FROM batch_runner.runs"
         " WHERE run_id = 'r1'", "2 runs of a for the occurrence"),
        ("UPDATE batch_runner.occurrences SET run_id = 'r3' WHERE run_id = 'r1'",
         "occurrence a 2026-01-01 10:00:00+00:00 is 'run' with run r3"),
        ("UPDATE batch_runner.runs SET status = 'pending' WHERE run_id = 'r1'",
         "2 active runs of job a"),
        ("UPDATE batch_runner.runs SET attempt = 4 WHERE run_id = 'r1'", "attempt 4/3"),
        ("UPDATE batch_runner.lane_slots SET run_id = NULL WHERE run_id = 'r3'",
         "reserved run r3 does not hold its slot w:1"),
        ("UPDATE batch_runner.lane_slots SET run_id = 'r1' WHERE run_id = 'r2'",
         "slot w:0 held by run r1 (success"),
        ("DELETE FROM batch_runner.attempts WHERE run_id = 'r1' AND attempt = 1",
         "success run r1 at attempt 2 has records [2]"),
        ("INSERT INTO batch_runner.attempts (run_id, attempt, record, job_name, status,"
         " scheduled_for) VALUES ('s2', 0, '{}', 'a', 'skipped', '2026-01-01 10:01Z')",
         "2 skipped record(s) of a for 2026-01-01 10:01:00+00:00"),
        ("DELETE FROM batch_runner.output_chunks WHERE n = 0", "1 chunks numbered 1..1"),
        ("UPDATE procrastinate_jobs SET queueing_lock = 'a' WHERE id = 8",
         "procrastinate job 8 has queueing_lock 'a'"),
        ("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = 7",
         "running run r2 has procrastinate job 7 in succeeded"),
        ("UPDATE batch_runner.runs SET status = 'success' WHERE run_id = 'r2'",
         "procrastinate job 7 (doing, lock lane:w:0) but run r2 is success"),
        ("UPDATE procrastinate_jobs SET lock = 'lane:w:0' WHERE id = 8",
         "procrastinate job 8 (todo, lock lane:w:0) but run r3 is reserved"),
    ],
)  # fmt: skip
def test_each_kind_of_damage_is_reported(conn: Any, damage: str, reported: str) -> None:
    conn.execute(damage.encode())
    conn.commit()
    problems = check_all(conn)
    assert any(reported in p for p in problems), problems
