"""``doctor`` on a cluster (``settings.backend``): the state is the cluster's PostgreSQL
database, so there is no SQLite file to check or rebuild here. What is checked: that the
database answers (and has the schema this version needs: opening the store refuses any other,
exit 75), this host's result lines waiting there for its JSONL, the processes that stopped
saying they are alive, and this host's JSONL results."""

from __future__ import annotations

from batch_runner.cli import render
from batch_runner.cli.commands.doctor import Finding, print_report, results_findings
from batch_runner.errors import EXIT_FAILED, EXIT_OK, ConfigError
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.overview import cluster_of, cluster_store


def doctor_cluster(ctx: RunnerContext, *, repair: bool, as_json: bool) -> int:
    if repair:
        # 78: the config is what makes the request moot, as for `cron` in a cluster.
        raise ConfigError(
            f"{ctx.config.path} has a settings.backend (a cluster): its state is in "
            "PostgreSQL, and there is nothing on this host for `doctor --repair` to repair"
        )
    where = cluster_store(ctx).endpoint.where
    findings = _database_findings(ctx, where) + results_findings(ctx.layout)
    healthy = not any(level == "problem" for level, _ in findings)
    if as_json:
        render.print_json(
            {
                "healthy": healthy,
                "database": where,
                "results": ctx.layout.results_dir,
                "repaired": [],
                "findings": [{"level": lvl, "message": msg} for lvl, msg in findings],
            }
        )
    else:
        print_report([], findings, healthy, repair_asked=False, damaged=False)
    return EXIT_OK if healthy else EXIT_FAILED


def _database_findings(ctx: RunnerContext, where: str) -> list[Finding]:
    """The database answered (a BackendUnavailable otherwise, exit 75); this host's result
    lines waiting in it for its JSONL; who went quiet."""
    waiting = ctx.store.count_pending()
    findings: list[Finding] = [
        ("ok", f"the cluster database at {where} answers; {waiting} run(s) wait in its queue")
    ]
    unwritten = len(ctx.store.unwritten()) if ctx.store.has_unwritten() else 0
    if unwritten:
        findings.append(
            (
                "warning",
                f"{unwritten} result line(s) of this host could not be written to "
                f"{ctx.layout.results_dir} (a full disk) and wait in the cluster database, "
                "whose results have them all the same",
            )
        )
    shown = render.shown
    for process in cluster_of(ctx)["processes"]:
        if process["stale"]:
            findings.append(
                (
                    "warning",
                    f"{shown(str(process['role']))} {shown(str(process['host']))} pid "
                    f"{process['pid']} was last seen {process['last_seen_seconds']:.0f} s ago "
                    "(stale: gone, or cut off from the database); `batch_runner cluster prune` "
                    "forgets it",
                )
            )
    return findings
