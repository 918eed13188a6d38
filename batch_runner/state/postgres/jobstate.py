"""Per-job state and plans, the pause flag, and the result lines this host's JSONL could not
take, on the cluster's database (see ``Store`` for what each operation means).

The state and plans are the cluster's, shared by every host; the unwritten lines are each
host's own (``unwritten.host``), as each host appends only to its own JSONL files.
"""

from __future__ import annotations

import json

from psycopg.types.json import Json

from batch_runner.state.postgres.base import epoch, when
from batch_runner.state.postgres.runs import PgRuns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What ``save_job_state`` writes: the disable is written by ``disable_job`` and ``enable_job``
# only, so a state read before a disable and saved after it (a notice's) never undoes it.
_STATE_FIELDS = ("job_name", "last_run", "last_status", "error_count", "notified")


def with_epochs(row: dict[str, Any], *names: str) -> dict[str, Any]:
    """A row with its timestamptz columns ``names`` as epoch seconds, as SQLite keeps them."""
    return {**row, **{name: epoch(row[name]) for name in names if name in row}}


def _line_json(record: dict[str, Any]) -> str:
    text = json.dumps(record, ensure_ascii=False, default=str)
    if "\\u0000" in text:
        # jsonb refuses \u0000 (a job's output may hold NUL): U+FFFD, as in a run's row.
        text = json.dumps(_without_nul(json.loads(text)), ensure_ascii=False)
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


class PgJobState(PgRuns):
    """Everything of the store but the runs and the service's access."""

    # --- per-job state ----------------------------------------------------------------------

    def job_states(self) -> dict[str, dict[str, Any]]:
        states = {
            row["job_name"]: with_epochs(row, "disabled_at")
            for row in self._read("SELECT * FROM batch_runner.job_state")
        }
        for row in self._read("SELECT job_name, next_run FROM batch_runner.job_plan"):
            states.setdefault(row["job_name"], {})["next_run"] = row["next_run"]
        return states

    def job_state(self, job_name: str) -> dict[str, Any] | None:
        row = self._first("SELECT * FROM batch_runner.job_state WHERE job_name = %s", (job_name,))
        return with_epochs(row, "disabled_at") if row else None

    def save_job_state(self, state: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO batch_runner.job_state (job_name, last_run, last_status, error_count, "
            "notified) VALUES (%(job_name)s, %(last_run)s, %(last_status)s, %(error_count)s, "
            "%(notified)s) ON CONFLICT (job_name) DO UPDATE SET last_run = EXCLUDED.last_run, "
            "last_status = EXCLUDED.last_status, error_count = EXCLUDED.error_count, "
            "notified = EXCLUDED.notified",
            {
                "last_run": None,
                "last_status": None,
                "error_count": 0,
                "notified": 0,
                **{k: v for k, v in state.items() if k in _STATE_FIELDS},
            },
        )

    def disable_job(self, job_name: str, reason: str, at: float) -> None:
        self._write(
            "UPDATE batch_runner.job_state SET disabled_reason = %s, disabled_at = %s "
            "WHERE job_name = %s",
            (reason, when(at), job_name),
        )

    def enable_job(self, job_name: str) -> dict[str, Any] | None:
        with self._joined():
            row = self._first(
                "SELECT * FROM batch_runner.job_state WHERE job_name = %s "
                "AND disabled_at IS NOT NULL FOR UPDATE",
                (job_name,),
            )
            if row is None:
                return None
            self._write(
                "UPDATE batch_runner.job_state SET disabled_reason = NULL, disabled_at = NULL, "
                "error_count = 0 WHERE job_name = %s",
                (job_name,),
            )
        return with_epochs(row, "disabled_at")

    def set_next_runs(self, next_runs: dict[str, str | None]) -> None:
        if not next_runs:
            return
        # One statement for every job; last_scheduled_for is the schedulers' and stays.
        self._write(
            "INSERT INTO batch_runner.job_plan (job_name, next_run) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (job_name) DO UPDATE SET next_run = EXCLUDED.next_run",
            (list(next_runs), list(next_runs.values())),
        )

    def set_next_run(self, job_name: str, next_run: str | None) -> None:
        self.set_next_runs({job_name: next_run})

    # --- flags --------------------------------------------------------------------------------

    def is_paused(self) -> bool:
        return bool(self._value("SELECT value FROM batch_runner.flags WHERE name = 'paused'"))

    def set_paused(self, paused: bool) -> None:
        with self._joined():
            self._write(
                "INSERT INTO batch_runner.flags (name, value) VALUES ('paused', %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                (int(paused),),
            )
            if not paused:
                self.dispatch_due()  # what waited for the resume goes out with it

    # --- result lines this host's JSONL could not take ----------------------------------------

    def remember_unwritten(
        self, run_id: str | None, started_at: float, record: dict[str, Any]
    ) -> None:
        self._write(
            "INSERT INTO batch_runner.unwritten (host, run_id, started_at, record) "
            "VALUES (%s, %s, %s, %s)",
            (self.host, run_id, started_at, Json(record, dumps=_line_json)),
        )

    def has_unwritten(self) -> bool:
        return (
            self._first(
                "SELECT 1 FROM batch_runner.unwritten WHERE host = %s LIMIT 1", (self.host,)
            )
            is not None
        )

    def unwritten(self) -> list[dict[str, Any]]:
        return self._read(
            "SELECT seq, run_id, started_at, record FROM batch_runner.unwritten "
            "WHERE host = %s ORDER BY seq",
            (self.host,),
        )

    def forget_unwritten(self, seq: int) -> bool:
        # The row's lock, held to the caller's commit, keeps a second process of this host
        # from appending the same line: its DELETE waits, then finds nothing.
        cursor = self._write(
            "DELETE FROM batch_runner.unwritten WHERE seq = %s AND host = %s", (seq, self.host)
        )
        return cursor.rowcount == 1
