"""Whether the printed command will start where cron or systemd runs it."""

from __future__ import annotations

import os
import subprocess

# What cron gives a job (crontab(5)); systemd gives a service little more.
BARE_PATH = "/usr/bin:/bin"


def starts_in_bare_env(python: str, root: str, home: str | None = None) -> str | None:
    """None when ``python -m batch_runner`` starts from ``root`` with cron's environment.

    Otherwise why not, as one sentence. The usual cause: batch_runner was imported from a
    source tree that is on ``sys.path`` only because it was the current directory.
    """
    env = {"PATH": BARE_PATH, "HOME": home or os.path.expanduser("~"), "SHELL": "/bin/sh"}
    try:
        result = subprocess.run(
            [python, "-m", "batch_runner", "--version"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} could not be started from {root} ({exc})."
    if result.returncode == 0:
        return None
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return (
        f"{python} -m batch_runner fails from {root} with cron's bare environment ({last}); "
        "install batch_runner for that Python (pip install -e .) before installing this."
    )
