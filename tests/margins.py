"""Upper bounds on "promptly" that a loaded machine cannot break.

A test that checks something ends promptly tells two code paths apart: the working one, done
in well under a second, and a broken one that waits for something long (the job's own end, a
kill grace, a hanging server, a poll interval). The test makes the broken path take ``SLOW``
seconds and asserts ``PROMPT``, half of that: a shared CI machine would have to slow the working
path some thirty-fold to fail the test, while the broken path fails it every time. The figures
themselves (how many milliseconds a stop or a timeout takes) are measured in ``benchmarks/``.
"""

from __future__ import annotations

SLOW = 30.0  # what the broken path waits for: a job's own run, a grace, a hang, an interval
PROMPT = SLOW / 2
