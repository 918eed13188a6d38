"""``cron NAME`` and ``systemd --timer NAME`` for cron and startup jobs (issue 20).

The OnCalendar= conversions are checked twice: as text, and (where systemd-analyze is installed)
by comparing systemd's own next elapses with the scheduler's next runs of the expression.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import cli, job, write_config
from test_export_systemd import ANALYZE, _elapses

from batch_runner.config.spec import ConfigSpec, JobSpec, Settings
from batch_runner.export import systemd
from batch_runner.export.cron import cron_entry, cron_fields, crontab_all
from batch_runner.export.systemd import cron_calendar, timer_units
from batch_runner.schedules import parse_schedule, upcoming

PYTHON = "/opt/batch/venv/bin/python"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SYSTEM_TZ = ZoneInfo("Etc/UTC")


def spec(name: str, schedule_type: str, schedule_time: str, **extra: Any) -> JobSpec:
    return JobSpec(
        name=name,
        schedule_type=schedule_type,  # type: ignore[arg-type]
        schedule_time=schedule_time,
        command="true",
        **extra,
    )


def config_of(*jobs: JobSpec) -> ConfigSpec:
    return ConfigSpec(
        path="/srv/batch/config/batch_config.json",
        root="/srv/batch",
        settings=Settings(log_dir="/srv/batch/logs"),
        jobs=jobs,
    )


# --- cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["30 7 * * 1-5", "*/10 9-17 * * mon-fri", "0 0 1 JAN *", "@weekly", "5/15 * * * 7"],
)
def test_a_cron_line_keeps_the_expression_as_written(expression: str) -> None:
    job_ = spec("report", "cron", expression)
    line = cron_entry(job_, config_of(job_), PYTHON, SYSTEM_TZ, NOW)
    assert line.startswith(f"{expression} cd /srv/batch && ")
    assert "run-job report" in line and line.count("\n") == 1


def test_a_cron_line_in_another_zone_gets_cron_tz_like_daily() -> None:
    job_ = spec("report", "cron", "30 7 * * 1-5", timezone="Europe/Berlin")
    text = cron_entry(job_, config_of(job_), PYTHON, SYSTEM_TZ, NOW)
    comment, zone, line = text.splitlines()
    assert comment.startswith("# CRON_TZ sets the time zone")
    assert zone == "CRON_TZ=Europe/Berlin" and line.startswith("30 7 * * 1-5 cd ")


def test_a_startup_job_runs_at_reboot_with_no_zone() -> None:
    job_ = spec("warm", "startup", "", timezone="Europe/Berlin")
    assert cron_fields(parse_schedule("startup", "")) == "@reboot"
    text = cron_entry(job_, config_of(job_), PYTHON, SYSTEM_TZ, NOW)
    assert text.startswith("@reboot cd /srv/batch && ") and text.count("\n") == 1


def test_a_whole_crontab_holds_cron_and_startup_jobs() -> None:
    jobs = (spec("a", "cron", "*/10 9-17 * * *"), spec("b", "startup", ""))
    text, refusals = crontab_all(config_of(*jobs), PYTHON, SYSTEM_TZ, NOW)
    assert refusals == []
    assert re.search(r"^\*/10 9-17 \* \* \* cd .* run-job a ", text, re.M)
    assert re.search(r"^@reboot cd .* run-job b ", text, re.M)


# --- OnCalendar= ---------------------------------------------------------------------------

CONVERSIONS = [
    ("30 7 * * 1-5", "Mon..Fri *-*-* 07:30:00"),
    ("30 7 * * mon-fri", "Mon..Fri *-*-* 07:30:00"),
    ("0 0 1 * *", "*-*-01 00:00:00"),
    ("*/10 9-17 * * *", "*-*-* 09..17:00/10:00"),
    ("0 9 * * mon,wed", "Mon,Wed *-*-* 09:00:00"),
    ("0 9 * * 0", "Sun *-*-* 09:00:00"),
    ("0 9 * * 7", "Sun *-*-* 09:00:00"),
    ("0 9 * * 5-7", "Fri..Sun *-*-* 09:00:00"),
    ("0 9 * * 0-2", "Mon,Tue,Sun *-*-* 09:00:00"),
    ("0 0 1 jan,jul *", "*-01,07-01 00:00:00"),
    ("15,45 */2 * * *", "*-*-* 00/2:15,45:00"),
    ("5/15 * * * *", "*-*-* *:05/15:00"),
    ("0-30/10 * * * *", "*-*-* *:00,10,20,30:00"),
    ("0 0 */2 * *", "*-*-01/2 00:00:00"),
    ("0 12 * 3-5 *", "*-03..05-* 12:00:00"),
    ("0 0 */2 * 1", "Mon *-*-01/2 00:00:00"),  # a star in a day field: cron ANDs them too
    ("@hourly", "*-*-* *:00:00"),
    ("@monthly", "*-*-01 00:00:00"),
    ("* * * * *", "*-*-* *:*:00"),
]


@pytest.mark.parametrize(("expression", "calendar"), CONVERSIONS)
def test_cron_expressions_convert_to_on_calendar(expression: str, calendar: str) -> None:
    assert cron_calendar(parse_schedule("cron", expression)) == calendar  # type: ignore[arg-type]


def test_the_timer_carries_the_zone_and_persistent() -> None:
    job_ = spec("report", "cron", "30 7 * * 1-5", timezone="Europe/Berlin", catch_up=True)
    _, timer = timer_units(job_, config_of(job_), PYTHON)
    assert "OnCalendar=Mon..Fri *-*-* 07:30:00 Europe/Berlin\n" in timer
    assert "Persistent=true\n" in timer
    assert "Description=Timer for batch_runner job report (every weekday at 07:30)" in timer


@pytest.mark.parametrize("expression", ["0 0 1 * mon", "0 0 1,15 * 1-5", "0 0 13 * fri"])
def test_both_day_fields_restricted_is_refused(expression: str) -> None:
    job_ = spec("report", "cron", expression)
    with pytest.raises(systemd.UnitError) as caught:
        timer_units(job_, config_of(job_), PYTHON)
    assert str(caught.value) == (
        f"job 'report': the cron schedule \"{expression}\" cannot be written as OnCalendar=, "
        "because it restricts both the day of the month and the day of the week, which cron "
        "joins with OR (either day runs) and OnCalendar= with AND (only days that are both); "
        "split it into two jobs, one per day field, or run it with `batch_runner scheduler` "
        "or cron."
    )


def test_a_startup_job_is_refused_as_a_timer() -> None:
    job_ = spec("warm", "startup", "")
    with pytest.raises(systemd.UnitError) as caught:
        timer_units(job_, config_of(job_), PYTHON)
    assert str(caught.value).startswith(
        "job 'warm': a startup job runs when the scheduler starts, which a timer cannot express"
    )


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("expression", "calendar"), CONVERSIONS)
def test_systemd_elapses_where_the_scheduler_runs(expression: str, calendar: str) -> None:
    base = datetime(2026, 2, 27, 23, 55, tzinfo=UTC)
    ours = upcoming(parse_schedule("cron", expression), base, UTC, 8)
    assert _elapses(calendar, base, 8) == [t.astimezone(UTC) for t in ours]


# --- through the CLI -----------------------------------------------------------------------


def test_cli_systemd_refusal_exits_2_with_one_sentence(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("report", "true", schedule_type="cron", schedule_time="0 0 1 * 1")])
    assert cli("systemd", "--timer", "report") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: job 'report': the cron schedule \"0 0 1 * 1\" cannot be")
    assert err.count("\n") == 1


def test_cli_cron_prints_a_cron_job(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(
        project, [job("report", "true", schedule_type="cron", schedule_time="30 7 * * 1-5")]
    )
    assert cli("cron", "report") == 0
    assert capsys.readouterr().out.startswith("30 7 * * 1-5 cd ")
