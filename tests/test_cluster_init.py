"""``batch_runner cluster init`` against a real PostgreSQL (issue 22, SPEC 14), the deadlines of
the connection, and the refusal of every other command while the backend is not built yet.

Each test gets a fresh database (``pg_database``, tests/pg_server.py); the CLI runs as a user
runs it, in a subprocess, with the DSN in the environment variable the config names.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO, job, run_cli, wait_for, write_config
from pg_server import PgDatabase, PgServer

from batch_runner.errors import EXIT_BUSY, EXIT_CONFIG, EXIT_FAILED, BackendUnavailable
from batch_runner.state.layout import LogLayout
from batch_runner.state.postgres import connection, pqschema, schema

SECRET = "hunter2-s3cret"
DSN_ENV = "BR_TEST_DSN"


def backend_config(project: Path, **settings: Any) -> Path:
    backend = {"type": "postgres", "dsn_env": DSN_ENV}
    return write_config(project, [job("a", "true")], settings={"backend": backend, **settings})


def init(project: Path, dsn: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(project, "cluster", "init", env={DSN_ENV: dsn}, timeout=timeout)


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cursor = conn.execute(sql, params or None)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def catalog(dsn: str) -> list[tuple[Any, ...]]:
    """Every table, index, function and type of the database, with our meta rows."""
    objects = query(
        dsn,
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('public', 'batch_runner') ORDER BY 1, 2",
    )
    functions = query(
        dsn, "SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate%' ORDER BY 1"
    )
    return [*objects, *functions, *query(dsn, "SELECT * FROM batch_runner.meta ORDER BY key")]


@pytest.fixture
def cluster(project: Path, pg_database: PgDatabase) -> Iterator[PgDatabase]:
    """A project whose config names the backend, and its empty database."""
    backend_config(project)
    yield pg_database


# --- init --------------------------------------------------------------------------------------


def test_init_creates_both_schemas(project: Path, cluster: PgDatabase) -> None:
    result = init(project, cluster.dsn)
    assert result.returncode == 0, result.stderr
    where = f"127.0.0.1:{cluster.server.port}"
    newest = pqschema.migrations()[-1].name
    assert result.stdout.splitlines() == [
        f"{where}: created the batch_runner schema (version {schema.SCHEMA_VERSION}) in the "
        "cluster database",
        f"{where}: created procrastinate's schema (procrastinate "
        f"{_procrastinate_version()}, migration {newest})",
    ]
    assert result.stderr == ""
    meta = dict(query(cluster.dsn, "SELECT key, value FROM batch_runner.meta"))
    assert meta == {
        "schema_version": str(schema.SCHEMA_VERSION),
        "procrastinate_schema_version": newest,
    }
    tables = {row[0] for row in query(
        cluster.dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'batch_runner'"
    )}  # fmt: skip
    assert tables == {
        "meta", "runs", "occurrences", "attempts", "output_chunks", "lane_slots", "processes",
        "job_state", "job_plan", "unwritten", "flags", "tokens", "sessions", "audit",
    }  # fmt: skip
    assert query(cluster.dsn, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL") == [(True,)]
    # Nothing was made on this host: no SQLite state beside the cluster's.
    assert not os.path.exists(LogLayout(str(project / "logs")).database)


def test_the_one_active_run_per_job_is_the_databases_promise(
    project: Path, cluster: PgDatabase
) -> None:
    assert init(project, cluster.dsn).returncode == 0
    insert = (
        "INSERT INTO batch_runner.runs (run_id, job_name, kind, spec, trigger, status, lane, "
        "due_at, created_at) VALUES (%s, 'a', 'job', '{}', 'schedule', %s, 'default', now(), now())"
    )
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(insert, ("r1", "running"))
        conn.execute(insert, ("r0", "success"))  # finished runs do not count
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("r2", "pending"))


def test_init_twice_changes_nothing(project: Path, cluster: PgDatabase) -> None:
    assert init(project, cluster.dsn).returncode == 0
    before = catalog(cluster.dsn)
    result = init(project, cluster.dsn)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "the batch_runner schema (version 1) is already up to date" in lines[0]
    assert "procrastinate's schema (procrastinate " in lines[1]
    assert lines[1].endswith(") is already up to date")
    assert catalog(cluster.dsn) == before


def test_two_inits_at_once_both_succeed_and_one_creates(project: Path, cluster: PgDatabase) -> None:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    env[DSN_ENV] = cluster.dsn
    argv = [sys.executable, "-m", "batch_runner", "cluster", "init"]
    # Held by the test until both wait for it: they then race for it, and for the tables.
    with psycopg.connect(cluster.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (schema.INIT_LOCK,))
        procs = [
            subprocess.Popen(argv, env=env, cwd=project, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]  # fmt: skip
        try:
            wait_for(lambda: _waiting_for_init_lock(cluster.dsn) == 2, timeout=30)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (schema.INIT_LOCK,))
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out for _, out, _ in results)
    assert sum("created the batch_runner schema" in out for out in outputs) == 1
    assert sum("created procrastinate's schema" in out for out in outputs) == 1
    assert sum(out.count("already up to date") == 2 for out in outputs) == 1
    assert query(cluster.dsn, "SELECT count(*) FROM batch_runner.meta") == [(2,)]


def _waiting_for_init_lock(dsn: str) -> int:
    rows = query(
        dsn,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND ((classid::bigint << 32) | objid::bigint) = %s",
        schema.INIT_LOCK,
    )
    return int(rows[0][0])


def test_a_newer_schema_is_refused(project: Path, cluster: PgDatabase) -> None:
    assert init(project, cluster.dsn).returncode == 0
    query(cluster.dsn, "UPDATE batch_runner.meta SET value = '99' WHERE key = 'schema_version'")
    before = catalog(cluster.dsn)
    result = init(project, cluster.dsn)
    assert result.returncode == EXIT_FAILED
    assert result.stdout == ""
    assert result.stderr == (
        f"error: the cluster database at 127.0.0.1:{cluster.server.port} has batch_runner "
        "schema version 99, newer than this batch_runner understands (1); upgrade batch_runner "
        "on this host\n"
    )
    assert catalog(cluster.dsn) == before


def test_a_newer_procrastinate_schema_is_refused(project: Path, cluster: PgDatabase) -> None:
    assert init(project, cluster.dsn).returncode == 0
    query(
        cluster.dsn,
        "UPDATE batch_runner.meta SET value = '99.00.00_01_pre_future' "
        "WHERE key = 'procrastinate_schema_version'",
    )
    result = init(project, cluster.dsn)
    assert result.returncode == EXIT_FAILED
    assert "has procrastinate's schema 99.00.00_01_pre_future, newer than" in result.stderr
    assert result.stderr.count("\n") == 1


def test_procrastinate_tables_not_ours_are_left_alone(project: Path, cluster: PgDatabase) -> None:
    from procrastinate.schema import SchemaManager

    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(SchemaManager.get_schema())  # type: ignore[call-overload]
    result = init(project, cluster.dsn)
    assert result.returncode == EXIT_FAILED
    assert "already has procrastinate's tables, which `batch_runner cluster init` did not make" in (
        result.stderr
    )
    # Our part was made in a transaction of its own before; procrastinate's was not touched.
    assert query(cluster.dsn, "SELECT to_regclass('batch_runner.runs') IS NOT NULL") == [(True,)]


def test_newer_procrastinate_migrations_are_applied_in_order(
    project: Path, cluster: PgDatabase, pg_server: PgServer
) -> None:
    # A database made by an older procrastinate: its migrations up to two before the newest,
    # applied one by one from the first, and recorded as cluster init would have.
    known = pqschema.migrations()
    older = known[-3].name
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        schema.ensure(conn, "test")
        for migration in known[:-2]:
            conn.execute(Path(migration.path).read_text())  # type: ignore[call-overload]
        conn.execute(
            "INSERT INTO batch_runner.meta (key, value) VALUES (%s, %s)",
            (pqschema.RECORD_KEY, older),
        )
    result = init(project, cluster.dsn)
    assert result.returncode == 0, result.stderr
    assert "the batch_runner schema (version 1) is already up to date" in result.stdout
    assert (
        f"migrated procrastinate's schema from {older} to {known[-1].name} (2 migrations, "
        in result.stdout
    )
    assert query(
        cluster.dsn,
        "SELECT value FROM batch_runner.meta WHERE key = 'procrastinate_schema_version'",
    ) == [(known[-1].name,)]
    # The same functions, tables and types as a database made from schema.sql at once.
    fresh = pg_server.create_database()
    try:
        fresh_dsn = pg_server.dsn(fresh)
        assert init(project, fresh_dsn).returncode == 0
        assert _procrastinate_objects(cluster.dsn) == _procrastinate_objects(fresh_dsn)
    finally:
        pg_server.drop_database(fresh)
    assert init(project, cluster.dsn).stdout.count("already up to date") == 2


def _procrastinate_objects(dsn: str) -> list[tuple[Any, ...]]:
    return query(
        dsn,
        "SELECT 'rel', relname FROM pg_class WHERE relname LIKE 'procrastinate%' "
        "UNION ALL SELECT 'fn', proname FROM pg_proc WHERE proname LIKE 'procrastinate%' "
        "UNION ALL SELECT 'type', typname FROM pg_type WHERE typname LIKE 'procrastinate%' "
        "ORDER BY 1, 2",
    )


# --- what init needs ---------------------------------------------------------------------------


def test_init_without_a_backend_says_what_to_add(project: Path) -> None:
    write_config(project, [job("a", "true")])
    result = run_cli(project, "cluster", "init")
    assert result.returncode == EXIT_CONFIG
    assert "has no settings.backend" in result.stderr
    assert '"backend": {"type": "postgres", "dsn_env": "BATCH_RUNNER_DSN"}' in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("value", [None, "", "  "])
def test_init_names_the_variable_that_is_missing(project: Path, value: str | None) -> None:
    backend_config(project)
    env = {} if value is None else {DSN_ENV: value}
    full = {k: v for k, v in os.environ.items() if k != DSN_ENV}
    result = run_cli(project, "cluster", "init", env=env) if value is not None else subprocess.run(
        [sys.executable, "-m", "batch_runner", "cluster", "init"],
        capture_output=True, text=True, timeout=30, cwd=project,
        env={**full, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == EXIT_CONFIG
    state = "is not set" if value is None else "is empty"
    assert result.stderr.startswith(
        f"error: the environment variable {DSN_ENV} (settings.backend.dsn_env) {state}; "
    )
    assert result.stderr.count("\n") == 1


def test_an_unreadable_dsn_is_refused_without_echoing_it(project: Path) -> None:
    backend_config(project)
    result = init(project, f"postgresql://batch:{SECRET}@[::1/nodb")
    assert result.returncode == EXIT_CONFIG
    assert "does not hold a connection string libpq can read" in result.stderr
    assert SECRET not in result.stderr
    assert result.stderr.count("\n") == 1


# --- a backend that does not answer ------------------------------------------------------------


def test_a_backend_that_is_down_is_exit_75_at_once(project: Path) -> None:
    backend_config(project)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # Nothing listens on the port now.
    started = time.monotonic()
    result = init(project, f"host=127.0.0.1 port={port} user=batch password={SECRET} dbname=x")
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_BUSY
    assert result.stderr.startswith(
        f"error: cannot connect to the cluster database at 127.0.0.1:{port}: "
    )
    assert "Connection refused" in result.stderr
    assert result.stderr.count("\n") == 1
    assert SECRET not in result.stderr + result.stdout
    assert elapsed < 4, elapsed


def test_a_backend_that_never_answers_is_exit_75_within_its_deadline(project: Path) -> None:
    backend_config(project)
    # A listener whose connections the kernel accepts and nobody answers (a hung server).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        dsn = f"postgresql://batch:{SECRET}@127.0.0.1:{port}/x"
        result = init(project, dsn)
        elapsed = time.monotonic() - started
    assert result.returncode == EXIT_BUSY
    assert result.stderr == (
        f"error: the cluster database at 127.0.0.1:{port} did not answer within 2 s\n"
    )
    assert elapsed < 4, elapsed


def test_a_statement_past_the_deadline_is_cut(pg_database: PgDatabase) -> None:
    endpoint = connection.Endpoint(pg_database.dsn + f" password={SECRET}", DSN_ENV)
    started = time.monotonic()
    session = connection.Session(endpoint, role="test", deadline=0.5, statement_timeout=30)
    with pytest.raises(BackendUnavailable) as raised, session as conn:
        conn.execute("SELECT pg_sleep(20)")
    assert time.monotonic() - started < 3
    port = pg_database.server.port
    assert (
        str(raised.value) == f"the cluster database at 127.0.0.1:{port} did not answer within 0.5 s"
    )


def test_the_servers_statement_timeout_is_one_sentence(pg_database: PgDatabase) -> None:
    endpoint = connection.Endpoint(pg_database.dsn, DSN_ENV)
    session = connection.Session(endpoint, role="test", statement_timeout=0.2)
    with pytest.raises(BackendUnavailable) as raised, session as conn:
        conn.execute("SELECT pg_sleep(5)")
    assert str(raised.value) == (
        f"the cluster database at 127.0.0.1:{pg_database.server.port} did not finish in time "
        "(canceling statement due to statement timeout)"
    )


def test_an_unavailable_backend_is_75_for_a_command_and_503_for_the_service() -> None:
    from batch_runner.web.errors import status_of

    error = BackendUnavailable("the cluster database at h:5432 did not answer within 2 s")
    assert error.exit_code == EXIT_BUSY
    assert status_of(error) == 503


# --- every other command, until the backend is built -------------------------------------------

OTHER_COMMANDS = [
    ("list",),
    ("status",),
    ("history",),
    ("next",),
    ("run-job", "a"),
    ("queue", "add", "--", "true"),
    ("queue", "list"),
    ("token", "list"),
    ("stop", "20250101-000000-abcdef"),
    ("scheduler",),
]


@pytest.mark.parametrize("argv", OTHER_COMMANDS, ids=" ".join)
def test_every_command_gives_up_on_an_unreachable_backend_in_one_sentence(
    project: Path, argv: tuple[str, ...]
) -> None:
    backend_config(project)
    assert run_cli(project, "validate").returncode == 0  # a config validate accepts
    started = time.monotonic()
    result = run_cli(project, *argv, env={DSN_ENV: "host=127.0.0.1 port=1"})
    took = time.monotonic() - started
    assert result.returncode == EXIT_BUSY, (result.stdout, result.stderr)
    assert "cluster database at 127.0.0.1:1" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert took < 8, took  # the interpreter's start included; the deadline itself is 2-3 s
    # Never on this host's SQLite state instead.
    assert not os.path.exists(LogLayout(str(project / "logs")).database)


def test_a_database_not_initialised_is_refused_with_the_command_to_run(
    project: Path, pg_database: PgDatabase
) -> None:
    backend_config(project)
    result = run_cli(project, "status", env={DSN_ENV: pg_database.dsn})
    assert result.returncode == EXIT_BUSY, (result.stdout, result.stderr)
    assert "run `batch_runner cluster init`" in result.stderr
    assert not os.path.exists(LogLayout(str(project / "logs")).database)


def test_without_a_backend_the_commands_work_as_ever(project: Path) -> None:
    write_config(project, [job("a", "true")])
    result = run_cli(project, "list", "--json")
    assert result.returncode == 0, result.stderr
    assert [j["name"] for j in json.loads(result.stdout)] == ["a"]


def _procrastinate_version() -> str:
    from procrastinate import __version__

    return __version__


# --- what the other commands import -----------------------------------------------------------

_PROBE = (
    "import sys; from batch_runner.cli.main import main; code = main(sys.argv[1:]);"
    "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
)


@pytest.mark.parametrize(
    "argv",
    [["run-job", "a"], ["queue", "add", "--", "true"], ["list"], ["history"], ["status"]],
    ids=" ".join,
)
@pytest.mark.parametrize("with_backend", [False, True], ids=["sqlite", "backend"])
def test_the_commands_import_no_driver_without_a_backend_and_no_engine_with_one(
    project: Path, argv: list[str], with_backend: bool
) -> None:
    if with_backend:
        backend_config(project)
    else:
        write_config(project, [job("a", "true")])
    assert run_cli(project, "validate").returncode == 0
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env={**env, DSN_ENV: "host=127.0.0.1 port=1"},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = done.stderr.split()
    packages = {name.split(".")[0] for name in loaded}
    if with_backend:
        # The database did not answer (exit 75): psycopg was needed to find out; procrastinate
        # (the workers' engine) and the cluster's room never are on a command's path.
        assert done.returncode == EXIT_BUSY, done.stderr
        assert not packages & {"procrastinate", "psycopg_pool"}
        assert not [name for name in loaded if name.startswith("batch_runner.cluster")]
        return
    assert done.returncode == 0, done.stderr
    assert not packages & {"psycopg", "psycopg_pool", "procrastinate"}
    assert not [name for name in loaded if name.startswith("batch_runner.state.postgres")]
