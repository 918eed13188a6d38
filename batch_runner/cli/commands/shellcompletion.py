"""``completion bash|zsh|fish``: the script that makes the shell complete batch_runner."""

from __future__ import annotations

import argparse
import sys

from batch_runner.cli.completion import SHELLS

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INSTALL = {
    "bash": 'eval "$(batch_runner completion bash)"   # in ~/.bashrc',
    "zsh": 'eval "$(batch_runner completion zsh)"    # in ~/.zshrc, after compinit',
    "fish": "batch_runner completion fish > ~/.config/fish/completions/batch_runner.fish",
}


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell code that completes commands, options, job names and run ids",
        description="Install: " + "; ".join(INSTALL.values()),
    )
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(handler=cmd_completion)
    common(p)


def cmd_completion(args: argparse.Namespace) -> int:
    from batch_runner.cli.completion import shell_code

    sys.stdout.write(shell_code(args.shell))
    return 0
