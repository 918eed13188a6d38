"""The pytest fixtures for a real PostgreSQL (tests/pg_instance.py), from the distribution's
binaries: one server per test session (``pg_server``, initdb once, stopped at the end even when
tests fail) and a fresh database per test copied from a template (``pg_database``), which costs
milliseconds where another ``initdb`` costs a second.

Without the binaries the tests that need them are skipped with the reason, unless
``BATCH_RUNNER_REQUIRE_PG=1`` (``.ci/run`` sets it): then they fail, so CI never skips them
silently.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pg_instance import BINDIR_ENV, PgServer, find_bindir

__all__ = [
    "BINDIR_ENV",
    "REQUIRE_ENV",
    "PgDatabase",
    "PgServer",
    "cluster_database",
    "pg_database",
    "pg_server",
]

REQUIRE_ENV = "BATCH_RUNNER_REQUIRE_PG"


def unavailable_reason() -> str | None:
    """Why no server can be started here, or None when it can."""
    if find_bindir() is None:
        return (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, nor"
            f" ${BINDIR_ENV}/initdb): apt-get install postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' account to run PostgreSQL as"
        if not (shutil.which("setpriv") or shutil.which("runuser")):
            return "running as root and neither setpriv nor runuser is there to drop to 'postgres'"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip with the reason, or fail when ``BATCH_RUNNER_REQUIRE_PG=1`` says it must run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class PgDatabase:
    """One test's database: ``dsn`` to connect, ``server`` to stop, restart or kill it."""

    server: PgServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL (durable settings), started on first use."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    with PgServer() as server:
        server.template()
        yield server


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh, empty database for this test, dropped after it; the server is started again
    first if the test left it stopped."""
    database = PgDatabase(pg_server, pg_server.create_database())
    yield database
    pg_server.ensure_running()
    pg_server.drop_database(database.name)


CLUSTER_TEMPLATE = "br_cluster_template"


def _initialize(dsn: str) -> None:
    import psycopg

    from batch_runner.state.postgres import schema

    with psycopg.connect(dsn, autocommit=True) as conn:
        schema.initialize(conn, "the test template")


@pytest.fixture
def cluster_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh database as ``batch_runner cluster init`` leaves it (our tables and
    procrastinate's), copied from a template initialised once per session."""
    template = pg_server.template(CLUSTER_TEMPLATE, _initialize)
    database = PgDatabase(pg_server, pg_server.create_database(template))
    yield database
    pg_server.ensure_running()
    pg_server.drop_database(database.name)
