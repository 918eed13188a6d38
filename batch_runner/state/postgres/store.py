"""The store on PostgreSQL: one database shared by the hosts of a cluster (issue 22). The queue
is in ``runs``, per-job state, flags and unwritten lines in ``jobstate``, tokens, sessions and
the audit trail in ``access``; what only a cluster does (lane slots, the hand-off of due runs to
procrastinate, occurrences, heartbeats) in ``cluster``; the connection in ``base``.

A cluster's runs never go through the single host's drain (``claim_next``, reservations): a
scheduler or worker hands each due run to procrastinate in the commit that makes it due or frees
its slot, and a worker starts it with ``start_dispatched``. Those methods refuse here.
"""

from __future__ import annotations

from batch_runner.state.postgres.access import PgAccess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NOT_HERE = (
    "{} is the single host's drain; the cluster's workers take runs from procrastinate "
    "(state.postgres.cluster: dispatch_due, start_dispatched)"
)


class PostgresStore(PgAccess):
    """The cluster's database; see ``Store`` for what each operation means."""

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
        """Refused: a run is claimed by the worker procrastinate hands it to."""
        raise NotImplementedError(_NOT_HERE.format("claim_next"))

    def unclaim(self, run_id: str, owner_pid: int) -> None:
        """Refused: nothing is claimed here (``claim_next``)."""
        raise NotImplementedError(_NOT_HERE.format("unclaim"))

    def reserve_next(
        self, now: float, owner_pid: int, host: str, *, lane: str, slot: int, limit: int = 1
    ) -> list[dict[str, Any]]:
        """Refused: a run is reserved by ``dispatch_due``, with its slot and procrastinate job."""
        raise NotImplementedError(_NOT_HERE.format("reserve_next"))

    def start_reserved(self, run: dict[str, Any], owner_pid: int, pgid: int | None = None) -> bool:
        """Refused: a worker starts a reserved run with ``start_dispatched``."""
        raise NotImplementedError(_NOT_HERE.format("start_reserved"))

    def release_reserved(self, run_id: str, owner_pid: int | None = None) -> bool:
        """Refused: a reserved run goes back by ``requeue_stuck_reserved`` (the sweep)."""
        raise NotImplementedError(_NOT_HERE.format("release_reserved"))

    def reservation_holds(self, run: dict[str, Any], owner_pid: int, now: float) -> bool:
        """Refused: a reservation here holds until its worker starts it or the sweep ends it."""
        raise NotImplementedError(_NOT_HERE.format("reservation_holds"))
