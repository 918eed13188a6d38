"""Review of issue 20: `next --count N` (SPEC 9 allows up to 100000) with a cron job whose
occurrences are years apart runs past datetime's year 9999 and dies with a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from conftest import run_cli, write_config

from batch_runner.config.spec import JobSpec
from batch_runner.scheduling.plan import upcoming_runs


def test_next_with_a_large_count_and_a_yearly_cron_job_does_not_crash(project: Path) -> None:
    write_config(
        project,
        [{"name": "y", "command": "true", "schedule_type": "cron", "schedule_time": "@yearly"}],
    )
    done = run_cli(project, "next", "--count", "10000")
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert done.returncode == 0, done.stderr[-400:]


def test_upcoming_runs_of_a_yearly_cron_job_for_next_max_count_does_not_raise() -> None:
    # What `next --count 100000` asks of each job (SPEC 9's maximum).
    spec = JobSpec(
        name="yearly", command="true", schedule_type="cron", schedule_time="@yearly", timezone="UTC"
    )
    now = datetime(2026, 12, 6, tzinfo=UTC).timestamp()
    runs = upcoming_runs(spec, now, 100_000, None)
    assert runs[0] == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
