"""The SQLite store's connection: opening it under the shared store lock, its transactions,
and the three ways every statement runs (``_read``, ``_first``, ``_write``), through which no
SQLite error leaves but as a ``StorageError`` naming the file."""

from __future__ import annotations

import json
import os
import sqlite3

from batch_runner.state.layout import store_lock_of
from batch_runner.state.sqlite.schema import Transaction, connect, storage_error
from batch_runner.state.store import Store
from batch_runner.state.storelock import StoreLock

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.paths import StrPath


def row_to_run(row: sqlite3.Row) -> dict[str, Any]:
    """A run as the store hands it out: its spec and tags parsed, its flags booleans."""
    run = dict(row)
    run["spec"] = json.loads(run["spec"])
    tags = run.get("tags")
    run["tags"] = json.loads(tags) if tags else None
    run["output_truncated"] = bool(run["output_truncated"])
    run["stop_requested"] = bool(run["stop_requested"])
    return run


class SqliteConnection(Store):
    """One connection to the state database, and the statements run on it."""

    def __init__(self, path: StrPath, *, durable: bool = False) -> None:
        self.path = os.fspath(path)
        # Before the file is opened: a repair under way must be done with it first.
        self._lock = StoreLock(store_lock_of(self.path))
        self._lock.share(self.path)
        try:
            self._db = connect(self.path, durable=durable)
        except BaseException:
            self._lock.release()
            raise

    def close(self) -> None:
        self._db.close()
        self._lock.release()

    def transaction(self) -> Transaction:
        return Transaction(self._db, self.path)

    def _joined(self) -> Transaction | _Joined:
        """The caller's open transaction (a change and its audit line), else one of its own."""
        return _Joined() if self._db.in_transaction else self.transaction()

    def _write(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "write") from exc

    def _read(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        # Fetched here: a damaged page is found while stepping through rows, not at execute.
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "read") from exc

    def _first(self, sql: str, params: Any = (), doing: str = "read") -> sqlite3.Row | None:
        """The first row (of a read, or of a write's ``RETURNING``)."""
        try:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, doing) from exc
        return row


class _Joined:
    """Nothing to begin nor end: the statements join the transaction already open. A class
    because contextlib costs a millisecond at start-up."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
