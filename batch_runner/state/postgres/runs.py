"""The queue of runs on the cluster's database (see ``Store`` for what each operation means).

A run enters the queue, and a slot of its lane frees, in the same transaction that hands the
lane's next due run to a worker (``ClusterOps.dispatch_due``): nothing waits for a poll to
start. Times leave as epoch seconds, text is compared and ordered byte by byte as SQLite does,
and NULLs sort as SQLite sorts them, so both backends answer every question alike.
"""

from __future__ import annotations

from batch_runner.errors import StorageError
from batch_runner.state.postgres.base import epoch, run_columns, run_from_row, when
from batch_runner.state.postgres.cluster import ClusterOps
from batch_runner.state.store import FINISHED_STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

_FINISHED = list(FINISHED_STATUSES)
# A writer between its first change and its commit: it has moved the data_version sequence
# already (a sequence is not transactional) while what it changed cannot be read yet.
_WRITER_IN_FLIGHT = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'relation' "
    "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid() "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND relation IN ('batch_runner.runs'::regclass, 'batch_runner.job_state'::regclass, "
    "'batch_runner.flags'::regclass))"
)


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """``run_columns``, with text PostgreSQL can hold: a job's output may carry NUL bytes,
    which a text column refuses (the whole end of the run with it); they become U+FFFD, the
    mark the output's decoding leaves for bytes it cannot read."""
    columns = run_columns(fields)
    for name, value in columns.items():
        if isinstance(value, str) and "\x00" in value:
            columns[name] = value.replace("\x00", "\ufffd")
    return columns


class RunTakenOver(StorageError):
    """The end of an attempt the sweep had already ended (``ClusterOps.fences``)."""


class PgRuns(ClusterOps):
    """Runs and the queue."""

    _unsettled = 0  # the last number data_version handed out while a writer was in flight

    def insert_run(self, run: dict[str, Any]) -> None:
        # lane: SQLite's column default, which the cluster's table does not repeat.
        columns = _columns({"lane": "default", **run})
        names = ", ".join(columns)
        marks = ", ".join(f"%({name})s" for name in columns)
        sql = f"INSERT INTO batch_runner.runs ({names}) VALUES ({marks})"
        if run["status"] != "pending":
            self._write(sql, columns)
            return
        with self._joined():  # accepted and, if due with a slot free, handed out: one commit
            self._write(sql, columns)
            self.dispatch_due(columns["lane"])

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._first("SELECT * FROM batch_runner.runs WHERE run_id = %s", (run_id,))
        return run_from_row(row) if row else None

    def find_runs(self, prefix: str) -> list[dict[str, Any]]:
        if not prefix.strip():
            return []  # every id starts with "": that is no id at all, not an ambiguous one
        # starts_with, not a range of run_id: a database's collation may not sort bytewise.
        rows = self._read(
            "SELECT * FROM batch_runner.runs WHERE starts_with(run_id, %s) ORDER BY seq LIMIT 2",
            (prefix,),
        )
        return [run_from_row(row) for row in rows]

    def run_extras(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = self._read(
            "SELECT run_id, priority, attempt, progress_percent, progress_message "
            "FROM batch_runner.runs WHERE run_id = ANY(%s)",
            (list(run_ids),),
        )
        return {row["run_id"]: row for row in rows}

    def active_run_of_job(self, job_name: str) -> dict[str, Any] | None:
        if self.in_transaction:
            # Two hosts queuing the same job take turns here, each seeing the other's run once
            # committed; runs_one_active_job is only the last guard (its error a refusal).
            self._first(
                "SELECT pg_advisory_xact_lock(hashtext('batch_runner.job:' || %s))", (job_name,)
            )
        # kind: an ad-hoc run's job_name is its label (or "adhoc"), which a job may share.
        row = self._first(
            "SELECT * FROM batch_runner.runs WHERE job_name = %s AND kind = 'job' "
            "AND status IN ('pending', 'reserved', 'running') ORDER BY seq LIMIT 1",
            (job_name,),
        )
        return run_from_row(row) if row else None

    def runs_with_status(self, *statuses: str, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT * FROM batch_runner.runs WHERE status = ANY(%s) "
            "ORDER BY CASE status WHEN 'running' THEN 0 WHEN 'reserved' THEN 1 ELSE 2 END, "
            "priority DESC, due_at, seq LIMIT %s",
            (list(statuses), limit),
        )
        return [run_from_row(row) for row in rows]

    def recent_finished(self, limit: int) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT * FROM batch_runner.runs WHERE status = ANY(%s) ORDER BY seq DESC LIMIT %s",
            (_FINISHED, max(limit, 0)),
        )
        return [run_from_row(row) for row in rows]

    def list_runs(
        self,
        *,
        statuses: Sequence[str] | None = None,
        job: str | None = None,
        tag: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(list(statuses))
        for clause, value in (
            ("job_name = %s", job),
            # One element equal to the tag: "ab" is no match for the tag "a", nor "a" for "ab".
            ("tags @> jsonb_build_array(%s::text)", tag),
            ("created_at >= %s", when(since)),
            ("created_at < %s", when(until)),
            ("seq < %s", before_seq),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        rows = self._read(
            f"SELECT * FROM batch_runner.runs WHERE {' AND '.join(clauses)} "
            "ORDER BY seq DESC LIMIT %s",
            (*params, max(limit, 0)),
        )
        return [run_from_row(row) for row in rows]

    # --- what waits -----------------------------------------------------------------------------

    def count_pending(self) -> int:
        return int(
            self._value(
                "SELECT count(*) FROM batch_runner.runs WHERE status IN ('pending', 'reserved')"
            )
        )

    def next_due_at(self, *, retries_only: bool = False, lane: str | None = None) -> float | None:
        where, params = "status IN ('pending', 'reserved')", []
        if retries_only:
            where += " AND attempt > 0"
        if lane is not None:
            where += " AND lane = %s"
            params.append(lane)
        return epoch(
            self._value(f"SELECT min(due_at) FROM batch_runner.runs WHERE {where}", params)
        )

    def pending_by_lane(self) -> dict[str, int]:
        rows = self._read(
            "SELECT lane, count(*) AS n FROM batch_runner.runs "
            "WHERE status IN ('pending', 'reserved') GROUP BY lane"
        )
        return {row["lane"]: int(row["n"]) for row in rows}

    def count_due(self, lane: str, now: float, limit: int) -> int:
        return int(
            self._value(
                "SELECT count(*) FROM (SELECT 1 FROM batch_runner.runs WHERE lane = %s "
                "AND status = 'pending' AND due_at <= %s LIMIT %s) AS due",
                (lane, when(now), max(limit, 0)),
            )
        )

    def lanes_waiting(self, now: float) -> list[tuple[str, int, float]]:
        # NULLS LAST: a lane with nothing due ranks after every lane with something due, as
        # SQLite sorts a NULL below any number.
        rows = self._read(
            "SELECT lane, count(*) FILTER (WHERE due_at <= %(now)s) AS due, min(due_at) AS first "
            "FROM batch_runner.runs WHERE status IN ('pending', 'reserved') GROUP BY lane "
            "ORDER BY max(priority) FILTER (WHERE due_at <= %(now)s) DESC NULLS LAST, "
            'min(due_at), lane COLLATE "C"',
            {"now": when(now)},
        )
        return [(row["lane"], int(row["due"]), epoch(row["first"]) or 0.0) for row in rows]

    def data_version(self) -> int:
        row = self._first("SELECT last_value, is_called FROM batch_runner.data_version")
        version = int(row["last_value"]) if row and row["is_called"] else 0
        # Read after the sequence: once no writer holds a lock, every change it counts is
        # committed. Until then each call says "changed" (a number never handed out before),
        # so the caller reads again after the commit rather than settle on what it saw.
        if self._value(_WRITER_IN_FLIGHT):
            self._unsettled -= 1
            return self._unsettled
        return version

    # --- a run's changes ------------------------------------------------------------------------

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        columns = _columns(fields)
        assignments = ", ".join(f"{name} = %({name})s" for name in columns)
        sql = f"UPDATE batch_runner.runs SET {assignments} WHERE run_id = %(where_run_id)s"
        params = {**columns, "where_run_id": run_id}
        fence = self.fences.get(run_id)
        if fence is not None:
            # Only while this attempt still runs here: a sweep may have ended it meanwhile
            # (this worker was frozen, or cut off), and its verdict stands.
            sql += " AND status = 'running' AND attempt = %(fence_attempt)s AND host = %(host)s"
            params.update(fence_attempt=fence, host=self.host)
        if fields.get("status") in (None, "running", "reserved"):
            self._write(sql, params)
            return
        # Ended, or pending again for a retry: its slot goes to the lane's next due run in the
        # same commit.
        with self._joined():
            row = self._first(sql + " RETURNING lane", params, doing="write to")
            if row is None and fence is not None:
                raise RunTakenOver(
                    f"run {run_id} was ended by another host while its attempt {fence} ran "
                    "here (its worker had stopped answering); this end is not recorded"
                )
            if row is not None:
                self.release_slot(run_id)
                self.dispatch_due(row["lane"])

    def end_if_pending(
        self,
        run_id: str,
        status: str,
        error: str | None,
        now: float,
        started: Callable[[dict[str, Any]], bool] | None = None,
    ) -> bool:
        # started: how one host tells a reserved run its runner started; here a reserved run
        # is one whose procrastinate job no worker has fetched yet, or it is not ours to end.
        with self._joined():
            row = self._first(
                "SELECT * FROM batch_runner.runs WHERE run_id = %s "
                "AND status IN ('pending', 'reserved') FOR UPDATE",
                (run_id,),
            )
            if row is None:
                return False
            run = run_from_row(row)
            if run["status"] == "reserved" and not self.cancel_dispatched(run):
                return False  # a worker has it: it is starting (``stop`` it instead)
            self._write(
                "UPDATE batch_runner.runs SET status = %s, error = COALESCE(%s, error), "
                "end_time = COALESCE(end_time, %s), reserved_at = NULL WHERE run_id = %s",
                (status, error, when(now), run_id),
            )
            if run["status"] == "reserved":
                self.release_slot(run_id)
                self.dispatch_due(run["lane"])
        return True

    def request_stop(self, run_id: str) -> bool:
        # running only: a reserved run has not started on any worker (end_if_pending ends it).
        cursor = self._write(
            "UPDATE batch_runner.runs SET stop_requested = true WHERE run_id = %s "
            "AND status = 'running'",
            (run_id,),
        )
        return cursor.rowcount == 1

    def set_progress(self, run_id: str, percent: float | None, message: str | None) -> bool:
        cursor = self._write(
            "UPDATE batch_runner.runs SET progress_percent = COALESCE(%s, progress_percent), "
            "progress_message = COALESCE(%s, progress_message) "
            "WHERE run_id = %s AND status = 'running'",
            (percent, message, run_id),
        )
        return cursor.rowcount == 1

    def delete_finished_before(self, cutoff: float) -> int:
        cursor = self._write(
            "DELETE FROM batch_runner.runs WHERE status = ANY(%s) "
            "AND COALESCE(end_time, created_at) < %s",
            (_FINISHED, when(cutoff)),
        )
        return cursor.rowcount
