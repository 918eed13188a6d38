"""Reservations on SQLite: a slot's next run, taken while the slot's current run runs
(``runs.handoff`` says how a reserved run starts, and what tells that it has)."""

from __future__ import annotations

import sqlite3

from batch_runner.state.sqlite.access import Access
from batch_runner.state.sqlite.connection import row_to_run
from batch_runner.state.sqlite.schema import storage_error

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Reservations(Access):
    """See ``Store`` for what each operation means."""

    def reserve_next(
        self, now: float, owner_pid: int, host: str, *, lane: str, slot: int, limit: int = 1
    ) -> list[dict[str, Any]]:
        cursor = self._write(
            "UPDATE runs SET status = 'reserved', reserved_at = :now, owner_pid = :owner, "
            "host = :host, slot = :slot WHERE seq IN (SELECT seq FROM runs "
            "INDEXED BY runs_waiting_lane WHERE lane = :lane AND status = 'pending' "
            "AND due_at <= :now AND NOT EXISTS "
            "(SELECT 1 FROM meta WHERE key = 'paused' AND value = '1') "
            "ORDER BY priority DESC, due_at, seq LIMIT :limit) RETURNING *",
            {
                "lane": lane,
                "slot": slot,
                "now": now,
                "owner": owner_pid,
                "host": host,
                "limit": limit,
            },
        )
        try:
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "write") from exc
        runs = [row_to_run(row) for row in rows]
        # RETURNING gives no order: the order they start in is the claim's.
        runs.sort(key=lambda run: (-run["priority"], run["due_at"], run["seq"]))
        return runs

    def start_reserved(self, run: dict[str, Any], owner_pid: int, pgid: int | None = None) -> bool:
        return (
            self._write(
                "UPDATE runs SET status = 'running', attempt = :attempt, started_at = :started, "
                "ended_at = NULL, pgid = :pgid, exit_code = NULL, error = NULL, "
                "log_file = :log, reserved_at = NULL "
                "WHERE run_id = :id AND status = 'reserved' AND owner_pid = :owner",
                {
                    "attempt": run["attempt"],
                    "started": run["started_at"],
                    "pgid": pgid,
                    "log": run["log_file"],
                    "id": run["run_id"],
                    "owner": owner_pid,
                },
            ).rowcount
            == 1
        )

    def release_reserved(self, run_id: str, owner_pid: int | None = None) -> bool:
        return (
            self._write(
                "UPDATE runs SET status = 'pending', reserved_at = NULL, owner_pid = NULL, "
                "host = NULL, slot = NULL WHERE run_id = ? AND status = 'reserved' "
                "AND (? IS NULL OR owner_pid = ?)",
                (run_id, owner_pid, owner_pid),
            ).rowcount
            == 1
        )

    def reservation_holds(self, run: dict[str, Any], owner_pid: int, now: float) -> bool:
        row = self._first(
            "SELECT EXISTS (SELECT 1 FROM runs WHERE run_id = :id AND status = 'reserved' "
            "AND owner_pid = :owner) AND NOT EXISTS (SELECT 1 FROM meta "
            "WHERE key = 'paused' AND value = '1') AND NOT EXISTS (SELECT 1 FROM runs "
            "INDEXED BY runs_waiting_lane WHERE lane = :lane AND status = 'pending' "
            "AND due_at <= :now AND (priority > :priority OR (priority = :priority "
            "AND (due_at < :due OR (due_at = :due AND seq < :seq)))))",
            {
                "id": run["run_id"],
                "owner": owner_pid,
                "lane": run["lane"],
                "now": now,
                "priority": run["priority"],
                "due": run["due_at"],
                "seq": run["seq"],
            },
        )
        return bool(row and row[0])

    def data_version(self) -> int:
        try:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "read") from exc
