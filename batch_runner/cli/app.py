"""From parsed options to the paths and the validated config a command works with."""

from __future__ import annotations

import os
import sys

from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import ConfigError
from batch_runner.paths import resolve_config_path, resolve_root
from batch_runner.runs.context import RunnerContext

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def root_of(args: argparse.Namespace) -> str:
    return resolve_root(getattr(args, "root", None), os.environ, getattr(args, "config", None))


def config_path_of(args: argparse.Namespace) -> str:
    return resolve_config_path(getattr(args, "config", None), root_of(args), os.environ)


# Commands that read state or control runs: they work from the last config that validated
# when the file no longer does (SPEC 2), so an edit in progress never locks the operator out.
LAST_GOOD_COMMANDS = frozenset(
    {
        "status",
        "history",
        "logs",
        "list",
        "next",
        "stop",
        "queue",
        "cron",
        "systemd",
        # Revoking a token is urgent; neither it nor the audit needs the jobs.
        "token",
        "audit",
    }
)


def load(args: argparse.Namespace) -> ConfigSpec:
    """The validated config (a cached snapshot when the file has not changed); for the
    commands above, the last config that validated, with a warning, when it no longer does."""
    from batch_runner.config.loader import load_config

    path, root = config_path_of(args), root_of(args)
    try:
        return load_config(path, root)
    except ConfigError as exc:
        if getattr(args, "command", None) not in LAST_GOOD_COMMANDS:
            raise
        from batch_runner.config.lastgood import last_good_config
        from batch_runner.config.trust import UntrustedConfig
        from batch_runner.state.ownership import UnsafeLogDir

        # Not for a config that is gone (its error says so and points at `init`) nor for one
        # refused as unsafe: the last good copy is for an edit in progress.
        unusable = isinstance(exc, UnsafeLogDir | UntrustedConfig) or not os.path.isfile(path)
        found = None if unusable else last_good_config(path, root)
        if found is None:
            raise
        config, validated_at = found
        print(f"warning: {_last_good_warning(exc, validated_at)}", file=sys.stderr)
        return config


def _last_good_warning(exc: ConfigError, validated_at: float) -> str:
    from batch_runner.timefmt import iso

    first = f" ({exc.problems[0].strip()})" if exc.problems else ""
    return (
        f"{exc}{first}; working from the last config that validated, at "
        f"{iso(validated_at)}: `batch_runner validate` lists every problem"
    )


def context(args: argparse.Namespace, *, durable: bool = False) -> RunnerContext:
    return RunnerContext(config=load(args), durable=durable)
