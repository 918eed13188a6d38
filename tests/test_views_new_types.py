"""``list`` and ``next`` with the schedule types of issue 20: a cron job shows its next times, a
startup job shows "at scheduler start" and no time (``next --json`` keeps its shape: ISO times
only, so startup jobs are left out of it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from conftest import job, run_cli, write_config
from test_disable_after import list_rows

WEEKDAYS = "30 7 * * 1-5"


def new_types(root: Path) -> None:
    write_config(
        root,
        [
            job("report", "true", schedule_type="cron", schedule_time=WEEKDAYS),
            {"name": "warmup", "command": "true", "schedule_type": "startup"},
            job("hourly", "true"),
        ],
        settings={"timezone": "UTC"},
    )


def cron_times(expression: str, count: int) -> list[str]:
    from cronsim import CronSim

    times = CronSim(expression, datetime.now(UTC).replace(second=0, microsecond=0))
    return [next(times).isoformat() for _ in range(count)]


def test_list_shows_a_cron_jobs_next_time_and_a_startup_job_at_scheduler_start(
    project: Path,
) -> None:
    from batch_runner import schedules

    new_types(project)
    found = list_rows(project)
    expected = cron_times(WEEKDAYS, 1)[0]
    assert datetime.fromisoformat(found["report"]["next_run"]) == datetime.fromisoformat(expected)
    assert found["warmup"]["next_run"] is None
    assert found["warmup"]["schedule_type"] == "startup"
    table = run_cli(project, "list", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    words = schedules.describe(schedules.parse_schedule("cron", WEEKDAYS))
    assert words in lines["report"]
    assert lines["warmup"].count("at scheduler start") == 2  # its schedule and its next run
    assert "UTC" not in lines["warmup"]


def test_next_lists_cron_times_and_names_startup_jobs_without_a_time(project: Path) -> None:
    new_types(project)
    done = run_cli(project, "next", "--count", "200", "--json")
    assert done.returncode == 0, done.stderr
    upcoming = json.loads(done.stdout)
    assert all(set(item) == {"name", "time"} for item in upcoming)
    assert "warmup" not in {item["name"] for item in upcoming}
    report = [datetime.fromisoformat(i["time"]) for i in upcoming if i["name"] == "report"]
    assert len(report) >= 3  # 200 hourly runs span eight days: five weekdays at least
    assert report == [datetime.fromisoformat(t) for t in cron_times(WEEKDAYS, len(report))]
    done = run_cli(project, "next", "--count", "200")
    assert done.returncode == 0, done.stderr
    assert "report" in done.stdout
    assert "at scheduler start: warmup" in done.stdout
    assert done.stdout.count("warmup") == 1
