"""The state database: runs (the queue and their bookkeeping), per-job state, schema version.

One SQLite file in WAL mode under the log dir, shared by every batch_runner process. Claiming a
run is one ``BEGIN IMMEDIATE`` transaction, so two drainers can never take the same run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3

from batch_runner.errors import StorageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.paths import StrPath

SCHEMA_VERSION = 2
# How to bring a database of version N up to N + 1: columns to add, as (table, column, type).
_MIGRATIONS = {
    1: [("runs", "attempt_status", "TEXT")],
}
ACTIVE_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("success", "error", "timeout", "stopped", "interrupted", "canceled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    job_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    trigger TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    due_at REAL NOT NULL,
    scheduled_for TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    exit_code INTEGER,
    error TEXT,
    output_tail TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    log_file TEXT,
    owner_pid INTEGER,
    pgid INTEGER,
    host TEXT,
    label TEXT,
    progress_percent REAL,
    progress_message TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    attempt_status TEXT
);
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (priority DESC, due_at, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS runs_active_job ON runs (job_name)
    WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq);
CREATE TABLE IF NOT EXISTS job_state (
    job_name TEXT PRIMARY KEY,
    last_run TEXT,
    last_status TEXT,
    error_count INTEGER NOT NULL DEFAULT 0,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_plan (job_name TEXT PRIMARY KEY, next_run TEXT);
"""


def _row_to_run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    run["spec"] = json.loads(run["spec"])
    run["output_truncated"] = bool(run["output_truncated"])
    run["stop_requested"] = bool(run["stop_requested"])
    return run


class Store:
    """A connection to the state database with the few operations the runner needs."""

    def __init__(self, path: StrPath, *, durable: bool = False) -> None:
        self.path = path = os.fspath(path)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 30000")
            # FULL syncs every commit: a `queue add` must survive power loss once it returns.
            # The executor's bookkeeping may lose its last write; that is recovered as
            # `interrupted` at the next start.
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._ensure_schema()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the state database {path}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot create the state database {path}: {exc.strerror}") from exc

    def close(self) -> None:
        self._db.close()

    def _ensure_schema(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:
            return
        # Creating or upgrading the database is the one step two processes (or the scheduler's
        # two threads) must not race on: switching to WAL does not wait for a busy handler.
        guard = os.open(self.path + ".init-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            version = self._schema_version()
            if version is not None:
                self._migrate(version)
                return
            if self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StorageError(f"cannot switch the state database {self.path} to WAL mode")
            with self.transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        finally:
            os.close(guard)

    def _migrate(self, version: int) -> None:
        with self.transaction() as db:
            for step in range(version, SCHEMA_VERSION):
                for table, column, kind in _MIGRATIONS[step]:
                    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                    if column not in present:  # an upgrade cut short may have added it
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )

    def _schema_version(self) -> int | None:
        """The database's schema version; None when it is new; refuses a newer one."""
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None  # a new database: no meta table yet
        if row is None:
            return None
        if int(row[0]) > SCHEMA_VERSION:
            raise StorageError(
                f"the state database {self.path} has schema version {row[0]}, newer than "
                f"this batch_runner understands ({SCHEMA_VERSION}); upgrade batch_runner"
            )
        return int(row[0])

    def transaction(self) -> _Transaction:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, never mid-way.

        ``with store.transaction() as db:`` commits at the end of the block, rolls back on an
        exception.
        """
        return _Transaction(self)

    # --- runs -----------------------------------------------------------------------------

    def insert_run(self, run: dict[str, Any], db: sqlite3.Connection | None = None) -> None:
        values = dict(run)
        values["spec"] = json.dumps(values["spec"])
        columns = ", ".join(values)
        marks = ", ".join(f":{key}" for key in values)
        (db or self._db).execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", values)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _row_to_run(row) if row else None

    def run_extras(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Priority, attempt and progress of the runs still in the queue, by run id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(run_ids), 500):  # under SQLite's limit on parameters
            chunk = run_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self._db.execute(
                "SELECT run_id, priority, attempt, progress_percent, progress_message "
                f"FROM runs WHERE run_id IN ({marks})",
                chunk,
            ):
                found[row["run_id"]] = dict(row)
        return found

    def find_runs(self, prefix: str) -> list[dict[str, Any]]:
        """Runs whose id starts with ``prefix`` (users may type a unique prefix)."""
        if not prefix.strip():
            return []  # every id starts with "": that is no id at all, not an ambiguous one
        rows = self._db.execute(
            "SELECT * FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY seq LIMIT 2",
            (prefix, prefix + "\uffff"),
        ).fetchall()
        return [_row_to_run(row) for row in rows]

    def active_run_of_job(
        self, job_name: str, db: sqlite3.Connection | None = None
    ) -> dict[str, Any] | None:
        # kind: an ad-hoc run's job_name is its label (or "adhoc"), which a job may share.
        row = (
            (db or self._db)
            .execute(
                "SELECT * FROM runs WHERE job_name = ? AND kind = 'job' "
                "AND status IN ('pending', 'running') ORDER BY seq LIMIT 1",
                (job_name,),
            )
            .fetchone()
        )
        return _row_to_run(row) if row else None

    def runs_with_status(self, *statuses: str, limit: int | None = None) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in statuses)
        sql = (
            f"SELECT * FROM runs WHERE status IN ({marks}) "
            "ORDER BY status = 'running' DESC, priority DESC, due_at, seq"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_row_to_run(row) for row in self._db.execute(sql, statuses).fetchall()]

    def claim_next(
        self,
        now: float,
        owner_pid: int,
        host: str,
        *,
        foreground_run_id: str | None = None,
        first_attempt_only: bool = False,
    ) -> dict[str, Any] | None:
        """Take the next due run (priority, then due time, then arrival) and mark it running.

        One statement, so one write transaction taken up front: no two drainers can take the
        same run. While the queue is paused nothing is taken but ``foreground_run_id`` (the
        run a foreground ``run-job`` waits for), which may also start while it is not first.
        ``first_attempt_only``: None if the next run is a retry (whose last attempt's details
        the claim clears, so that ``unclaim`` could not give them back).
        """
        row = self._write(
            "UPDATE runs SET status = 'running', attempt = attempt + 1, started_at = :now, "
            "ended_at = NULL, owner_pid = :owner, host = :host, pgid = NULL, exit_code = NULL, "
            "error = NULL, log_file = NULL WHERE seq = (SELECT seq FROM runs "
            # Without statistics the planner prefers runs_status and sorts every pending run:
            # 0.35 ms per claim with 900 waiting, against 0.01 ms reading runs_waiting in order.
            "INDEXED BY runs_waiting WHERE status = 'pending' AND due_at <= :now "
            "AND (run_id = :foreground OR NOT EXISTS "
            "(SELECT 1 FROM meta WHERE key = 'paused' AND value = '1')) "
            "ORDER BY priority DESC, due_at, seq LIMIT 1) AND (:any_attempt OR attempt = 0) "
            "RETURNING *",
            {
                "now": now,
                "owner": owner_pid,
                "host": host,
                "foreground": foreground_run_id,
                "any_attempt": not first_attempt_only,
            },
        ).fetchone()
        return _row_to_run(row) if row else None

    def unclaim(self, run_id: str, owner_pid: int) -> None:
        """Put a first attempt claimed by ``owner_pid`` but never started back in the queue
        as it was (see ``claim_next(first_attempt_only=True)``)."""
        self._write(
            "UPDATE runs SET status = 'pending', attempt = 0, started_at = NULL, "
            "owner_pid = NULL, host = NULL WHERE run_id = ? AND status = 'running' "
            "AND attempt = 1 AND owner_pid = ? AND pgid IS NULL",
            (run_id, owner_pid),
        )

    def _write(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """One statement in autocommit mode: its own write transaction, begun before it reads."""
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the state database {self.path}: {exc}") from exc

    def count_pending(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs WHERE status = 'pending'").fetchone()[0]

    def request_stop(self, run_id: str) -> bool:
        """Flag a running run; its executor notices within a second and stops it."""
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE runs SET stop_requested = 1 WHERE run_id = ? AND status = 'running'",
                    (run_id,),
                ).rowcount
                == 1
            )

    def set_progress(self, run_id: str, percent: float | None, message: str | None) -> bool:
        """Record progress of a running run; False when it is not running."""
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE runs SET progress_percent = COALESCE(?, progress_percent), "
                    "progress_message = COALESCE(?, progress_message) "
                    "WHERE run_id = ? AND status = 'running'",
                    (percent, message, run_id),
                ).rowcount
                == 1
            )

    def recent_finished(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently created finished runs, newest first."""
        marks = ", ".join("?" for _ in FINISHED_STATUSES)
        rows = self._db.execute(
            f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY seq DESC LIMIT ?",
            (*FINISHED_STATUSES, limit),
        ).fetchall()
        return [_row_to_run(row) for row in rows]

    def next_due_at(self, *, retries_only: bool = False) -> float | None:
        """When the next pending run (or only a retry of a started one) may start."""
        extra = " AND attempt > 0" if retries_only else ""
        row = self._db.execute(
            f"SELECT MIN(due_at) FROM runs WHERE status = 'pending'{extra}"
        ).fetchone()
        return row[0]

    def update_run(self, run_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{key} = :{key}" for key in fields)
        self._write(
            f"UPDATE runs SET {assignments} WHERE run_id = :run_id", {**fields, "run_id": run_id}
        )

    # --- per-job state ----------------------------------------------------------------------

    def job_states(self) -> dict[str, dict[str, Any]]:
        """Per job: its state row's fields (if it has run) and ``next_run`` (if planned)."""
        states = {
            row["job_name"]: dict(row)
            for row in self._db.execute("SELECT * FROM job_state").fetchall()
        }
        for name, next_run in self._db.execute("SELECT job_name, next_run FROM job_plan"):
            states.setdefault(name, {})["next_run"] = next_run
        return states

    def job_state(self, job_name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM job_state WHERE job_name = ?", (job_name,)).fetchone()
        return dict(row) if row else None

    def save_job_state(self, state: dict[str, Any]) -> None:
        """Within the caller's transaction if one is open, else in one of its own."""
        if self._db.in_transaction:
            self._save_job_state(state)
            return
        with self.transaction():
            self._save_job_state(state)

    def _save_job_state(self, state: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO job_state (job_name, last_run, last_status, error_count, notified) "
            "VALUES (:job_name, :last_run, :last_status, :error_count, :notified) "
            "ON CONFLICT (job_name) DO UPDATE SET last_run = :last_run, "
            "last_status = :last_status, error_count = :error_count, notified = :notified",
            {"notified": 0, **{k: v for k, v in state.items() if k != "next_run"}},
        )

    def end_if_pending(self, run_id: str, status: str, error: str | None, now: float) -> bool:
        """A pending run ends with ``status`` without another attempt; False if it had
        already started again or finished."""
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), "
                "ended_at = COALESCE(ended_at, ?) WHERE run_id = ? AND status = 'pending'",
                (status, error, now, run_id),
            ).rowcount
        return changed == 1

    def set_next_runs(self, next_runs: dict[str, str | None]) -> None:
        """Remember each job's planned next run, for ``list``, ``next`` and catch-up."""
        if not next_runs:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO job_plan (job_name, next_run) VALUES (?, ?) "
                "ON CONFLICT (job_name) DO UPDATE SET next_run = excluded.next_run",
                list(next_runs.items()),
            )

    def set_next_run(self, job_name: str, next_run: str | None, db: sqlite3.Connection) -> None:
        """``set_next_runs`` for one job inside the caller's transaction (with its new run)."""
        db.execute(
            "INSERT INTO job_plan (job_name, next_run) VALUES (?, ?) "
            "ON CONFLICT (job_name) DO UPDATE SET next_run = excluded.next_run",
            (job_name, next_run),
        )

    # --- flags --------------------------------------------------------------------------------

    def is_paused(self) -> bool:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'paused'").fetchone()
        return row is not None and row[0] == "1"

    def set_paused(self, paused: bool) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('paused', ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                ("1" if paused else "0",),
            )

    def delete_finished_before(self, cutoff: float) -> int:
        """Forget finished runs that ended before ``cutoff``; pending and running ones stay."""
        marks = ", ".join("?" for _ in FINISHED_STATUSES)
        with self.transaction() as db:
            return db.execute(
                f"DELETE FROM runs WHERE status IN ({marks}) "
                "AND COALESCE(ended_at, created_at) < ?",
                (*FINISHED_STATUSES, cutoff),
            ).rowcount


class _Transaction:
    """``Store.transaction()``; a class because contextlib costs a millisecond at start-up."""

    __slots__ = ("store",)

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        db = self.store._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write the state database {self.store.path}: {exc}") from exc
        return db

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        db = self.store._db
        # Some errors (a full disk) end the transaction by themselves: nothing to roll back.
        if kind is not None:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"cannot write the state database {self.store.path}: {exc}") from exc
