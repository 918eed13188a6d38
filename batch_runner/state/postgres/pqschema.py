"""procrastinate's tables, functions and triggers in the cluster's database, applied by
``batch_runner cluster init`` from the SQL procrastinate ships (``SchemaManager``).

procrastinate keeps no record of which of its migrations a database has (its issue #1040):
we keep it in ``batch_runner.meta`` as the name of the last one applied. A new database gets
``schema.sql`` (the sum of every migration) and the name of the newest migration; a later
``cluster init`` with a newer procrastinate applies the newer migration files in their
order, each in its own transaction with its record, pre- and post-migrations alike (an
upgrade with every host stopped). procrastinate is imported here only, from ``cluster init``.
"""

from __future__ import annotations

import os

from batch_runner.errors import StorageError
from batch_runner.valuetype import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import psycopg

RECORD_KEY = "procrastinate_schema_version"


class Outcome(Record):
    """What ``ensure`` did: ``before`` None when it created procrastinate's schema."""

    before: str | None  # the migration recorded before, e.g. "03.04.00_50_post_add_..."
    after: str
    applied: tuple[str, ...]  # the migrations applied now, oldest first
    package: str  # procrastinate's version on this host


class Migration(Record):
    key: tuple[int, ...]  # (3, 4, 0, 50) for "03.04.00_50_post_add_..."
    name: str
    path: str


def version_key(name: str) -> tuple[int, ...]:
    """The order of a migration's name: its version, then its place among the version's."""
    version, number = name.split("_", 2)[:2]
    return (*map(int, version.split(".")), int(number))


def migrations() -> list[Migration]:
    """procrastinate's migration files, oldest first."""
    from procrastinate.schema import SchemaManager

    folder = SchemaManager.get_migrations_path()
    names = [name.removesuffix(".sql") for name in os.listdir(folder) if name.endswith(".sql")]
    found = [Migration(version_key(n), n, os.path.join(folder, f"{n}.sql")) for n in names]
    return sorted(found)


def ensure(conn: psycopg.Connection[Any], where: str) -> Outcome:
    """procrastinate's schema created, or brought up to the installed procrastinate's; the
    caller holds ``schema.INIT_LOCK`` and has made our tables."""
    from procrastinate import __version__ as package

    known = migrations()
    newest = known[-1]
    row = conn.execute("SELECT value FROM batch_runner.meta WHERE key = %s", (RECORD_KEY,))
    recorded = row.fetchone()
    found = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    present = bool(found and found[0])
    if recorded is None and present:
        raise StorageError(
            f"the cluster database at {where} already has procrastinate's tables, which "
            "`batch_runner cluster init` did not make (their version is unknown); give "
            "batch_runner a database of its own"
        )
    if recorded is None or not present:  # new, or its tables dropped since: made again
        _create(conn, newest.name)
        return Outcome(None, newest.name, (), package)
    before = str(recorded[0])
    if version_key(before) > newest.key:
        raise StorageError(
            f"the cluster database at {where} has procrastinate's schema {before}, newer than "
            f"the procrastinate {package} on this host knows ({newest.name}); upgrade "
            "procrastinate (pip install -U 'batch-runner[cluster]') on this host"
        )
    pending = [m for m in known if m.key > version_key(before)]
    for migration in pending:
        with open(migration.path, encoding="utf-8") as file:
            _apply(conn, file.read(), migration.name)
    return Outcome(before, newest.name, tuple(m.name for m in pending), package)


def _create(conn: psycopg.Connection[Any], name: str) -> None:
    from procrastinate.schema import SchemaManager

    _apply(conn, SchemaManager.get_schema(), name)


def _apply(conn: psycopg.Connection[Any], sql: str, name: str) -> None:
    """``sql`` and its record in one transaction: cut short, neither is there."""
    with conn.transaction():
        # Without parameters: sent as it is, several statements, "%" and all.
        conn.execute(sql)
        conn.execute(
            "INSERT INTO batch_runner.meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (RECORD_KEY, name),
        )
