"""``cluster init``: the cluster's database (``settings.backend``, SPEC 14) made ready for this
version, our tables and procrastinate's, created or upgraded; run again, it changes nothing."""

from __future__ import annotations

import os

from batch_runner.cli import app
from batch_runner.errors import ConfigError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

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


def cmd_init(args: argparse.Namespace) -> int:
    from batch_runner.config.loader import validate_file

    # The file as it is now, fully validated: never a snapshot or the last good config.
    config = validate_file(app.config_path_of(args), app.root_of(args))
    backend = config.settings.backend
    if backend is None:
        # 78, not 2: the command line is right, the config lacks what it needs.
        raise ConfigError(
            f"{config.path} has no settings.backend, so the state is this host's SQLite "
            f"database and there is no cluster to initialize; add {_EXAMPLE} to settings"
        )
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
