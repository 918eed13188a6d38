"""``doctor``'s side of the SQLite file: checking it without changing it, moving it aside, and
naming who else has it open.

The check opens the file read-only, so it neither creates a missing database nor upgrades an
older one; a damaged file is renamed, never deleted, with its ``-wal`` and ``-shm`` files.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from urllib.parse import quote

from batch_runner.errors import DamagedState
from batch_runner.state.sqlite import schema

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The most problems ``integrity_check`` lists; the first says enough, the rest show the extent.
_MAX_PROBLEMS = 5


class DatabaseHealth:
    """What the check found: ``problems`` (sentences, empty when healthy), ``damaged`` (moving
    the file aside and rebuilding it is the cure), ``version``, ``unwritten`` (lines kept back),
    and ``notes`` (true and harmless)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.damaged = False
        self.version: int | None = None
        self.unwritten = 0


def check_database(path: str) -> DatabaseHealth:
    health = DatabaseHealth()
    if not os.path.exists(path):
        health.notes.append(f"there is no state database {path} yet: nothing has run here")
        return health
    try:
        db = _open_read_only(path)
        try:
            _check(db, path, health)
        finally:
            db.close()
    except sqlite3.Error as exc:
        error = schema.storage_error(path, exc, "read")
        health.problems.append(str(error))
        health.damaged = isinstance(error, DamagedState)
    return health


def _open_read_only(path: str) -> sqlite3.Connection:
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=schema.BUSY_TIMEOUT_SECONDS, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout = {int(schema.BUSY_TIMEOUT_SECONDS * 1000)}")
    return db


def _check(db: sqlite3.Connection, path: str, health: DatabaseHealth) -> None:
    found = [row[0] for row in db.execute(f"PRAGMA integrity_check({_MAX_PROBLEMS})")]
    if found != ["ok"]:
        health.damaged = True
        health.problems.append(str(schema.damaged_error(path, "; ".join(found))))
        return
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = _version(db) if "meta" in tables else None
    if version is None:
        health.damaged = True
        health.problems.append(str(schema.damaged_error(path, "it has no schema version")))
        return
    health.version = version
    if health.version > schema.SCHEMA_VERSION:
        health.problems.append(
            f"the state database {path} has schema version {health.version}, newer than this "
            f"batch_runner understands ({schema.SCHEMA_VERSION}); upgrade batch_runner"
        )
        return
    note = f"the state database {path} passes the integrity check (schema version {version}"
    upgrade = ", upgraded at the next write" if health.version < schema.SCHEMA_VERSION else ""
    health.notes.append(note + upgrade + ")")
    if "unwritten_results" in tables:
        health.unwritten = int(db.execute("SELECT COUNT(*) FROM unwritten_results").fetchone()[0])


def _version(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None and str(row[0]).isdigit() else None


def read_kept_lines(path: str) -> list[dict[str, Any]] | None:
    """The result lines kept back in a (damaged) database, as far as they can be read; None
    when they cannot be."""
    try:
        db = _open_read_only(path)
        try:
            rows = db.execute(
                "SELECT run_id, started_at, record FROM unwritten_results ORDER BY seq"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    kept = []
    for run_id, started_at, text in rows:
        try:
            record, started = json.loads(text), float(started_at)
        except (TypeError, ValueError):
            continue  # a damaged row: nothing to write back
        if isinstance(record, dict):
            kept.append({"run_id": run_id, "started_at": started, "record": record})
    return kept


def move_aside(path: str, now: float) -> str:
    """Rename the database to ``<path>.damaged-YYYYMMDD-HHMMSS`` and return that name.

    Its ``-wal`` goes first: a new database at ``path`` must never meet the old one's log, which
    SQLite could replay into it.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    target, number = f"{path}.damaged-{stamp}", 1
    while any(os.path.lexists(target + suffix) for suffix in ("", "-wal", "-shm")):
        number += 1
        target = f"{path}.damaged-{stamp}-{number}"
    for suffix in ("-wal", "-shm", ""):
        if os.path.lexists(path + suffix):
            os.rename(path + suffix, target + suffix)
    return target


def lock_holders(path: str) -> list[int]:
    """The pids of the other processes that hold the lock at ``path`` shared, as far as
    ``/proc/locks`` tells (empty where it does not)."""
    try:
        inode = str(os.stat(path, follow_symlinks=False).st_ino)
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            rows = [line.split() for line in locks]
    except OSError:
        return []
    pids = set()
    for row in rows:
        # "1: FLOCK ADVISORY READ <pid> <major>:<minor>:<inode> 0 EOF"; a waiter's has "->".
        held = len(row) >= 6 and row[1:4] == ["FLOCK", "ADVISORY", "READ"] and row[4].isdigit()
        if held and row[5].rpartition(":")[2] == inode and int(row[4]) not in (0, os.getpid()):
            pids.add(int(row[4]))
    return sorted(pids)


def opened_by_others(path: str) -> list[int]:
    """The pids of the other processes that have the database (or its ``-wal``) open, as far
    as ``/proc/*/fd`` tells: those whose folders this process may read."""
    wanted = {os.path.realpath(path), os.path.realpath(path) + "-wal"}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        if pid != os.getpid() and _has_open(pid, wanted):
            found.append(pid)
    return sorted(found)


def _has_open(pid: int, wanted: set[str]) -> bool:
    fds = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False  # gone, or not this user's to read
    for name in names:
        try:
            if os.readlink(f"{fds}/{name}") in wanted:
                return True
        except OSError:
            continue  # closed meanwhile
    return False
