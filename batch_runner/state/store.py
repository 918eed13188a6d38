"""What the runner asks of the place where runs and job state are kept: the store interface.

A backend (``state.sqlite`` today; a shared database for several hosts can stand beside it)
implements every method below with the guarantees written in its docstring; the runner never
reaches past this interface. A run is a plain dict with the columns of the ``runs`` table
(``run_id``, ``job_name``, ``kind`` (``job`` or ``adhoc``), ``spec``, ``trigger``,
``priority``, ``status``, ``attempt``, ``max_attempts``, ``due_at``, ...), times in epoch
seconds. A plain class rather than ``typing.Protocol``: the hot CLI paths do not import typing.
"""

from __future__ import annotations

import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager
    from typing import Any

    from batch_runner.state.layout import LogLayout

# How a run can end; ``pending``, ``reserved`` and ``running`` are the statuses of a run still
# in play.
FINISHED_STATUSES = ("success", "error", "timeout", "stopped", "interrupted", "canceled")
# A run that waits: ``reserved`` is taken by a slot's runner as its next run, not started yet.
WAITING_STATUSES = ("pending", "reserved")


class Store:
    """The operations the runner needs; a backend overrides every one of them."""

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """``with store.transaction():`` one write transaction, its lock taken up front; the
        store's calls made inside it join it, all or nothing."""
        raise NotImplementedError

    # --- the queue of runs ------------------------------------------------------------------

    def insert_run(self, run: dict[str, Any]) -> None:
        """Accept a run; durable once the call (or its transaction) returns."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def find_runs(self, prefix: str) -> list[dict[str, Any]]:
        """At most two runs whose id starts with ``prefix`` (users type a unique prefix)."""
        raise NotImplementedError

    def run_extras(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Priority, attempt and progress of those runs the store still holds, by run id."""
        raise NotImplementedError

    def active_run_of_job(self, job_name: str) -> dict[str, Any] | None:
        """The waiting or running run of a named job (never an ad-hoc run with its label)."""
        raise NotImplementedError

    def runs_with_status(self, *statuses: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Running runs first, then by priority, due time and arrival."""
        raise NotImplementedError

    def recent_finished(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently created finished runs, newest first."""
        raise NotImplementedError

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
        """At most ``limit`` runs, newest (highest ``seq``) first, that pass every filter
        given: one of ``statuses`` (none or empty: any), of ``job``, with ``tag`` as one of
        its ``tags`` (exactly), created at or after ``since`` and before ``until``, and
        ``seq`` below ``before_seq`` (the last page's last ``seq``: the next page, none
        twice)."""
        raise NotImplementedError

    def count_pending(self) -> int:
        raise NotImplementedError

    def next_due_at(self, *, retries_only: bool = False, lane: str | None = None) -> float | None:
        """When the next waiting run (or only a retry of a started one) may start; of one
        ``lane``, or of any. A reserved run counts: should its runner die, whoever waits for
        the lane's slot takes it over at once."""
        raise NotImplementedError

    def pending_by_lane(self) -> dict[str, int]:
        """How many runs wait in each lane that has any."""
        raise NotImplementedError

    def count_due(self, lane: str, now: float, limit: int) -> int:
        """How many runs of ``lane`` are due at ``now``, counted up to ``limit``."""
        raise NotImplementedError

    def lanes_waiting(self, now: float) -> list[tuple[str, int, float]]:
        """Each lane with waiting runs (pending or reserved): (lane, how many are due at
        ``now``, the earliest due time), the lane whose best due run ranks first (priority)
        first."""
        raise NotImplementedError

    def claim_next(
        self,
        now: float,
        owner_pid: int,
        host: str,
        *,
        foreground_run_id: str | None = None,
        first_attempt_only: bool = False,
        lane: str = "default",
        slot: int = 0,
        foreground_first: bool = False,
    ) -> dict[str, Any] | None:
        """Take the next due run of ``lane`` (priority, then due time, then arrival) and mark
        it running in ``slot`` of the lane (the slot the caller holds).

        Atomic: no two drainers ever take the same run. While the queue is paused nothing is
        taken but ``foreground_run_id`` (the run a foreground ``run-job`` waits for), which
        may also start while it is not first; nothing at all once that run no longer waits.
        ``first_attempt_only``: None if the next run is a retry (whose last attempt's details
        the claim clears, so that ``unclaim`` could not give them back). ``foreground_first``:
        ``foreground_run_id`` before every other due run.
        """
        raise NotImplementedError

    def unclaim(self, run_id: str, owner_pid: int) -> None:
        """Put a first attempt claimed by ``owner_pid`` but never started back as it was."""
        raise NotImplementedError

    # --- reservations: a slot's next run, taken while its current run runs -----------------

    def reserve_next(
        self, now: float, owner_pid: int, host: str, *, lane: str, slot: int, limit: int = 1
    ) -> list[dict[str, Any]]:
        """Take the ``limit`` runs ``claim_next`` would take next, as ``reserved`` (not
        started: attempt and start time as they were, ``reserved_at`` says when), in the
        order they would be claimed."""
        raise NotImplementedError

    def start_reserved(self, run: dict[str, Any], owner_pid: int, pgid: int | None = None) -> bool:
        """Mark ``owner_pid``'s reserved ``run`` running, as started: its ``attempt``,
        ``started_at`` and ``log_file`` (and ``pgid``) as in the dict; False if it is no
        longer reserved by ``owner_pid``."""
        raise NotImplementedError

    def release_reserved(self, run_id: str, owner_pid: int | None = None) -> bool:
        """Put a reserved run back in the queue exactly as it was (of any owner when
        ``owner_pid`` is None: recovery); False if it was not reserved (by that owner)."""
        raise NotImplementedError

    def reservation_holds(self, run: dict[str, Any], owner_pid: int, now: float) -> bool:
        """Whether ``run`` may still start now: reserved by ``owner_pid``, the queue not
        paused, and no pending run due in its lane ranks before it."""
        raise NotImplementedError

    def data_version(self) -> int:
        """A number that changes whenever another connection commits a change: the same
        number twice means nothing changed in between but what this connection wrote."""
        raise NotImplementedError

    def update_run(self, run_id: str, **fields: Any) -> None:
        raise NotImplementedError

    def end_if_pending(
        self,
        run_id: str,
        status: str,
        error: str | None,
        now: float,
        started: Callable[[dict[str, Any]], bool] | None = None,
    ) -> bool:
        """A waiting (pending, or reserved and not started) run ends with ``status`` without
        another attempt; False if it had already started or finished. ``started(run)`` says,
        under the write lock, whether a reserved run has been started (``runs.handoff``)."""
        raise NotImplementedError

    def request_stop(self, run_id: str) -> bool:
        """Flag a running run (or a reserved one its runner has started, see
        ``runs.handoff``); its runner notices within a second and stops it."""
        raise NotImplementedError

    def set_progress(self, run_id: str, percent: float | None, message: str | None) -> bool:
        """Record progress of a running run; False when it is not running."""
        raise NotImplementedError

    def delete_finished_before(self, cutoff: float) -> int:
        """Forget finished runs that ended before ``cutoff``; pending and running ones stay."""
        raise NotImplementedError

    # --- per job --------------------------------------------------------------------------

    def job_states(self) -> dict[str, dict[str, Any]]:
        """Per job: its state's fields (if it has run) and ``next_run`` (if planned)."""
        raise NotImplementedError

    def job_state(self, job_name: str) -> dict[str, Any] | None:
        """last_run, last_status, error_count, notified, disabled_reason and disabled_at
        of a job that has run."""
        raise NotImplementedError

    def save_job_state(self, state: dict[str, Any]) -> None:
        """Within the caller's transaction if one is open, else in one of its own."""
        raise NotImplementedError

    def disable_job(self, job_name: str, reason: str, at: float) -> None:
        """Record that ``job_name`` (whose state exists) is off the schedule for its failures
        (``disable_after``), why and since when; meant for the caller's transaction (the end
        of the run that disabled it). ``save_job_state`` never touches these two fields."""
        raise NotImplementedError

    def enable_job(self, job_name: str) -> dict[str, Any] | None:
        """Clear a failure-disable and start the job's count of failures afresh; its state as
        it was (``disabled_reason``, ``disabled_at``, ``error_count``), or None when it was
        not disabled by its failures."""
        raise NotImplementedError

    def set_next_runs(self, next_runs: dict[str, str | None]) -> None:
        """Remember each job's planned next run, for ``list``, ``next`` and catch-up."""
        raise NotImplementedError

    def set_next_run(self, job_name: str, next_run: str | None) -> None:
        """``set_next_runs`` for one job, meant for the caller's transaction (with its run)."""
        raise NotImplementedError

    # --- flags ------------------------------------------------------------------------------

    def is_paused(self) -> bool:
        raise NotImplementedError

    def set_paused(self, paused: bool) -> None:
        raise NotImplementedError

    # --- the service's tokens, the dashboard's sessions, the audit trail ---------------------
    # Tokens and session ids are kept as their ``state.tokens.hash_secret``, never in clear.

    def add_token(self, name: str, scope: str, secret_hash: str, at: float) -> None:
        """Keep a new token; OperationFailed while a token of that name is not revoked (a
        revoked one's name is free again). Joins the caller's transaction if one is open."""
        raise NotImplementedError

    def token_by_hash(self, secret_hash: str) -> dict[str, Any] | None:
        """The token not revoked with that hash: ``name``, ``scope``, ``created_at``,
        ``last_used_at``."""
        raise NotImplementedError

    def touch_token(self, name: str, at: float) -> None:
        """Note the token's use (a write: the service does it at most once a minute each)."""
        raise NotImplementedError

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token, revoked ones too, by name: ``name``, ``scope``, ``created_at``,
        ``last_used_at``, ``revoked_at`` (never the hash)."""
        raise NotImplementedError

    def revoke_token(self, name: str, at: float) -> bool:
        """Revoke a token and end its sessions; False if no such token was active. Joins the
        caller's transaction if one is open."""
        raise NotImplementedError

    def has_active_tokens(self) -> bool:
        raise NotImplementedError

    def add_session(
        self, session_hash: str, token_name: str, csrf: str, at: float, expires_at: float
    ) -> None:
        """A signed-in dashboard; the sessions expired at ``at`` are forgotten meanwhile."""
        raise NotImplementedError

    def session_by_hash(self, session_hash: str, now: float) -> dict[str, Any] | None:
        """A session unexpired at ``now`` whose token is still active: ``token_name``,
        ``scope`` (the token's), ``csrf``, ``expires_at``."""
        raise NotImplementedError

    def drop_session(self, session_hash: str) -> None:
        """Sign out (nothing happens for an unknown session)."""
        raise NotImplementedError

    def record_audit(self, entry: dict[str, Any]) -> None:
        """Append a line to the audit trail: ``at``, ``actor`` (a token's name, or
        ``cli:USER``), ``scope``, ``action``, ``run_id``, ``job_name``, ``remote``,
        ``detail`` (missing keys are null). Within the caller's transaction if one is open,
        so a change and its line commit together or not at all."""
        raise NotImplementedError

    def audit_entries(
        self, *, limit: int = 50, before_seq: int | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """At most ``limit`` lines, newest first (``seq`` below ``before_seq``: the next
        page), of one run if ``run_id``; each with its ``seq`` and the fields above."""
        raise NotImplementedError

    # --- result lines the JSONL could not take (a full disk) --------------------------------

    def remember_unwritten(
        self, run_id: str | None, started_at: float, record: dict[str, Any]
    ) -> None:
        """Keep a result line until it can be appended to the day file of ``started_at``;
        within the caller's transaction if one is open (the end of its run), else its own."""
        raise NotImplementedError

    def has_unwritten(self) -> bool:
        """Whether a line waits; cheap enough to ask after every run."""
        raise NotImplementedError

    def unwritten(self) -> list[dict[str, Any]]:
        """Every waiting line, oldest first: ``seq``, ``run_id``, ``started_at``, ``record``."""
        raise NotImplementedError

    # --- what a cluster's shared database adds (state.postgres); one host's store agrees -------

    def decide_occurrence(
        self, job_name: str, scheduled_for: float, interval: float | None, catch_up: bool = False
    ) -> float | str:
        """Claim the decision on one occurrence for this scheduler, within the caller's
        transaction: ``"new"`` (ours), ``"taken"`` (another scheduler decided it), or the last
        occurrence another scheduler decided (epoch seconds) when an interval job's chain does
        not have this one on it (``catch_up``: the run owed for a time no scheduler ran, taken
        once). One host's scheduler decides every occurrence alone."""
        return "new"

    def occurrence_skipped(self, job_name: str, scheduled_for: float) -> None:
        """The occurrence decided was skipped (the job already waits or runs)."""

    def keep_result(self, record: dict[str, Any]) -> None:
        """Keep a result line where every host reads it, besides this host's JSONL (a
        cluster); one host's JSONL is that place already."""

    def forget_unwritten(self, seq: int) -> bool:
        """Drop a line once appended; False if another process had dropped it already. Meant
        for the caller's transaction, which is what keeps two writers of it apart."""
        raise NotImplementedError


def open_store(layout: LogLayout, *, durable: bool = False, backend: Any = None) -> Store:
    """The store of a log dir, or the cluster's database when ``backend`` (the config's
    ``settings.backend``) names one. ``durable``: every commit survives power loss (``queue
    add``; a cluster's commits always do)."""
    if backend is not None:
        from batch_runner.state.postgres.open import open_cluster_store

        return open_cluster_store(backend)
    from batch_runner.state.sqlite.store import SqliteStore

    return SqliteStore(layout.database, durable=durable)


def open_existing_store(layout: LogLayout, backend: Any = None) -> Store | None:
    """The store of a log dir that has one; None where nothing was ever stored (opening it
    would create an empty database wherever a stray path points). A cluster's always is."""
    if backend is not None:
        return open_store(layout, backend=backend)
    return open_store(layout) if os.path.exists(layout.database) else None


# The store locks this process holds alone (``doctor --repair``): its own stores need no more.


def limit_waits(seconds: float) -> None:
    """In this process, give up on a locked database (another writer, a repair) after
    ``seconds`` instead of half a minute: the service answers 503 rather than hang a request."""
    from batch_runner.state import storelock
    from batch_runner.state.sqlite import schema

    schema.BUSY_TIMEOUT_SECONDS = seconds
    storelock.REPAIR_WAIT_SECONDS = seconds
