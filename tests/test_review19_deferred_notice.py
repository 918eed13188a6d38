"""Review of issue 19: a job's success is a "quiet" end (``finish._quiet``) and waits for the
next commit, which ``runs.handoff`` makes after the next run's spawn (``after_spawn``) or 20 ms
into it (``started``). But a success may be due a recovery notice, and the notice is delivered
right there (``Handoff._after_commit``), inside the executor's callbacks: the next run is then
not supervised (no timeout, no stop) until every notifier has answered or timed out.
"""

from __future__ import annotations

from pathlib import Path

from conftest import job, read_results, run_cli, write_config
from margins import PROMPT, SLOW


def test_a_recovery_notice_does_not_hold_up_the_next_runs_timeout(project: Path) -> None:
    """flaky fails once (a failure notice), then succeeds in a worker (a recovery notice,
    whose notifier takes SLOW seconds); the ad-hoc run after it has a 1 s timeout. It must
    end ``timeout`` about 1 s after its start, not once the notifier is done."""
    toggle = project / "fixed"
    notifier = f'cat > /dev/null; if [ "$BATCH_NOTICE_KIND" = recovery ]; then sleep {SLOW:g}; fi'
    write_config(
        project,
        [job("flaky", f"[ -e {toggle} ]")],
        settings={
            "notify_after": 1,
            "notifiers": [{"type": "command", "command": notifier, "timeout": 2 * SLOW}],
        },
    )
    assert run_cli(project, "run-job", "flaky").returncode == 1  # the failure notice: at once
    toggle.touch()
    assert run_cli(project, "run-job", "--queue", "flaky").returncode == 0
    added = run_cli(project, "queue", "add", "--timeout", "1", "--", "sleep", f"{3 * SLOW:g}")
    assert added.returncode == 0, added.stderr
    slow = added.stdout.strip()

    assert run_cli(project, "queue", "worker", timeout=4 * SLOW).returncode == 1

    (record,) = [r for r in read_results(project) if r["run_id"] == slow]
    assert record["status"] == "timeout"
    assert record["duration_seconds"] < PROMPT, (
        f"a 1 s timeout ended the run after {record['duration_seconds']} s: the recovery "
        "notice of the run before it was delivered while it ran unsupervised"
    )
