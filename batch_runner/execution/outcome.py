"""What an attempt is given and how it ended: the records every kind of attempt shares.

Apart from the executor so the code that records outcomes (bookkeeping, notices, ``queue``)
does not import subprocess and the rest of the executor to know the shape.
"""

from __future__ import annotations

from batch_runner.valuetype import Record

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class AttemptOutcome(Record):
    """How an attempt ended."""

    status: str  # success, error, timeout, stopped or interrupted (judge.Status)
    exit_code: int | None  # None when it never started or a signal ended it
    error: str | None  # None on success; else a one-line reason, then the stderr tail if any
    output: str  # the last output_max_bytes of stdout and stderr, in arrival order
    output_truncated: bool  # the output or the run log was cut
    started_at: float  # time.time()
    ended_at: float
    pid: int | None
    # Extra fields for the JSONL record of kinds of runs other than commands (an HTTP job's
    # response_status, response_headers, response_body); None for none.
    extra: dict[str, Any] | None = None


class AttemptRequest(Record):
    """Everything one attempt needs; built by the runner from the run's frozen spec."""

    run_id: str
    job_name: str
    attempt: int
    argv: list[str]
    cwd: str
    env: dict[str, str]  # the full child environment
    timeout: float  # seconds
    kill_grace: float  # seconds between SIGTERM and SIGKILL
    log_path: str  # the run log file (its folders may not exist yet)
    run_log_max_bytes: int
    output_max_bytes: int
