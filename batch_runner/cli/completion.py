"""Shell completion through argcomplete: commands, options, job names and run ids.

The shell runs ``batch_runner`` itself with ``$_ARGCOMPLETE`` set; only then is argcomplete
imported (``main`` checks the variable first), so completion costs the CLI nothing at start.
Job names come from the config (the snapshot, as any command loads it) and run ids from the
state database; a project that cannot be read completes nothing rather than print an error
into the user's command line.
"""

from __future__ import annotations

import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

SHELLS = ("bash", "zsh", "fish")
# How many run ids to offer: the waiting and running ones, then the latest finished.
RECENT_RUNS = 200


def complete() -> None:
    """Answer the shell's completion request and exit (argcomplete's protocol)."""
    import argcomplete

    from batch_runner.cli.parser import build_parser

    argcomplete.autocomplete(build_parser(), always_complete_options=False)


def shell_code(shell: str) -> str:
    """The script that hooks ``batch_runner`` into ``shell``'s completion."""
    from argcomplete.shell_integration import shellcode

    return shellcode(["batch_runner"], shell=shell)


def job_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The names of the config's jobs (argcomplete completer)."""
    config = _config(parsed_args)
    return [job.name for job in config.jobs if job.name.startswith(prefix)] if config else []


def run_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Waiting and running runs first, then the latest finished (argcomplete completer)."""
    config = _config(parsed_args)
    if config is None:
        return []
    from batch_runner.state.layout import LogLayout
    from batch_runner.state.store import WAITING_STATUSES, open_existing_store

    try:
        store = open_existing_store(LogLayout(config.settings.log_dir), config.settings.backend)
        if store is None:
            return []
        try:
            waiting = store.runs_with_status("running", *WAITING_STATUSES)
            runs = waiting + store.recent_finished(RECENT_RUNS)
        finally:
            store.close()
    except Exception:  # a damaged or locked database: nothing to offer
        return []
    ids = dict.fromkeys(str(run["run_id"]) for run in runs)
    return [run_id for run_id in ids if run_id.startswith(prefix)]


def jobs_and_run_ids(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    return job_names(prefix, parsed_args) + run_ids(prefix, parsed_args)


def _config(parsed_args: argparse.Namespace) -> Any:
    from batch_runner.cli import app

    try:
        return app.load(parsed_args)
    except Exception:  # completion must never print into the command line being typed
        return None


def requested() -> bool:
    return "_ARGCOMPLETE" in os.environ


def offers(action: Any, completer: Any) -> None:
    """Give an argparse argument its completer (argcomplete reads ``action.completer``)."""
    action.completer = completer
