"""The PostgreSQL the cluster tests run against (tests/pg_server.py): a fresh database per test,
committed data surviving restarts and a kill -9, reachable from loopback only, and a CI that
cannot skip it silently."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pg_server import BINDIR_ENV, REQUIRE_ENV, PgDatabase, PgServer

try:
    import psycopg
except ImportError:  # the fixtures skip (or fail under BATCH_RUNNER_REQUIRE_PG=1) and say why
    pass
TESTS = Path(__file__).resolve().parent
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def connect(db: PgDatabase) -> psycopg.Connection:
    return psycopg.connect(db.dsn, connect_timeout=5)


def user_tables(db: PgDatabase) -> list[str]:
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return [r[0] for r in rows]


def count_rows(db: PgDatabase) -> int:
    with connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM kept").fetchone()[0])


def commit_rows(db: PgDatabase, n: int) -> None:
    """``n`` rows committed one transaction each, as a stream of accepted writes."""
    with connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (n int PRIMARY KEY)")
        conn.commit()
        for i in range(n):
            conn.execute("INSERT INTO kept VALUES (%s)", (i,))
            conn.commit()


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_empty_database(pg_database: PgDatabase, round_: int) -> None:
    # Run twice: the second round would find the first round's table if databases were shared.
    assert user_tables(pg_database) == []
    with connect(pg_database) as conn:
        conn.execute("CREATE TABLE marker (round int)")
        conn.execute("INSERT INTO marker VALUES (%s)", (round_,))
    other = pg_database.server.create_database()
    try:
        assert other != pg_database.name
        assert user_tables(PgDatabase(pg_database.server, other)) == []
    finally:
        pg_database.server.drop_database(other)


def test_the_template_refuses_connections(pg_server: PgServer) -> None:
    # Nothing can write into the template that every test's database is copied from.
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(pg_server.dsn(pg_server.template()), connect_timeout=5)


def test_settings_are_durable_by_default(pg_database: PgDatabase) -> None:
    with connect(pg_database) as conn:
        shown = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in DURABLE}
    assert shown == DURABLE


def test_stop_refuses_clients_and_start_brings_the_data_back(pg_database: PgDatabase) -> None:
    commit_rows(pg_database, 3)
    server = pg_database.server
    server.stop()
    assert not server.running()
    with pytest.raises(psycopg.OperationalError):
        connect(pg_database)
    server.start()
    assert count_rows(pg_database) == 3


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_mid_stream_keeps_what_was_committed(pg_database: PgDatabase, mode: str) -> None:
    commit_rows(pg_database, 5)
    port = pg_database.server.port
    with connect(pg_database) as conn:
        conn.execute("INSERT INTO kept VALUES (100)")  # open, never committed
        pg_database.server.restart(mode)
        with pytest.raises(psycopg.OperationalError):  # the stream was cut
            conn.execute("SELECT 1")
    assert pg_database.server.port == port  # the DSN handed out before still works
    assert count_rows(pg_database) == 5


def test_kill9_recovers_every_committed_row(pg_database: PgDatabase) -> None:
    commit_rows(pg_database, 200)
    server = pg_database.server
    with connect(pg_database) as conn:
        conn.execute("INSERT INTO kept VALUES (1000)")  # in flight when the server dies
        server.kill9()
        assert not server.running()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    server.start()  # crash recovery from the WAL
    with connect(pg_database) as conn:
        kept = [r[0] for r in conn.execute("SELECT n FROM kept ORDER BY n")]
    assert kept == list(range(200))


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_listens_on_127_0_0_1_only(pg_database: PgDatabase) -> None:
    server = pg_database.server
    with connect(pg_database) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == str(server.base)
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, little-endian hex
    # Another loopback address of this host reaches nothing on that port.
    with pytest.raises(ConnectionRefusedError), socket.socket() as s:
        s.settimeout(5)
        s.connect(("127.0.0.2", server.port))


def test_fast_settings_only_when_asked(pg_server: PgServer) -> None:
    # A server of its own (pg_server only for the skip-or-fail when PostgreSQL is missing).
    with PgServer(durable=False) as server, psycopg.connect(server.dsn()) as conn:
        shown = conn.execute("SHOW synchronous_commit").fetchone()[0]
        assert (conn.execute("SHOW fsync").fetchone()[0], shown) == ("off", "off")
    assert not server.running()
    assert not server.base.exists()  # nothing left in /tmp


@pytest.mark.parametrize(("require", "outcome"), [("", "1 skipped"), ("1", "1 error")])
def test_missing_binaries_skip_unless_required(tmp_path: Path, require: str, outcome: str) -> None:
    (tmp_path / "test_needs_pg.py").write_text("def test_it(pg_server):\n    pass\n")
    env = {**os.environ, BINDIR_ENV: str(tmp_path), REQUIRE_ENV: require}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "pg_server", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "PostgreSQL is not installed" in result.stdout
