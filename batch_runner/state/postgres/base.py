"""The store's connection to the cluster's database: one autocommit psycopg connection per store
(a store is one thread's), transactions that nest as savepoints, and a run as the store hands it
out (``state.store``: SQLite's names, times in epoch seconds) from a row with the JSONL's names.

Every statement goes through ``_read``, ``_first`` or ``_write``: no psycopg error leaves a
store but as one sentence (``connection.failure``: BackendUnavailable when the database cannot
be reached in time). A connection found broken is replaced at the next statement outside a
transaction; inside one, the transaction's failure is the caller's to see.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from batch_runner.state.postgres import connection
from batch_runner.state.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

# The run dict's names (SQLite's) for the columns named as in the JSONL.
_FROM_COLUMN = {
    "start_time": "started_at",
    "end_time": "ended_at",
    "output": "output_tail",
    "pid": "owner_pid",
}
_TO_COLUMN = {name: column for column, name in _FROM_COLUMN.items()}
# Columns of timestamptz that the run dict carries as epoch seconds.
TIME_COLUMNS = frozenset(
    {"due_at", "created_at", "start_time", "end_time", "reserved_at", "beat_at"}
)
_BOOL_COLUMNS = frozenset({"output_truncated", "stop_requested"})


def when(epoch: float | None) -> datetime | None:
    """Epoch seconds as a timestamptz parameter."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def run_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``runs`` row as the store hands a run out."""
    run: dict[str, Any] = {}
    for column, value in row.items():
        if column in TIME_COLUMNS:
            value = epoch(value)
        run[_FROM_COLUMN.get(column, column)] = value
    if not run.get("tags"):
        run["tags"] = None
    return run


def run_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Run dict fields as ``runs`` columns and parameters: renamed, times as timestamptz,
    spec and tags as jsonb, flags as booleans."""
    columns: dict[str, Any] = {}
    for name, value in fields.items():
        column = _TO_COLUMN.get(name, name)
        if column in TIME_COLUMNS:
            value = when(value)
        elif column == "spec":
            value = Jsonb(value)  # {} is a spec, not a NULL
        elif column == "tags":
            value = Jsonb(list(value)) if value else None
        elif column in _BOOL_COLUMNS:
            value = bool(value)
        columns[column] = value
    return columns


class PgBase(Store):
    """One connection, reconnected when found broken between transactions."""

    def __init__(self, endpoint: connection.Endpoint, *, host: str, role: str) -> None:
        self.endpoint = endpoint
        self.host = host
        self.role = role
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._depth = 0  # transactions open on this store (nested ones are savepoints)
        self._connect()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        conn = connection.connect(self.endpoint, role=self.role)
        conn.row_factory = dict_row
        self._conn = conn
        return self._conn

    @property
    def conn(self) -> psycopg.Connection[dict[str, Any]]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._depth:
                raise connection.failure(
                    psycopg.OperationalError("the connection was lost"), self.endpoint, "use"
                )
            if conn is not None:
                conn.close()
            conn = self._connect()
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    def _joined(self) -> _Transaction:
        """A transaction of its own, or a savepoint in the caller's: all or nothing either way."""
        return _Transaction(self)

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def _execute(self, sql: str, params: Any, doing: str) -> psycopg.Cursor[dict[str, Any]]:
        try:
            return self.conn.execute(sql, params)
        except psycopg.Error as exc:
            raise connection.failure(exc, self.endpoint, doing) from exc

    def _write(self, sql: str, params: Any = None) -> psycopg.Cursor[dict[str, Any]]:
        return self._execute(sql, params, "write to")

    def _read(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise connection.failure(exc, self.endpoint, "read") from exc

    def _first(self, sql: str, params: Any = None, doing: str = "read") -> dict[str, Any] | None:
        """The first row (of a read, or of a write's ``RETURNING``)."""
        try:
            return self.conn.execute(sql, params).fetchone()
        except psycopg.Error as exc:
            raise connection.failure(exc, self.endpoint, doing) from exc

    def _value(self, sql: str, params: Any = None) -> Any:
        row = self._first(sql, params)
        return None if row is None else next(iter(row.values()))


class _Transaction:
    """``with store.transaction():`` BEGIN ... COMMIT, or a savepoint inside an open one.
    A class because contextlib costs a millisecond at start-up."""

    __slots__ = ("_inner", "_store")

    def __init__(self, store: PgBase) -> None:
        self._store = store
        self._inner: Any = None

    def __enter__(self) -> None:
        store = self._store
        try:
            self._inner = store.conn.transaction()
            self._inner.__enter__()
        except psycopg.Error as exc:
            raise connection.failure(exc, store.endpoint, "write to") from exc
        store._depth += 1

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        store = self._store
        store._depth -= 1
        try:
            self._inner.__exit__(kind, exc, traceback)
        except psycopg.Error as failed:
            if exc is not None:
                return  # the first error is the one to tell
            raise connection.failure(failed, store.endpoint, "write to") from failed


def rows_of(cursor: psycopg.Cursor[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return iter(cursor.fetchall() if cursor.description else [])
