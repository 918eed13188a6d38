"""The SQLite database file: its schema, its version, opening it, and its transactions.

One file in WAL mode under the log dir, shared by every batch_runner process. The schema is
created with ``IF NOT EXISTS`` under a lock file, and a database of a newer schema than this
code knows is refused rather than misread. Every error SQLite raises, reading or writing,
leaves here as a ``StorageError`` naming the file (``storage_error``).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3

from batch_runner.errors import DamagedState, StorageError
from batch_runner.files import make_private_dirs

SCHEMA_VERSION = 7
# How long a statement waits for another process's lock before it fails.
BUSY_TIMEOUT_SECONDS = 30.0

# Result lines the JSONL could not take (a full disk), kept until they are appended: a table,
# not a column of runs, as one run can leave several (an attempt, then its retry) and a skipped
# occurrence leaves one without any run row.
_UNWRITTEN = """
CREATE TABLE IF NOT EXISTS unwritten_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    started_at REAL NOT NULL,
    record TEXT NOT NULL
)"""

# The claim's index: a lane's waiting runs in the order they start.
_WAITING_IN_LANE = """
CREATE INDEX IF NOT EXISTS runs_waiting_lane ON runs (lane, priority DESC, due_at, seq)
    WHERE status = 'pending'"""

# Whether a named job already waits or runs (a reserved run is taken, not started yet).
_ACTIVE_JOB = """
CREATE INDEX IF NOT EXISTS runs_active_job ON runs (job_name)
    WHERE status IN ('pending', 'reserved', 'running')"""

# The service's API tokens (the sha256 of each secret, never the secret: ``state.tokens``); a
# revoked one stays listed, its name free for a new token.
_TOKENS = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
)"""

# The dashboard's signed-in browsers: the hash of each cookie, the token it signed in with.
_SESSIONS = """
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    token_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
)"""

# Every change made through the service or to the tokens: who, what, which run, from where.
_AUDIT = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    scope TEXT,
    action TEXT NOT NULL,
    run_id TEXT,
    job_name TEXT,
    remote TEXT,
    detail TEXT
)"""
_AUDIT_OF_RUN = "CREATE INDEX IF NOT EXISTS audit_run ON audit (run_id)"

# A job's runs newest first (its history page) without reading every other job's on the way.
_RUNS_OF_JOB = "CREATE INDEX IF NOT EXISTS runs_job ON runs (job_name, seq)"

# How to bring a database of version N up to N + 1: columns to add, as (table, column, type),
# or a statement that may run twice (an upgrade cut short is done again from its start).
_MIGRATIONS: dict[int, list[tuple[str, str, str] | str]] = {
    1: [("runs", "attempt_status", "TEXT")],
    2: [_UNWRITTEN],
    # Lanes: a run waits in its lane and runs in one of the lane's slots. The version bump
    # also keeps an older binary (which knows one executor lock only) off a database with lanes.
    3: [
        ("runs", "lane", "TEXT NOT NULL DEFAULT 'default'"),
        ("runs", "slot", "INTEGER"),
        _WAITING_IN_LANE,
    ],
    # The next run of a slot is reserved while the slot's current run runs (``reserved``,
    # ``reserved_at``). An older binary would neither start nor reap such a run: it must not
    # open the database at all.
    4: [
        ("runs", "reserved_at", "REAL"),
        "DROP INDEX IF EXISTS runs_active_job",
        _ACTIVE_JOB,
    ],
    # disable_after: why and when the job's failures took it off the schedule (NULL: they
    # did not). An older binary would queue such a job as ever: it must not open the database.
    5: [("job_state", "disabled_reason", "TEXT"), ("job_state", "disabled_at", "REAL")],
    # The service: tokens, sessions, the audit trail, and a run's tags (a JSON list of
    # strings, NULL when none).
    6: [
        ("runs", "tags", "TEXT"),
        _TOKENS,
        _SESSIONS,
        _AUDIT,
        _AUDIT_OF_RUN,
        _RUNS_OF_JOB,
    ],
}

# SQLite's primary result codes (the low byte of an extended one) that mean the file is
# damaged or is no database at all: retrying cannot help, moving it aside can.
_DAMAGED_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_LOCKED_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED

SCHEMA = """
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
    attempt_status TEXT,
    lane TEXT NOT NULL DEFAULT 'default',
    slot INTEGER,
    reserved_at REAL,
    tags TEXT
);
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (priority DESC, due_at, seq)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq);
CREATE TABLE IF NOT EXISTS job_state (
    job_name TEXT PRIMARY KEY,
    last_run TEXT,
    last_status TEXT,
    error_count INTEGER NOT NULL DEFAULT 0,
    notified INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    disabled_at REAL
);
CREATE TABLE IF NOT EXISTS job_plan (job_name TEXT PRIMARY KEY, next_run TEXT);
"""
SCHEMA += (
    ";\n".join(
        (
            _UNWRITTEN,
            _WAITING_IN_LANE,
            _ACTIVE_JOB,
            _TOKENS,
            _SESSIONS,
            _AUDIT,
            _AUDIT_OF_RUN,
            _RUNS_OF_JOB,
        )
    )
    + ";\n"
)


def storage_error(path: str, exc: sqlite3.Error, doing: str) -> StorageError:
    """The one sentence for an SQLite error while ``doing`` (open, read, write) ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in _DAMAGED_CODES:
        return damaged_error(path, str(exc))
    if code in _LOCKED_CODES:
        return StorageError(
            f"cannot {doing} the state database {path}: another process kept it locked for "
            f"over {BUSY_TIMEOUT_SECONDS:g} s ({exc})"
        )
    return StorageError(f"cannot {doing} the state database {path}: {exc}")


def connect(path: str, *, durable: bool) -> sqlite3.Connection:
    """The database at ``path`` (created 0600 with its folder if missing), schema up to date."""
    try:
        make_private_dirs(os.path.dirname(path))  # the log dir too: 0700, whatever the umask
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        # FULL syncs every commit: a `queue add` must survive power loss once it returns.
        # The executor's bookkeeping may lose its last write; that is recovered as
        # `interrupted` at the next start.
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        _ensure_schema(db, path)
    except sqlite3.Error as exc:
        raise storage_error(path, exc, "open") from exc
    except OSError as exc:
        raise StorageError(f"cannot create the state database {path}: {exc.strerror}") from exc
    return db


def damaged_error(path: str, reason: str) -> DamagedState:
    return DamagedState(
        f"the state database {path} is damaged ({reason}); move it aside and rebuild it from "
        "the JSONL results with `batch_runner doctor --repair`: they hold every finished run "
        "and each job's last status, while runs still waiting in the queue, the queue's pause "
        "and the planned next runs are lost"
    )


def _ensure_schema(db: sqlite3.Connection, path: str) -> None:
    if _schema_version(db, path) == SCHEMA_VERSION:
        return
    # Creating or upgrading the database is the one step two processes (or the scheduler's
    # two threads) must not race on: switching to WAL does not wait for a busy handler.
    guard = os.open(path + ".init-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        version = _schema_version(db, path)
        if version is not None:
            _migrate(db, path, version)
            return
        if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise StorageError(f"cannot switch the state database {path} to WAL mode")
        with Transaction(db, path):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
    finally:
        os.close(guard)


def _migrate(db: sqlite3.Connection, path: str, version: int) -> None:
    with Transaction(db, path):
        for step in range(version, SCHEMA_VERSION):
            for change in _MIGRATIONS[step]:
                if isinstance(change, str):
                    db.execute(change)
                    continue
                table, column, kind = change
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:  # an upgrade cut short may have added it
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def _schema_version(db: sqlite3.Connection, path: str) -> int | None:
    """The database's schema version; None when it is new; refuses a newer one."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None  # a new database: no meta table yet
        raise  # locked, say: never taken for a new database
    if row is None:
        return None
    if not str(row[0]).isdigit():
        raise damaged_error(path, f"its schema version {row[0]!r} is no number")
    if int(row[0]) > SCHEMA_VERSION:
        raise StorageError(
            f"the state database {path} has schema version {row[0]}, newer than "
            f"this batch_runner understands ({SCHEMA_VERSION}); upgrade batch_runner"
        )
    return int(row[0])


class Transaction:
    """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, never mid-way.

    Commits at the end of the ``with`` block, rolls back on an exception. Opened inside
    another, it is a savepoint of it: undone alone on an exception, committed with it. A class
    because contextlib costs a millisecond at start-up.
    """

    __slots__ = ("db", "nested", "path")

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db, self.path = db, path
        self.nested = False

    def __enter__(self) -> None:
        try:
            if self.db.in_transaction:
                # Within another (the service commits several changes at once): a savepoint,
                # so that this one's failure undoes this one only.
                self.db.execute("SAVEPOINT nested")
                self.nested = True
                return
            self.nested = False
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "write") from exc

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.nested:
            self._end_savepoint(undo=kind is not None)
            return
        # Some errors (a full disk) end the transaction by themselves: nothing to roll back.
        if kind is not None:
            self._roll_back()
            return
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._roll_back()
            raise storage_error(self.path, exc, "write") from exc

    def _end_savepoint(self, *, undo: bool) -> None:
        try:
            if undo and self.db.in_transaction:
                self.db.execute("ROLLBACK TO nested")
            if self.db.in_transaction:
                self.db.execute("RELEASE nested")
        except sqlite3.Error as exc:
            if not undo:  # when undoing, the error that ended it is the one to report
                raise storage_error(self.path, exc, "write") from exc

    def _roll_back(self) -> None:
        # Quietly: the error that ended the transaction is the one to report, not this one.
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
