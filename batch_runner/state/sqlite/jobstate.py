"""The SQLite store's per-job state and plans, its flags, and the result lines the JSONL
could not take yet (see ``Store`` for what each operation means)."""

from __future__ import annotations

import json
import sqlite3

from batch_runner.state.sqlite.connection import SqliteConnection
from batch_runner.state.sqlite.schema import storage_error

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# What ``save_job_state`` writes: the disable is written by ``disable_job`` and ``enable_job``
# only, so a state read before a disable and saved after it (a notice's) never undoes it.
_STATE_FIELDS = ("job_name", "last_run", "last_status", "error_count", "notified")


class JobStateAndFlags(SqliteConnection):
    """Everything of the store but the runs."""

    # --- per-job state ----------------------------------------------------------------------

    def job_states(self) -> dict[str, dict[str, Any]]:
        states = {row["job_name"]: dict(row) for row in self._read("SELECT * FROM job_state")}
        for name, next_run in self._read("SELECT job_name, next_run FROM job_plan"):
            states.setdefault(name, {})["next_run"] = next_run
        return states

    def job_state(self, job_name: str) -> dict[str, Any] | None:
        row = self._first("SELECT * FROM job_state WHERE job_name = ?", (job_name,))
        return dict(row) if row else None

    def save_job_state(self, state: dict[str, Any]) -> None:
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
            {"notified": 0, **{k: v for k, v in state.items() if k in _STATE_FIELDS}},
        )

    def disable_job(self, job_name: str, reason: str, at: float) -> None:
        self._write(
            "UPDATE job_state SET disabled_reason = ?, disabled_at = ? WHERE job_name = ?",
            (reason, at, job_name),
        )

    def enable_job(self, job_name: str) -> dict[str, Any] | None:
        with self.transaction():
            row = self._first(
                "SELECT * FROM job_state WHERE job_name = ? AND disabled_at IS NOT NULL",
                (job_name,),
            )
            if row is None:
                return None
            self._write(
                "UPDATE job_state SET disabled_reason = NULL, disabled_at = NULL, "
                "error_count = 0 WHERE job_name = ?",
                (job_name,),
            )
        return dict(row)

    def end_if_pending(
        self,
        run_id: str,
        status: str,
        error: str | None,
        now: float,
        started: Callable[[dict[str, Any]], bool] | None = None,
    ) -> bool:
        with self.transaction():
            if started is not None:
                row = self._first("SELECT * FROM runs WHERE run_id = ?", (run_id,))
                if row is not None and row["status"] == "reserved" and started(dict(row)):
                    return False
            changed = self._write(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), "
                "ended_at = COALESCE(ended_at, ?), reserved_at = NULL "
                "WHERE run_id = ? AND status IN ('pending', 'reserved')",
                (status, error, now, run_id),
            ).rowcount
        return changed == 1

    def set_next_runs(self, next_runs: dict[str, str | None]) -> None:
        if not next_runs:
            return
        with self.transaction():
            try:
                self._db.executemany(
                    "INSERT INTO job_plan (job_name, next_run) VALUES (?, ?) "
                    "ON CONFLICT (job_name) DO UPDATE SET next_run = excluded.next_run",
                    list(next_runs.items()),
                )
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc, "write") from exc

    def set_next_run(self, job_name: str, next_run: str | None) -> None:
        self._write(
            "INSERT INTO job_plan (job_name, next_run) VALUES (?, ?) "
            "ON CONFLICT (job_name) DO UPDATE SET next_run = excluded.next_run",
            (job_name, next_run),
        )

    # --- flags --------------------------------------------------------------------------------

    def is_paused(self) -> bool:
        row = self._first("SELECT value FROM meta WHERE key = 'paused'")
        return row is not None and row[0] == "1"

    def set_paused(self, paused: bool) -> None:
        with self._joined():
            self._write(
                "INSERT INTO meta (key, value) VALUES ('paused', ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                ("1" if paused else "0",),
            )

    # --- result lines the JSONL could not take ------------------------------------------------

    def remember_unwritten(
        self, run_id: str | None, started_at: float, record: dict[str, Any]
    ) -> None:
        sql = "INSERT INTO unwritten_results (run_id, started_at, record) VALUES (?, ?, ?)"
        line = json.dumps(record, ensure_ascii=False, default=str)
        if self._db.in_transaction:
            self._write(sql, (run_id, started_at, line))
            return
        with self.transaction():
            self._write(sql, (run_id, started_at, line))

    def has_unwritten(self) -> bool:
        return self._first("SELECT 1 FROM unwritten_results LIMIT 1") is not None

    def unwritten(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT seq, run_id, started_at, record FROM unwritten_results ORDER BY seq"
        )
        return [{**dict(row), "record": json.loads(row["record"])} for row in rows]

    def forget_unwritten(self, seq: int) -> bool:
        return self._write("DELETE FROM unwritten_results WHERE seq = ?", (seq,)).rowcount == 1
