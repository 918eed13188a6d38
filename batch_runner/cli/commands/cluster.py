"""``cluster init``: the cluster's database (``settings.backend``, SPEC 14) made ready for this
version, our tables and procrastinate's, created or upgraded; run again, it changes nothing.
``cluster status``: the schedulers and workers of every host, alive or stale; ``cluster
prune``: the stale ones forgotten."""

from __future__ import annotations

import os

from batch_runner.cli import app
from batch_runner.errors import ConfigError, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from batch_runner.runs.context import RunnerContext
    from batch_runner.state.postgres.schema import Initialized

# An upgrade may rewrite a large table, and a second `cluster init` waits for the first: more
# room than a command's few seconds. Connecting keeps its 2 s: a database that is down is
# still said within 3.
_INIT_STATEMENT_SECONDS = 120.0
_INIT_LOCK_SECONDS = 60.0
_INIT_DEADLINE_SECONDS = 300.0
_EXAMPLE = '"backend": {"type": "postgres", "dsn_env": "BATCH_RUNNER_DSN"}'


def register(sub: Any, common: Any) -> None:
    cluster = sub.add_parser("cluster", help="the database several hosts share (settings.backend)")
    csub = cluster.add_subparsers(
        dest="cluster_command",
        metavar="CLUSTER_COMMAND",
        required=True,
        parser_class=type(cluster),
    )
    p = csub.add_parser(
        "init", help="create or upgrade batch_runner's and procrastinate's tables in it"
    )
    p.set_defaults(handler=cmd_init)
    common(p)
    p = csub.add_parser(
        "status", help="every scheduler and worker of the cluster, and when each was last seen"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
    common(p)
    p = csub.add_parser(
        "prune", help="forget the processes not seen for a while (stale: gone, or cut off)"
    )
    p.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="not seen for more than SECONDS (default: 10, when a process counts as stale)",
    )
    p.set_defaults(handler=cmd_prune)
    common(p)


def cmd_init(args: argparse.Namespace) -> int:
    from batch_runner.config.loader import validate_file

    # The file as it is now, fully validated: never a snapshot or the last good config.
    config = validate_file(app.config_path_of(args), app.root_of(args))
    backend = config.settings.backend
    if backend is None:
        raise _no_backend(config.path, "initialize")
    from batch_runner.state.postgres import connection, schema

    endpoint = connection.Endpoint(
        connection.dsn_from(backend.dsn_env, os.environ), backend.dsn_env
    )
    session = connection.Session(
        endpoint,
        role="init",
        deadline=_INIT_DEADLINE_SECONDS,
        statement_timeout=_INIT_STATEMENT_SECONDS,
        lock_timeout=_INIT_LOCK_SECONDS,
    )
    with session as conn:
        done = schema.initialize(conn, endpoint.where)
    for line in report(done, endpoint.where):
        print(line)
    return 0


def _no_backend(path: str, verb: str) -> ConfigError:
    # 78, not 2: the command line is right, the config lacks what it needs.
    return ConfigError(
        f"{path} has no settings.backend, so the state is this host's SQLite database and "
        f"there is no cluster to {verb}; add {_EXAMPLE} to settings"
    )


def _cluster_context(args: argparse.Namespace, verb: str) -> RunnerContext:
    ctx = app.context(args)
    if not ctx.clustered:
        raise _no_backend(ctx.config.path, verb)
    return ctx


def cmd_status(args: argparse.Namespace) -> int:
    from batch_runner.cli import render
    from batch_runner.runs.overview import cluster_of

    cluster = cluster_of(_cluster_context(args, "show"))
    if args.json:
        render.print_json(cluster)
        return 0
    print(f"this host is {render.shown(cluster['host'])}")
    if not cluster["processes"]:
        print("no scheduler or worker of the cluster has been seen")
        return 0
    render.print_table(
        ["host", "role", "pid", "last seen", "state"],
        [
            [
                p["host"],
                p["role"],
                p["pid"],
                f"{p['last_seen_seconds']:.0f} s ago",
                "STALE" if p["stale"] else "alive",
            ]
            for p in cluster["processes"]
        ],
    )
    if any(p["stale"] for p in cluster["processes"]):
        print("`batch_runner cluster prune` forgets the stale ones")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from batch_runner.runs.overview import cluster_store
    from batch_runner.state.postgres.cluster import STALE_SECONDS

    older_than = STALE_SECONDS if args.older_than is None else args.older_than
    # Below the stale bound a live process is forgotten too, and back at its next beat.
    if not 0 <= older_than <= 10**9:
        raise UsageError(
            f"--older-than must be a number of seconds from 0 to 1000000000, not {older_than:g}"
        )
    forgotten = cluster_store(_cluster_context(args, "prune")).prune_processes(older_than)
    print(
        f"forgot {forgotten} process{'es' if forgotten != 1 else ''} "
        f"not seen for more than {older_than:g} s"
    )
    return 0


def report(done: Initialized, where: str) -> list[str]:
    """One line per schema: created, up to date, or migrated (from what, to what)."""
    ours, theirs = done.ours, done.procrastinate
    if ours.before is None:
        first = f"created the batch_runner schema (version {ours.after}) in the cluster database"
    elif ours.before == ours.after:
        first = f"the batch_runner schema (version {ours.after}) is already up to date"
    else:
        first = f"migrated the batch_runner schema from version {ours.before} to {ours.after}"
    package = f"procrastinate {theirs.package}"
    if theirs.before is None:
        second = f"created procrastinate's schema ({package}, migration {theirs.after})"
    elif not theirs.applied:
        second = (
            f"procrastinate's schema ({package}, migration {theirs.after}) is already up to date"
        )
    else:
        count = len(theirs.applied)
        second = (
            f"migrated procrastinate's schema from {theirs.before} to {theirs.after} "
            f"({count} migration{'s' if count != 1 else ''}, {package})"
        )
    return [f"{where}: {first}", f"{where}: {second}"]
