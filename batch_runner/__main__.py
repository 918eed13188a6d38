"""``python -m batch_runner`` and the ``batch_runner`` console script."""

from __future__ import annotations

import sys


def run() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        # Probed by cron wrappers and scripts: answer before importing anything else.
        from batch_runner.version import __version__

        print(f"batch_runner {__version__}")
        sys.exit(0)
    from batch_runner.cli.main import main

    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    run()
