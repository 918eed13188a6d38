"""The cluster's own operations on its database: lane slots and the hand-off of due runs to
procrastinate (``dispatch_due``), one decision per occurrence, a run's start on a worker, run
heartbeats, and the runs whose worker stopped beating (``stale_runs``, for the sweep).

A run gets a slot of its lane only once it is due and a slot is free: then, in the same
transaction, it becomes ``reserved`` and a procrastinate job is deferred for it. So a lane never
has more runs reserved or running than slots on any host, no job sits in procrastinate's queue
before it may start, and a worker that fetches a job starts it at once. Concurrent dispatchers
(every scheduler and worker, the end of every run) skip each other's locked rows: leaderless.
"""

from __future__ import annotations

import json
import os

from psycopg.types.json import Json, Jsonb

from batch_runner.state.postgres.base import PgBase, run_from_row, when

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

QUEUE = "batch_runner"
TASK = "batch_runner.attempt"
# A run whose heartbeat is older than this is its worker's to answer for, or the sweep's.
STALE_SECONDS = 10.0
STALE_ENV = "BATCH_RUNNER_STALE_SECONDS"  # another bound, 4 to 3600 s (the tests' 4 s)


def _stale_seconds(environ: dict[str, str] | os._Environ[str]) -> float:
    """The stale bound the environment sets, if it sets a sensible one; else 10 s."""
    try:
        seconds = float(environ.get(STALE_ENV) or STALE_SECONDS)
    except ValueError:
        return STALE_SECONDS
    return seconds if 4.0 <= seconds <= 3600.0 else STALE_SECONDS


STALE_SECONDS = _stale_seconds(os.environ)
# An attempt's output kept in the database for `logs` from another host, in chunks.
CHUNK_BYTES = 64 * 1024

_DEFER = (
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(%(queue)s, %(task)s, %(priority)s, "
    "NULL, NULL, %(args)s, NULL)::procrastinate_job_to_defer_v1])) AS id"
)


class ClusterOps(PgBase):
    """What only a shared database does; ``PostgresStore`` builds on it."""

    # Each lane's width, from this host's config (``sync_lanes``); a lane not configured has 1.
    lane_widths: dict[str, int] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The attempts this store's thread runs, by run id: their ends are written only while
        # the run is still theirs (``start_dispatched`` sets it, the end clears it).
        self.fences: dict[str, int] = {}

    # --- lanes and dispatch -------------------------------------------------------------------

    def sync_lanes(self, widths: dict[str, int]) -> None:
        """Make the slot rows match ``widths``: missing slots added, slots beyond a narrowed
        width retired (freed for good once their run ends)."""
        self.lane_widths = dict(widths)
        with self._joined():
            for lane, width in widths.items():
                self._ensure_slots(lane, width)

    def _ensure_slots(self, lane: str, width: int) -> None:
        self._write(
            "INSERT INTO batch_runner.lane_slots (lane, slot) SELECT %s, s "
            "FROM generate_series(0, %s - 1) AS s ON CONFLICT DO NOTHING",
            (lane, max(width, 1)),
        )
        self._write(
            "UPDATE batch_runner.lane_slots SET retired = (slot >= %s) WHERE lane = %s "
            "AND retired <> (slot >= %s)",
            (max(width, 1), lane, max(width, 1)),
        )

    def dispatch_due(self, lane: str | None = None) -> int:
        """Give each free slot of ``lane`` (of every lane with due runs: None) to the next due
        pending run, as ``reserved`` with a procrastinate job deferred for it; within the
        caller's transaction if one is open. How many runs were handed off."""
        with self._joined():
            if self._value("SELECT value FROM batch_runner.flags WHERE name = 'paused'"):
                return 0
            if lane is None:
                lanes = [
                    row["lane"]
                    for row in self._read(
                        "SELECT DISTINCT lane FROM batch_runner.runs "
                        "WHERE status = 'pending' AND due_at <= now()"
                    )
                ]
            else:
                lanes = [lane]
            return sum(self._dispatch_lane(name) for name in lanes)

    def _dispatch_lane(self, lane: str) -> int:
        free = self._free_slots(lane)
        if not free:
            return 0
        runs = self._read(
            "SELECT run_id, priority FROM batch_runner.runs WHERE lane = %s "
            "AND status = 'pending' AND due_at <= now() ORDER BY priority DESC, due_at, seq "
            "LIMIT %s FOR UPDATE SKIP LOCKED",
            (lane, len(free)),
        )
        for run, slot in zip(runs, free, strict=False):
            self._write(
                "UPDATE batch_runner.lane_slots SET run_id = %s WHERE lane = %s AND slot = %s",
                (run["run_id"], lane, slot),
            )
            job_id = self._value(
                _DEFER,
                {
                    "queue": QUEUE,
                    "task": TASK,
                    "priority": run["priority"],
                    "args": Jsonb({"run_id": run["run_id"]}),
                },
            )
            self._write(
                "UPDATE batch_runner.runs SET status = 'reserved', slot = %s, "
                "reserved_at = now(), pq_job_id = %s WHERE run_id = %s",
                (slot, job_id, run["run_id"]),
            )
        return len(runs)

    def _free_slots(self, lane: str) -> list[int]:
        self._ensure_lane(lane)
        rows = self._read(
            "SELECT slot FROM batch_runner.lane_slots WHERE lane = %s AND run_id IS NULL "
            "AND NOT retired ORDER BY slot FOR UPDATE SKIP LOCKED",
            (lane,),
        )
        return [row["slot"] for row in rows]

    def lane_has_free_slot(self, lane: str) -> bool:
        """Whether a slot of ``lane`` is free now, on any host (``run-job --no-wait``)."""
        self._ensure_lane(lane)
        return bool(
            self._value(
                "SELECT 1 FROM batch_runner.lane_slots WHERE lane = %s AND run_id IS NULL "
                "AND NOT retired LIMIT 1",
                (lane,),
            )
        )

    def _ensure_lane(self, lane: str) -> None:
        """A lane no host has made slots for (a run queued before its lane was removed, or a
        command before any scheduler started) gets them now, of this config's width."""
        if not self._value(
            "SELECT 1 FROM batch_runner.lane_slots WHERE lane = %s LIMIT 1", (lane,)
        ):
            self._ensure_slots(lane, self.lane_widths.get(lane, 1))

    def release_slot(self, run_id: str) -> None:
        """The run holds no lane slot any more (it ended, or waits again for a retry)."""
        self._write("UPDATE batch_runner.lane_slots SET run_id = NULL WHERE run_id = %s", (run_id,))

    def cancel_dispatched(self, run: dict[str, Any]) -> bool:
        """Take back a ``reserved`` run's procrastinate job before any worker fetched it;
        False when a worker has it already (it is starting: ``stop`` it instead)."""
        job_id = run.get("pq_job_id")
        if job_id is None:
            return True
        cancelled = self._value("SELECT procrastinate_cancel_job_v1(%s, false, false)", (job_id,))
        return cancelled is not None

    def next_pending_due(self) -> float | None:
        """When the earliest pending run falls due (epoch seconds), by the database's clock
        turned into this host's: seconds from now, added to ``time.time()`` by the caller."""
        due_in = self._value(
            "SELECT extract(epoch FROM min(due_at) - now()) FROM batch_runner.runs "
            "WHERE status = 'pending'"
        )
        return None if due_in is None else float(due_in)

    # --- occurrences ---------------------------------------------------------------------------

    def decide_occurrence(
        self, job_name: str, scheduled_for: float, interval: float | None, catch_up: bool = False
    ) -> float | str:
        """Claim the decision on one occurrence of ``job_name`` for this scheduler, within the
        caller's transaction: ``"new"`` (it is ours to run or skip), ``"taken"`` (another
        scheduler decided it), or, for an interval job whose chain in the database does not
        have this occurrence on it (another scheduler started it at another time), the chain's
        last occurrence (epoch seconds), to count from instead. A ``catch_up`` occurrence (the
        one run owed for the time no scheduler ran) is taken when the chain has none within an
        interval of it: once, whichever scheduler starts first."""
        self._write(
            "INSERT INTO batch_runner.job_plan (job_name) VALUES (%s) ON CONFLICT DO NOTHING",
            (job_name,),
        )
        last = self._value(
            "SELECT extract(epoch FROM last_scheduled_for) FROM batch_runner.job_plan "
            "WHERE job_name = %s FOR UPDATE",
            (job_name,),
        )
        if interval and last is not None and catch_up:
            if scheduled_for - float(last) < interval - 0.002:
                return float(last)  # another scheduler has run one since: count from it
        elif interval and last is not None:
            steps = round((scheduled_for - float(last)) / interval)
            if abs(scheduled_for - float(last) - steps * interval) > 0.002:
                return float(last)
            if steps <= 0:
                return "taken"
        inserted = self._first(
            "INSERT INTO batch_runner.occurrences (job_name, scheduled_for, outcome, host, "
            "decided_at) VALUES (%s, %s, 'run', %s, now()) ON CONFLICT DO NOTHING RETURNING 1",
            (job_name, when(scheduled_for), self.host),
        )
        if inserted is None:
            return "taken"
        self._write(
            "UPDATE batch_runner.job_plan SET last_scheduled_for = GREATEST(last_scheduled_for, "
            "%s) WHERE job_name = %s",
            (when(scheduled_for), job_name),
        )
        return "new"

    def occurrence_skipped(self, job_name: str, scheduled_for: float) -> None:
        self._write(
            "UPDATE batch_runner.occurrences SET outcome = 'skipped' WHERE job_name = %s "
            "AND scheduled_for = %s",
            (job_name, when(scheduled_for)),
        )

    def chain_anchors(self) -> dict[str, float]:
        """Each job's last decided occurrence (epoch seconds): where interval jobs count from."""
        rows = self._read(
            "SELECT job_name, extract(epoch FROM last_scheduled_for) AS last "
            "FROM batch_runner.job_plan WHERE last_scheduled_for IS NOT NULL"
        )
        return {row["job_name"]: float(row["last"]) for row in rows}

    # --- a run on a worker ----------------------------------------------------------------------

    def start_dispatched(
        self, run_id: str, pq_job_id: int, pid: int, started_at: float
    ) -> dict[str, Any] | None:
        """Mark a reserved run running here, as its next attempt; None when it is no longer
        this procrastinate job's to start (taken back, or handed to another job)."""
        row = self._first(
            "UPDATE batch_runner.runs SET status = 'running', attempt = attempt + 1, "
            "start_time = %s, end_time = NULL, exit_code = NULL, error = NULL, pgid = NULL, "
            "host = %s, pid = %s, beat_at = now(), reserved_at = NULL, attempt_status = NULL "
            "WHERE run_id = %s AND status = 'reserved' AND pq_job_id = %s RETURNING *",
            (when(started_at), self.host, pid, run_id, pq_job_id),
            doing="write to",
        )
        if row is None:
            return None
        self.fences[run_id] = row["attempt"]
        return run_from_row(row)

    def beat(self, run_ids: list[str]) -> None:
        """These runs, running here, are alive."""
        if run_ids:
            self._write(
                "UPDATE batch_runner.runs SET beat_at = now() WHERE run_id = ANY(%s) "
                "AND status = 'running' AND host = %s",
                (run_ids, self.host),
            )

    def process_alive(self, pid: int, started_at: float, role: str, config_hash: str) -> None:
        """This process is alive (``status`` lists it, the sweep asks after its host)."""
        self._write(
            "INSERT INTO batch_runner.processes (host, pid, started_at, role, last_seen, "
            "config_hash) VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT (host, pid, "
            "started_at) DO UPDATE SET last_seen = now(), config_hash = EXCLUDED.config_hash",
            (self.host, pid, when(started_at), role, config_hash),
        )

    def processes(self) -> list[dict[str, Any]]:
        """Every process that said it was alive, with ``age``: seconds since it last did."""
        rows = self._read(
            "SELECT host, pid, extract(epoch FROM started_at) AS started_at, role, "
            "extract(epoch FROM now() - last_seen) AS age, config_hash "
            "FROM batch_runner.processes ORDER BY host, started_at"
        )
        return [
            dict(row, age=float(row["age"]), started_at=float(row["started_at"])) for row in rows
        ]

    def prune_processes(self, older_than: float) -> int:
        cursor = self._write(
            "DELETE FROM batch_runner.processes WHERE last_seen < now() - %s * interval '1 s'",
            (older_than,),
        )
        return cursor.rowcount

    def live_hosts(self) -> set[str]:
        rows = self._read(
            "SELECT DISTINCT host FROM batch_runner.processes "
            "WHERE last_seen > now() - %s * interval '1 s'",
            (STALE_SECONDS,),
        )
        return {row["host"] for row in rows}

    def stale_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Running runs whose heartbeat stopped ``STALE_SECONDS`` ago, oldest first."""
        rows = self._read(
            "SELECT * FROM batch_runner.runs WHERE status = 'running' "
            "AND beat_at < now() - %s * interval '1 s' ORDER BY beat_at LIMIT %s",
            (STALE_SECONDS, limit),
        )
        return [run_from_row(row) for row in rows]

    def lock_stale(self, run_id: str) -> dict[str, Any] | None:
        """Within the caller's transaction: the run, locked, if it is still running and stale
        (None when it ended meanwhile or another sweeper holds it)."""
        row = self._first(
            "SELECT * FROM batch_runner.runs WHERE run_id = %s AND status = 'running' "
            "AND beat_at < now() - %s * interval '1 s' FOR UPDATE SKIP LOCKED",
            (run_id, STALE_SECONDS),
        )
        return run_from_row(row) if row else None

    def requeue_stuck_reserved(self) -> list[str]:
        """Put back in the queue the runs handed off ``STALE_SECONDS`` ago that no worker
        started and none will: their procrastinate job is gone, ended, or held by a worker that
        stopped beating (it died between fetching the job and starting the run). Their slot
        goes to the next due run, perhaps the same one, with a job of its own."""
        rows = self._read(
            "SELECT r.run_id, r.pq_job_id, j.status AS job_status FROM batch_runner.runs r "
            "LEFT JOIN procrastinate_jobs j ON j.id = r.pq_job_id "
            "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
            "WHERE r.status = 'reserved' AND r.reserved_at < now() - %s * interval '1 s' "
            "AND (j.id IS NULL OR j.status NOT IN ('todo', 'doing') OR (j.status = 'doing' "
            "AND (w.id IS NULL OR w.last_heartbeat < now() - %s * interval '1 s')))",
            (STALE_SECONDS, STALE_SECONDS),
        )
        requeued = []
        for row in rows:
            with self._joined():
                lane = self._value(
                    "UPDATE batch_runner.runs SET status = 'pending', slot = NULL, "
                    "reserved_at = NULL, pq_job_id = NULL WHERE run_id = %s "
                    "AND status = 'reserved' AND pq_job_id IS NOT DISTINCT FROM %s RETURNING lane",
                    (row["run_id"], row["pq_job_id"]),
                )
                if lane is None:
                    continue
                self.release_slot(row["run_id"])
                self.fail_pq_job(row["pq_job_id"])
                self.dispatch_due(lane)
            requeued.append(row["run_id"])
        return requeued

    def fail_orphan_pq_jobs(self) -> int:
        """procrastinate jobs left ``doing`` by a worker that is gone, whose run has moved on
        (ended, or started again under another job): failed, so none looks in progress."""
        cursor = self._write(
            "UPDATE procrastinate_jobs j SET status = 'failed' FROM procrastinate_jobs j2 "
            "LEFT JOIN procrastinate_workers w ON w.id = j2.worker_id WHERE j.id = j2.id "
            "AND j.queue_name = %s AND j.status = 'doing' "
            "AND (w.id IS NULL OR w.last_heartbeat < now() - %s * interval '1 s') "
            "AND NOT EXISTS (SELECT 1 FROM batch_runner.runs r WHERE r.pq_job_id = j.id "
            "AND r.status IN ('reserved', 'running'))",
            (QUEUE, STALE_SECONDS),
        )
        return cursor.rowcount

    def fail_pq_job(self, pq_job_id: int | None) -> None:
        """The procrastinate job of a swept run ends ``failed`` (never retried by it)."""
        if pq_job_id is not None:
            self._write(
                "UPDATE procrastinate_jobs SET status = 'failed', attempts = attempts + 1 "
                "WHERE id = %s AND status = 'doing'",
                (pq_job_id,),
            )

    # --- results --------------------------------------------------------------------------------

    def keep_result(self, record: dict[str, Any]) -> None:
        """An attempt's (or a skip's, a cancel's) JSONL line, in the one place every host
        reads, with the attempt's output from its log file here; once per (run, attempt)."""
        with self._joined():
            inserted = self._first(
                "INSERT INTO batch_runner.attempts (run_id, attempt, record, job_name, "
                "start_time, end_time, status, exit_code, trigger, scheduled_for, host) "
                "VALUES (%(run_id)s, %(attempt)s, %(record)s, %(job_name)s, %(start_time)s, "
                "%(end_time)s, %(status)s, %(exit_code)s, %(trigger)s, %(scheduled_for)s, "
                "%(host)s) ON CONFLICT (run_id, attempt) DO NOTHING RETURNING seq",
                {
                    **{key: record.get(key) for key in _RECORD_COLUMNS},
                    "record": Json(record, dumps=_line),
                },
                doing="write to",
            )
            if inserted is not None and record.get("log_file"):
                self._keep_output(record)

    def _keep_output(self, record: dict[str, Any]) -> None:
        try:
            with open(record["log_file"], "rb") as file:
                data = file.read(16 * 1024 * 1024)
        except OSError:
            return  # no log (an HTTP job, a run that never started): nothing to keep
        for n, start in enumerate(range(0, len(data), CHUNK_BYTES)):
            self._write(
                "INSERT INTO batch_runner.output_chunks (run_id, attempt, n, data) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (record["run_id"], record["attempt"], n, data[start : start + CHUNK_BYTES]),
            )

    def kept_output(self, run_id: str, attempt: int) -> bytes | None:
        """An attempt's output as its host kept it here; None when none was kept."""
        rows = self._read(
            "SELECT data FROM batch_runner.output_chunks WHERE run_id = %s AND attempt = %s "
            "ORDER BY n",
            (run_id, attempt),
        )
        return b"".join(bytes(row["data"]) for row in rows) if rows else None

    def results(
        self,
        *,
        job: str | None = None,
        status: str | None = None,
        since: float | None = None,
        run_prefix: str | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Result lines of every host, newest first (by when they were kept), at most
        ``limit``: of ``job``, with ``status``, ending at or after ``since``, of runs whose id
        starts with ``run_prefix``. Each is the JSONL line as its host wrote it."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if job is not None:
            where.append("job_name = %s")
            params.append(job)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if since is not None:
            where.append("COALESCE(start_time, end_time) >= %s")
            params.append(when(since))
        if run_prefix is not None:
            where.append("starts_with(run_id, %s)")  # a range would follow the collation
            params.append(run_prefix)
        rows = self._read(
            "SELECT record FROM batch_runner.attempts WHERE "
            + " AND ".join(where)
            + " ORDER BY COALESCE(start_time, end_time) DESC, seq DESC LIMIT %s",
            (*params, max(limit, 0)),
        )
        return [row["record"] for row in rows]


_RECORD_COLUMNS = (
    "run_id",
    "attempt",
    "job_name",
    "start_time",
    "end_time",
    "status",
    "exit_code",
    "trigger",
    "scheduled_for",
    "host",
)


def _line(record: dict[str, Any]) -> str:
    """A result line as its JSONL has it (keys in order; what JSON cannot say, as text)."""
    return json.dumps(record, ensure_ascii=False, default=str)


def host_id() -> str:
    """This host's name in the cluster: ``BATCH_RUNNER_HOST_ID`` (tests run several "hosts"
    on one machine), else the node name."""
    return os.environ.get("BATCH_RUNNER_HOST_ID") or os.uname().nodename
