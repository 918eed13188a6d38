"""Each module registers its subcommands; handlers import what is costly only when they run."""

from batch_runner.cli.commands import (
    configcmds,
    control,
    daemon,
    export,
    history,
    jobs,
    maintenance,
    queue,
    run,
)

REGISTRARS = [
    run.register,
    jobs.register,
    configcmds.register,
    history.register,
    daemon.register,
    export.register,
    maintenance.register,
    queue.register,
    control.register,
]
