"""The ``command`` notifier: runs a command like a job's, with the notice as JSON on stdin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from typing import IO, Any

from batch_runner.execution.command import build_argv
from batch_runner.execution.procs import kill_group
from batch_runner.notify import NotifierError

# The end of the command's output that explains a failure.
REASON_TAIL_CHARS = 300


def send(notifier: Mapping[str, Any], notice: dict[str, Any], *, cwd: str) -> None:
    """Run the command in its own process group; raise NotifierError unless it exits 0."""
    argv = build_argv(notifier["command"], notifier.get("shell", "auto"))
    timeout = float(notifier.get("timeout", 60))
    env = {
        **os.environ,
        "BATCH_NOTICE_KIND": notice["kind"],
        "BATCH_JOB_NAME": notice.get("job_name") or "",
    }
    # Output goes to a file, not a pipe: memory stays bounded whatever the command prints.
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise NotifierError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        try:
            # One JSON document per line: `cat >> notices.jsonl` keeps notices apart.
            proc.communicate((json.dumps(notice) + "\n").encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)  # the whole group: nothing is left behind
            proc.wait()
            raise NotifierError(f"timed out after {timeout:g} s") from None
        if proc.returncode != 0:
            raise NotifierError(_exit_reason(proc.returncode) + _tail(output))


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tail(output: IO[bytes]) -> str:
    output.seek(0, os.SEEK_END)
    output.seek(max(output.tell() - REASON_TAIL_CHARS, 0))
    text = output.read().decode(errors="replace").strip()
    return f": {' '.join(text.split())}" if text else ""
