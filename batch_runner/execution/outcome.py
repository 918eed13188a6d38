"""How an attempt ended: the record every kind of attempt (command, HTTP, reaped) produces.

Apart from the executor so the code that records outcomes (bookkeeping, notices, ``queue``)
does not import subprocess and the rest of the executor to know the shape.
"""

from __future__ import annotations

from batch_runner.valuetype import REQUIRED, record


class AttemptOutcome(
    record(
        "AttemptOutcome",
        status=REQUIRED,  # success, error, timeout, stopped or interrupted
        exit_code=REQUIRED,  # None when it never started or a signal ended it
        error=REQUIRED,  # None on success; else a one-line reason, then the stderr tail if any
        output=REQUIRED,  # the last output_max_bytes of stdout and stderr, in arrival order
        output_truncated=REQUIRED,  # the output or the run log was cut
        started_at=REQUIRED,  # time.time()
        ended_at=REQUIRED,
        pid=REQUIRED,
        # Extra fields for the JSONL record of kinds of runs other than commands (an HTTP job's
        # response_status, response_headers, response_body); None for none.
        extra=None,
    )
):
    """How an attempt ended."""

    __slots__ = ()
