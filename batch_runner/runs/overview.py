"""What runs now, what waits, whether a scheduler is alive: ``status`` and the service's
overview read it from here."""

from __future__ import annotations

from batch_runner.runs.context import RunnerContext

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.state.postgres.cluster import ClusterOps


def status_of(ctx: RunnerContext) -> tuple[dict[str, Any], bool]:
    """SPEC 9's ``status --json`` object, and whether the scheduler is stopping."""
    from batch_runner.runs.view import run_view
    from batch_runner.state.locks import holder
    from batch_runner.state.store import WAITING_STATUSES

    held = holder(ctx.layout.scheduler_lock)
    pid, stopping = (held[0], held[1] == "stopping") if held else (None, False)
    running = [run_view(r, ctx.config.settings) for r in ctx.store.runs_with_status("running")]
    # A reserved run (a slot's next, taken but not started) waits: it is listed with the
    # pending ones, first, its status saying so; SPEC 9's shape has no key of its own for it.
    pending = [
        run_view(r, ctx.config.settings)
        for r in ctx.store.runs_with_status(*WAITING_STATUSES, limit=1000)
    ]
    status: dict[str, Any] = {
        # The shape is the contract's; "stopping" is said in the text only.
        "scheduler": {"alive": pid is not None, "pid": pid},
        "paused": ctx.store.is_paused(),
        "running": running,
        "pending": pending,
    }
    lanes = lanes_of(ctx, running)
    if lanes is not None:
        status["lanes"] = lanes  # only where lanes are configured: the shape is otherwise as ever
    disabled = disabled_jobs(ctx)
    if disabled:
        status["disabled_jobs"] = disabled  # only when there are: as above
    if ctx.clustered:
        # The "scheduler" key stays this host's (its lock file); the cluster's are here.
        status["cluster"] = cluster_of(ctx)
    return status, stopping


def cluster_store(ctx: RunnerContext) -> ClusterOps:
    """The store of a clustered context, with the reads only a shared database has."""
    return ctx.store  # type: ignore[return-value]


def cluster_of(ctx: RunnerContext) -> dict[str, Any]:
    """This host's id and every scheduler and worker process of the cluster that said it was
    alive, stale once not seen for ``STALE_SECONDS`` (``cluster prune`` forgets those)."""
    from batch_runner.state.postgres.cluster import STALE_SECONDS

    processes = []
    for row in cluster_store(ctx).processes():
        age = max(float(row["age"]), 0.0)
        processes.append(
            {
                "host": row["host"],
                "pid": row["pid"],
                "role": row["role"],
                "last_seen_seconds": round(age, 1),
                "stale": age > STALE_SECONDS,
            }
        )
    return {"host": ctx.host, "processes": processes}


def disabled_jobs(ctx: RunnerContext) -> list[dict[str, Any]]:
    """The config's jobs that their failures disabled (``disable_after``), in the file's
    order: name, reason, since when, failures in a row."""
    from batch_runner.timefmt import iso

    states = ctx.store.job_states()
    found = []
    for job in ctx.config.jobs:
        state = states.get(job.name) or {}
        if state.get("disabled_at") is not None:
            found.append(
                {
                    "name": job.name,
                    "reason": state.get("disabled_reason"),
                    "disabled_at": iso(state["disabled_at"]),
                    "error_count": state.get("error_count"),
                }
            )
    return found


def lanes_of(ctx: RunnerContext, running: list[dict[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """Per lane: its width, the runs running in it, how many wait; None without lanes.

    A lane no longer configured that still has runs is listed too, marked so.
    """
    settings = ctx.config.settings
    waiting = ctx.store.pending_by_lane()
    leftover = ({r.get("lane", "default") for r in running} | set(waiting)) - set(settings.lanes)
    if not settings.has_lanes and not leftover:
        return None
    names = list(settings.lanes) + sorted(leftover)
    return {
        name: {
            "width": settings.width(name),
            "configured": name in settings.lanes,
            "running": [r["run_id"] for r in running if r.get("lane", "default") == name],
            "pending": waiting.get(name, 0),
        }
        for name in names
    }
