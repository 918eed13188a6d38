"""``doctor [--repair [--yes]] [--json]``: check the state database and the JSONL results; with
``--repair``, move a damaged database aside and rebuild it from the results.

Checks: SQLite's ``integrity_check`` and the schema version (the file opened read-only, never
created or upgraded here), result lines kept back by a full disk, and every line of every
results file. Exit 0 when healthy (warnings allowed), 1 when not. ``--repair`` asks first on a
terminal, or takes ``--yes``; it renames the damaged file, never deletes it, and refuses (exit
75) while another process has the database open, which would go on with the renamed file.
With ``settings.backend`` (a cluster) the state is not here: see ``clusterdoctor``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from batch_runner.cli import app, render
from batch_runner.errors import EXIT_FAILED, EXIT_OK, Busy, StorageError, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from batch_runner.config.spec import ConfigSpec
    from batch_runner.runs.context import RunnerContext
    from batch_runner.state.layout import LogLayout
    from batch_runner.state.slots import Slot
    from batch_runner.state.sqlite.check import DatabaseHealth
    from batch_runner.state.store import Store

Finding = tuple[str, str]  # (ok | warning | problem, one sentence)

NOT_REBUILT = (
    "not rebuilt, as the results never held them: runs that were still waiting in the queue "
    "(queue them again), the planned next runs (the scheduler plans them again when it starts) "
    "the queue's pause (the queue is running), and the web service's tokens (create them again "
    "with `batch_runner token create`), its signed-in sessions and its audit trail"
)


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser(
        "doctor", help="check the state database and the results; --repair rebuilds the state"
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="move a damaged state database aside and rebuild it from the results",
    )
    p.add_argument("--yes", action="store_true", help="repair without asking")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)
    common(p)


def cmd_doctor(args: argparse.Namespace) -> int:
    ctx = app.context(args)
    if ctx.clustered:
        from batch_runner.cli.commands.clusterdoctor import doctor_cluster

        return doctor_cluster(ctx, repair=args.repair, as_json=args.json)
    database, findings = examine(ctx)
    done: list[str] = []
    if args.repair:
        done = repair(ctx, database, assume_yes=args.yes)
        if done:
            database, findings = examine(ctx)
    healthy = not any(level == "problem" for level, _ in findings)
    if args.json:
        render.print_json(
            {
                "healthy": healthy,
                "database": ctx.layout.database,
                "results": ctx.layout.results_dir,
                "repaired": done,
                "findings": [{"level": lvl, "message": msg} for lvl, msg in findings],
            }
        )
    else:
        print_report(done, findings, healthy, repair_asked=args.repair, damaged=database.damaged)
    return EXIT_OK if healthy else EXIT_FAILED


def examine(ctx: RunnerContext) -> tuple[DatabaseHealth, list[Finding]]:
    """The database's health, and every finding: the database's first, then the results'."""
    from batch_runner.state.sqlite.check import check_database

    layout = ctx.layout
    database = check_database(layout.database)
    findings: list[Finding] = [("ok", note) for note in database.notes]
    findings += [("problem", problem) for problem in database.problems]
    if database.unwritten:
        findings.append(
            (
                "problem",
                f"{database.unwritten} result line(s) could not be written to the results "
                f"in {layout.results_dir} (a full disk) and wait in the state database; the "
                "next run, or `batch_runner doctor --repair`, appends them",
            )
        )
    return database, findings + results_findings(layout)


def results_findings(layout: LogLayout) -> list[Finding]:
    from batch_runner.state.rebuild import check_results

    results = check_results(layout)
    findings: list[Finding] = [("problem", sentence) for sentence in results.unreadable]
    where = f"results file(s) in {layout.results_dir}"
    findings.append(("ok", f"{results.records} record(s) in {results.files} {where}"))
    for path, number in results.damaged:
        findings.append(
            (
                "warning",
                f"line {number} of {path} is not a whole record (torn or damaged); history "
                "skips it, and nothing after it is lost",
            )
        )
    if results.damaged_count > len(results.damaged):
        more = results.damaged_count - len(results.damaged)
        findings.append(("warning", f"{more} more line(s) like these"))
    return findings


def repair(ctx: RunnerContext, database: DatabaseHealth, *, assume_yes: bool) -> list[str]:
    """Do what can be done; returns what was done, one sentence each."""
    if database.damaged:
        return _rebuild(ctx, assume_yes)
    if database.unwritten:
        from batch_runner.state.journal import write_waiting

        count = write_waiting(ctx.store, ctx.layout)
        return [f"appended {count} result line(s) that had waited in the state database"]
    return []


def _consent(path: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            "doctor --repair moves the state database aside and rebuilds it; "
            "add --yes to do so without a terminal to ask on"
        )
    sys.stderr.write(
        f"Move the damaged {path} aside (renamed, not deleted) and rebuild the state from the "
        "results? Runs still waiting in the queue are lost. [y/N] "
    )
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        print("nothing was changed", file=sys.stderr)
        return False
    return True


def _rebuild(ctx: RunnerContext, assume_yes: bool) -> list[str]:
    """Move the damaged file aside and rebuild, holding the executor so nothing runs meanwhile
    and the store alone so nobody has the old file open. Asked first: a question left
    unanswered must not hold up every other command."""
    from batch_runner.cli.commands.daemon import scheduler_pid
    from batch_runner.state.sqlite.check import check_database, lock_holders, opened_by_others
    from batch_runner.state.storelock import StoreLock

    layout = ctx.layout
    pid = scheduler_pid(ctx)
    if pid is not None:
        raise Busy(
            f"a scheduler (pid {pid}) is running on {layout.log_dir}; stop it before "
            "`batch_runner doctor --repair`, and start it again afterwards"
        )
    # Told before the question, not after a "y": what /proc shows of other holders and users
    # (checked again under the locks below, which are what keeps them out).
    me = os.getpid()
    early = [p for p in lock_holders(layout.store_lock) if p != me]
    early += [p for p in opened_by_others(layout.database) if p != me and p not in early]
    if early:
        raise Busy(_open_elsewhere(layout, early))
    if not _consent(layout.database, assume_yes):
        return []
    slots = _take_every_slot(ctx)
    store = StoreLock(layout.store_lock)
    try:
        if not store.take_alone():
            raise Busy(_open_elsewhere(layout, lock_holders(layout.store_lock)))
        # A process that locked a lock file since removed is not kept out by this one; it
        # still has the database itself open.
        others = opened_by_others(layout.database)
        if others:
            raise Busy(_open_elsewhere(layout, others))
        # Looked at again now that nobody else has it: another repair may have just finished,
        # and a healthy database (with runs queued since) must not be moved aside.
        if not check_database(layout.database).damaged:
            return []
        return _move_and_rebuild(ctx)
    finally:
        store.release()
        for slot in slots:
            slot.release()


def _take_every_slot(ctx: RunnerContext) -> list[Slot]:
    """Every slot of every lane, so that nothing runs during the repair; Busy if a run is in
    progress in one. Those of a lane narrowed or removed since are among the lock files, which
    tell where runs may still be (the damaged database cannot)."""
    from batch_runner.state.locks import holder_pid
    from batch_runner.state.slots import Slot, slots_on_disk

    every = {
        (lane, index) for lane, width in ctx.config.settings.lanes.items() for index in range(width)
    }
    taken: list[Slot] = []
    for lane, index in sorted(every | slots_on_disk(ctx.layout)):
        slot = Slot(ctx.layout, lane, index)
        if slot.acquire(wait=False):
            taken.append(slot)
            continue
        for other in taken:
            other.release()
        holder = holder_pid(slot.path)
        raise Busy(
            f"a run is in progress{f' (pid {holder})' if holder else ''}; repair once it ends"
        )
    return taken


def _open_elsewhere(layout: LogLayout, pids: list[int]) -> str:
    """``pids``: those known to have it open (none where the system does not tell)."""
    who, it = "another process has", "it"
    if len(pids) == 1:
        who = f"another process (pid {pids[0]}) has"
    elif pids:
        who, it = f"other processes (pids {', '.join(map(str, pids))}) have", "them"
    return (
        f"{who} the state database {layout.database} open (a `queue worker --forever`, a "
        "`run-job` waiting for the executor, a scheduler, or another batch_runner command); "
        f"stop {it} before `batch_runner doctor --repair`, which would move the database away "
        f"from under {it}"
    )


def _move_and_rebuild(ctx: RunnerContext) -> list[str]:
    from batch_runner.state.rebuild import rebuild_from_results
    from batch_runner.state.sqlite.check import move_aside, read_kept_lines

    layout, config = ctx.layout, ctx.config
    kept = read_kept_lines(layout.database)
    aside = move_aside(layout.database, time.time())
    done = [f"moved the damaged state database to {aside}"]
    store = ctx.store  # a new, empty database at the old name
    if kept:  # first, so the rebuild finds their runs in the results
        done.append(_write_back(store, layout, kept))
    runs, jobs = rebuild_from_results(
        store, layout, [job.name for job in config.jobs], _notify_after(config)
    )
    done.append(
        f"rebuilt {runs} finished run(s) and the state of {jobs} job(s) from the results in "
        f"{layout.results_dir}"
    )
    done.append(NOT_REBUILT)
    return done


def _write_back(store: Store, layout: LogLayout, kept: list[dict[str, Any]]) -> str:
    """The result lines the damaged database had kept back, appended (or kept in the new one
    while they still cannot be)."""
    from batch_runner.state.journal import write_waiting

    for line in kept:
        store.remember_unwritten(line["run_id"], line["started_at"], line["record"])
    try:
        write_waiting(store, layout)
    except StorageError as exc:
        return f"{len(kept)} result line(s) the damaged database had kept back wait: {exc}"
    return f"appended {len(kept)} result line(s) the damaged database had kept back"


def _notify_after(config: ConfigSpec) -> Callable[[str], int]:
    thresholds = {job.name: job.notify_after for job in config.jobs}
    return lambda name: thresholds.get(name) or config.settings.notify_after


def print_report(
    done: list[str], findings: list[Finding], healthy: bool, *, repair_asked: bool, damaged: bool
) -> None:
    for sentence in done:
        print(f"repaired: {sentence}")
    for level, message in findings:
        print(f"{level}: {message}")
    problems = sum(level == "problem" for level, _ in findings)
    if healthy:
        print("healthy")
    elif damaged and not repair_asked:
        print(
            f"not healthy: {problems} problem(s); `batch_runner doctor --repair` moves the "
            "damaged database aside and rebuilds it from the results"
        )
    else:
        print(f"not healthy: {problems} problem(s)")
