"""What must hold in the cluster database after every multi-process test (issue 22's design
note, sections 1.1-1.6 and 2): exactly one run per occurrence, one active run per job, lane
slots held by the runs that use them, no lost or doubled attempt record, and procrastinate's
jobs matching our runs (no ``doing`` job left behind: procrastinate #1543's residue).

Each check takes a psycopg connection and returns the problems it found, one sentence each
(empty: consistent), so a test can print all of them at once. ``check_all`` runs every check in
one read-only snapshot; ``assert_consistent`` fails the test with the list. They read the
schema of the design note (schema ``batch_runner``; procrastinate's tables in ``public``) and
are meant for a database *at rest*: every process stopped, or every run ended and settled.
Mid-flight, a run's end and its procrastinate job's end are separate transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WAITING = ("pending", "reserved")
ACTIVE = ("pending", "reserved", "running")
STATUSES = (*ACTIVE, "success", "error", "timeout", "stopped", "interrupted", "canceled")
# The procrastinate queues our runs go through: the shared one and each ``run-job``'s own.
OUR_JOBS = "(queue_name = 'batch_runner' OR queue_name LIKE 'batch_runner.local.%')"

Check = Callable[[Any], list[str]]


def _problems(conn: Any, sql: str, say: Callable[..., str]) -> list[str]:
    return [say(*row) for row in conn.execute(sql).fetchall()]


def one_run_per_occurrence(conn: Any) -> list[str]:
    """Exactly once: no two runs for one (job, scheduled_for), each occurrence decided once
    with a valid outcome, a ``run`` occurrence pointing at its run, a ``skipped`` one at none,
    and every run that carries a ``scheduled_for`` recorded as its occurrence's run."""
    return [
        *_problems(
            conn,
            "SELECT job_name, scheduled_for, count(*) FROM batch_runner.runs"
            " WHERE scheduled_for IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1",
            lambda j, sf, n: f"{n} runs of {j} for the occurrence {sf}",
        ),
        *_problems(
            conn,
            "SELECT o.job_name, o.scheduled_for, o.outcome, o.run_id"
            " FROM batch_runner.occurrences o"
            " LEFT JOIN batch_runner.runs r ON r.run_id = o.run_id"
            " AND r.job_name = o.job_name AND r.scheduled_for = o.scheduled_for"
            " WHERE NOT (o.outcome = 'run' AND r.run_id IS NOT NULL"
            "            OR o.outcome = 'skipped' AND o.run_id IS NULL)",
            lambda j, sf, out, rid: f"occurrence {j} {sf} is {out!r} with run {rid} (no match)",
        ),
        *_problems(
            conn,
            "SELECT r.run_id, r.job_name, r.scheduled_for FROM batch_runner.runs r"
            " WHERE r.scheduled_for IS NOT NULL AND NOT EXISTS (SELECT 1"
            " FROM batch_runner.occurrences o WHERE o.run_id = r.run_id"
            " AND o.job_name = r.job_name AND o.scheduled_for = r.scheduled_for)",
            lambda rid, j, sf: f"run {rid} of {j} for {sf} has no occurrence row",
        ),
    ]


def one_active_run_per_job(conn: Any) -> list[str]:
    """SPEC 4's ``skipped`` rule: at most one waiting-or-running run per named job (the
    ``runs_one_active_job`` index; checked in case it was lost or bypassed)."""
    return _problems(
        conn,
        "SELECT job_name, count(*) FROM batch_runner.runs WHERE kind = 'job'"
        f" AND status IN {ACTIVE} GROUP BY 1 HAVING count(*) > 1",
        lambda j, n: f"{n} active runs of job {j}",
    )


def run_rows_sane(conn: Any) -> list[str]:
    """Every run has a known status and no more attempts than allowed; a running one says
    where (host) and since when (start_time)."""
    return _problems(
        conn,
        "SELECT run_id, status, attempt, max_attempts, host, start_time FROM batch_runner.runs"
        f" WHERE status NOT IN {STATUSES} OR attempt > max_attempts OR attempt < 0"
        " OR status = 'running' AND (host IS NULL OR start_time IS NULL)",
        lambda rid, s, a, m, h, st: f"run {rid}: {s}, attempt {a}/{m}, host {h}, start {st}",
    )


def lane_slots_held_by_their_runs(conn: Any) -> list[str]:
    """Lane widths across hosts (design 1.3): a held slot belongs to a reserved or running run
    of that lane that names that slot, and every reserved or running run holds its slot."""
    return [
        *_problems(
            conn,
            "SELECT s.lane, s.slot, s.run_id, r.status, r.lane, r.slot"
            " FROM batch_runner.lane_slots s LEFT JOIN batch_runner.runs r USING (run_id)"
            " WHERE s.run_id IS NOT NULL AND (r.run_id IS NULL"
            " OR r.status NOT IN ('reserved', 'running') OR r.lane <> s.lane OR r.slot <> s.slot)",
            lambda ln, sl, rid, st, rl, rs: (
                f"slot {ln}:{sl} held by run {rid} ({st}, in slot {rl}:{rs})"
            ),
        ),
        *_problems(
            conn,
            "SELECT r.run_id, r.status, r.lane, r.slot FROM batch_runner.runs r"
            " WHERE r.status IN ('reserved', 'running') AND NOT EXISTS (SELECT 1"
            " FROM batch_runner.lane_slots s WHERE s.run_id = r.run_id"
            " AND s.lane = r.lane AND s.slot = r.slot)",
            lambda rid, st, ln, sl: f"{st} run {rid} does not hold its slot {ln}:{sl}",
        ),
    ]


def attempts_recorded_once(conn: Any) -> list[str]:
    """No lost or doubled result: a run's attempt records are numbered 1..attempt (the one
    running, if any, not yet recorded; a run canceled before starting has its one record,
    attempt 0); each skipped occurrence has exactly one ``skipped`` record, and no skipped
    record names a scheduled occurrence that was not skipped."""
    return [
        *_problems(
            conn,
            "SELECT r.run_id, r.status, r.attempt, array_agg(a.attempt ORDER BY a.attempt)"
            " FROM batch_runner.runs r LEFT JOIN batch_runner.attempts a USING (run_id)"
            " GROUP BY r.run_id, r.status, r.attempt HAVING array_remove(array_agg(a.attempt"
            " ORDER BY a.attempt), NULL) IS DISTINCT FROM CASE"
            " WHEN r.status = 'canceled' AND r.attempt = 0 THEN ARRAY[0]"
            " WHEN r.status = 'running' THEN ARRAY(SELECT generate_series(1, r.attempt - 1))"
            " ELSE ARRAY(SELECT generate_series(1, r.attempt)) END",
            lambda rid, st, a, seen: f"{st} run {rid} at attempt {a} has records {seen}",
        ),
        *_problems(
            conn,
            "SELECT coalesce(o.job_name, a.job_name), coalesce(o.scheduled_for, a.scheduled_for),"
            " count(a.seq) FROM (SELECT * FROM batch_runner.occurrences WHERE outcome = 'skipped')"
            " o FULL JOIN (SELECT * FROM batch_runner.attempts WHERE status = 'skipped'"
            " AND scheduled_for IS NOT NULL) a"
            " ON a.job_name = o.job_name AND a.scheduled_for = o.scheduled_for"
            " GROUP BY 1, 2, o.job_name HAVING count(a.seq) <> 1 OR o.job_name IS NULL",
            lambda j, sf, n: f"{n} skipped record(s) of {j} for {sf} (skipped occurrences: 1)",
        ),
    ]


def output_chunks_contiguous(conn: Any) -> list[str]:
    """``logs RUN`` from any host (design 1.8): an attempt's output chunks are numbered 0..n-1
    and belong to a run that exists."""
    return _problems(
        conn,
        "SELECT c.run_id, c.attempt, count(*), min(c.n), max(c.n) FROM batch_runner.output_chunks c"
        " GROUP BY 1, 2 HAVING min(c.n) <> 0 OR max(c.n) <> count(*) - 1"
        " OR NOT EXISTS (SELECT 1 FROM batch_runner.runs r WHERE r.run_id = c.run_id)",
        lambda rid, a, n, lo, hi: f"run {rid} attempt {a}: {n} chunks numbered {lo}..{hi}",
    )


def no_queueing_locks(conn: Any) -> list[str]:
    """None of our procrastinate jobs has a ``queueing_lock`` (the index that #1543's retry
    violates; our ``skipped`` is ``runs_one_active_job`` instead)."""
    return _problems(
        conn,
        f"SELECT id, queueing_lock FROM procrastinate_jobs WHERE {OUR_JOBS}"
        " AND queueing_lock IS NOT NULL",
        lambda jid, q: f"procrastinate job {jid} has queueing_lock {q!r}",
    )


def procrastinate_jobs_match_runs(conn: Any) -> list[str]:
    """Our runs and procrastinate's jobs agree (design 2, test 2's final query): a ``todo``
    or ``doing`` job belongs to a reserved or running run under the lock of that run's slot,
    a running run's job is ``doing``, and a reserved run's job is ``todo`` or ``doing``."""
    return [
        *_problems(
            conn,
            "SELECT j.id, j.status, j.lock, r.run_id, r.status FROM procrastinate_jobs j"
            " LEFT JOIN batch_runner.runs r ON r.pq_job_id = j.id"
            f" WHERE {OUR_JOBS} AND j.status IN ('todo', 'doing') AND (r.run_id IS NULL"
            " OR r.status NOT IN ('reserved', 'running')"
            " OR j.lock IS DISTINCT FROM 'lane:' || r.lane || ':' || r.slot)",
            lambda jid, js, lock, rid, rs: (
                f"procrastinate job {jid} ({js}, lock {lock}) but run {rid} is {rs}"
            ),
        ),
        *_problems(
            conn,
            "SELECT r.run_id, r.status, r.pq_job_id, j.status FROM batch_runner.runs r"
            " LEFT JOIN procrastinate_jobs j ON j.id = r.pq_job_id"
            " WHERE r.status = 'running' AND j.status IS DISTINCT FROM 'doing'"
            " OR r.status = 'reserved' AND (j.status IS NULL OR j.status NOT IN ('todo', 'doing'))",
            lambda rid, rs, jid, js: f"{rs} run {rid} has procrastinate job {jid} in {js}",
        ),
    ]


def nothing_in_flight(conn: Any) -> list[str]:
    """After every process stopped and every run settled: no run running or reserved."""
    return _problems(
        conn,
        "SELECT run_id, status, host FROM batch_runner.runs"
        " WHERE status IN ('running', 'reserved')",
        lambda rid, st, h: f"run {rid} still {st} (host {h})",
    )


def no_job_doing(conn: Any) -> list[str]:
    """After every process stopped and every run settled: no procrastinate job of ours still
    ``doing`` (what #1543 leaves behind for a manual repair)."""
    return _problems(
        conn,
        f"SELECT id, lock FROM procrastinate_jobs WHERE {OUR_JOBS} AND status = 'doing'",
        lambda jid, lock: f"procrastinate job {jid} (lock {lock}) still doing",
    )


OUR_CHECKS: tuple[Check, ...] = (
    one_run_per_occurrence,
    one_active_run_per_job,
    run_rows_sane,
    lane_slots_held_by_their_runs,
    attempts_recorded_once,
    output_chunks_contiguous,
)
PROCRASTINATE_CHECKS: tuple[Check, ...] = (no_queueing_locks, procrastinate_jobs_match_runs)


def check_all(conn: Any, *, settled: bool = False) -> list[str]:
    """Every check, in one read-only snapshot so they see one moment; procrastinate's only
    when its schema is there; ``nothing_in_flight`` and ``no_job_doing`` too when ``settled``.
    ``conn`` must not be inside a transaction."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pq = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is not None
        checks = [*OUR_CHECKS, *(PROCRASTINATE_CHECKS if pq else ())]
        if settled:
            checks += [nothing_in_flight, *([no_job_doing] if pq else [])]
        return [problem for check in checks for problem in check(conn)]


def assert_consistent(conn: Any, *, settled: bool = False) -> None:
    """Fail with every problem ``check_all`` finds, one per line."""
    problems = check_all(conn, settled=settled)
    assert not problems, "the cluster database is inconsistent:\n" + "\n".join(problems)
