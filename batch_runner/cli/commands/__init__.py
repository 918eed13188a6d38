"""Each module registers its subcommands; only the module of the command being run is imported.

``COMMANDS`` maps every command to its module, in the order ``--help`` lists them.
"""

from __future__ import annotations

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

COMMANDS = {
    "run-job": "run",
    "list": "jobs",
    "add": "jobs",
    "remove": "jobs",
    "enable": "jobs",
    "disable": "jobs",
    "validate": "configcmds",
    "init": "configcmds",
    "schema": "configcmds",
    "history": "history",
    "logs": "history",
    "scheduler": "daemon",
    "next": "daemon",
    "status": "daemon",
    "cron": "export",
    "systemd": "export",
    "clean": "maintenance",
    "doctor": "doctor",
    "notify-test": "notifycmd",
    "queue": "queue",
    "stop": "control",
    "progress": "control",
    "token": "access",
    "audit": "access",
    "completion": "shellcompletion",
    "serve": "service",
    "cluster": "cluster",
}

# The common options that take a value, each with the attribute it sets: the parser defines
# them (cli.parser), the cron line's quick parse reads them (cli.main), and their value is
# never the command word.
COMMON_OPTIONS_WITH_VALUE = {
    "-c": "config",
    "--config": "config",
    "--root": "root",
    "-l": "log_level",
    "--log-level": "log_level",
}
LOG_LEVELS = ("debug", "info", "warning", "error")


def command_in(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (after the common options), or None."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in COMMON_OPTIONS_WITH_VALUE or _abbreviates_option_with_value(word):
            skip = True
        elif not word.startswith("-"):
            return word
    return None


# Modules whose ``register(sub, common, argv)`` builds only the subcommand ``argv`` names (a
# parser costs argparse and gettext a few hundred microseconds; ``queue`` has ten).
_NESTED = {"queue"}


def _abbreviates_option_with_value(word: str) -> bool:
    # argparse takes any unambiguous prefix of a long option: --conf for --config.
    return (
        word.startswith("--")
        and len(word) > 2
        and "=" not in word
        and any(option.startswith(word) for option in COMMON_OPTIONS_WITH_VALUE)
    )


def registrars(argv: Sequence[str]) -> list[Callable[[Any, Any], None]]:
    """The ``register`` functions needed to parse ``argv``: one module, or all for help."""
    wanted = COMMANDS.get(command_in(argv) or "")
    modules = [wanted] if wanted else list(dict.fromkeys(COMMANDS.values()))
    import importlib  # here: run-job's own parse imports this package, and never needs it

    found = []
    for name in modules:
        register = importlib.import_module(f"batch_runner.cli.commands.{name}").register
        if name in _NESTED:
            register = _with_argv(register, argv)
        found.append(register)
    return found


def _with_argv(register: Callable[..., None], argv: Sequence[str]) -> Callable[[Any, Any], None]:
    return lambda sub, common: register(sub, common, argv)
