"""``cron NAME`` / ``cron --all``: every mapping of SPEC 12, the refusals, and the line at work.

The key test runs the printed line's command the way cron does: ``sh -c`` from ``/`` with a bare
environment and no virtualenv, then reads the job's record from the JSONL log.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import cli, job, write_config

from batch_runner import __version__
from batch_runner.config.spec import ConfigSpec, JobSpec, Settings
from batch_runner.export import cron
from batch_runner.export.cron import CronError, cron_fields, cron_line, crontab_all
from batch_runner.export.probe import starts_in_bare_env
from batch_runner.schedules import parse_schedule

PYTHON = "/opt/batch/venv/bin/python"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SYSTEM_TZ = ZoneInfo("Etc/UTC")


def spec(
    name: str, schedule_type: str = "interval", schedule_time: str = "3600", **extra: Any
) -> JobSpec:
    return JobSpec(
        name=name,
        schedule_type=schedule_type,  # type: ignore[arg-type]
        schedule_time=schedule_time,
        command="true",
        **extra,
    )


def config_of(*jobs: JobSpec, root: str = "/srv/batch", log_dir: str | None = None) -> ConfigSpec:
    return ConfigSpec(
        path=f"{root}/config/batch_config.json",
        root=root,
        settings=Settings(log_dir=log_dir or f"{root}/logs"),
        jobs=jobs,
    )


def fields_of(schedule_type: str, schedule_time: str) -> str:
    return cron_fields(parse_schedule(schedule_type, schedule_time))


def as_cron_runs_it(line: str) -> str:
    """The command part of a crontab line, as cron hands it to the shell."""
    command = line.split(" ", 5)[5]
    assert re.search(r"(?<!\\)%", command) is None, "an unescaped % would cut the command"
    return command.replace("\\%", "%")


# --- schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_time", "expected"),
    [
        ("60", "* * * * *"),
        ("120", "*/2 * * * *"),
        ("5m", "*/5 * * * *"),
        ("900", "*/15 * * * *"),
        ("20m", "*/20 * * * *"),
        ("1800", "*/30 * * * *"),
        ("3600", "0 * * * *"),
        ("1h", "0 * * * *"),
        ("2h", "0 */2 * * *"),
        ("10800", "0 */3 * * *"),
        ("21600", "0 */6 * * *"),
        ("8h", "0 */8 * * *"),
        ("43200", "0 */12 * * *"),
        ("86400", "0 0 * * *"),
        ("1d", "0 0 * * *"),
    ],
)
def test_intervals_map_as_the_spec_says(schedule_time: str, expected: str) -> None:
    assert fields_of("interval", schedule_time) == expected


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "expected"),
    [
        ("daily", "02:00", "0 2 * * *"),
        ("daily", "00:00", "0 0 * * *"),
        ("daily", "23:59:00", "59 23 * * *"),
        ("daily", "7:05", "5 7 * * *"),
        ("weekly", "sunday", "0 0 * * 0"),
        ("weekly", "sunday 03:30", "30 3 * * 0"),
        ("weekly", "mon,wed,fri 09:00", "0 9 * * 1,3,5"),
        ("weekly", "Saturday, SUN 18:45", "45 18 * * 0,6"),
        ("weekly", "fri,mon 06:00", "0 6 * * 1,5"),
        ("weekly", "mon,tue,wed,thu,fri,sat,sun 01:00", "0 1 * * *"),
    ],
)
def test_daily_and_weekly_map_to_one_line(
    schedule_type: str, schedule_time: str, expected: str
) -> None:
    assert fields_of(schedule_type, schedule_time) == expected


def _minutes_of_day(fields: str) -> list[int]:
    """An independent reading of the fields these lines use: ``*``, ``*/n`` and numbers."""
    minute, hour, dom, month, dow = fields.split()
    assert (dom, month, dow) == ("*", "*", "*")

    def expand(field: str, size: int) -> list[int]:
        if field == "*":
            return list(range(size))
        if field.startswith("*/"):
            return list(range(0, size, int(field[2:])))
        return [int(field)]

    return sorted(h * 60 + m for h in expand(hour, 24) for m in expand(minute, 60))


def test_every_whole_minute_interval_up_to_a_day_is_exact_or_refused() -> None:
    mapped = []
    for minutes in range(1, 24 * 60 + 1):
        schedule = parse_schedule("interval", str(minutes * 60))
        try:
            fires = _minutes_of_day(cron_fields(schedule))
        except CronError:
            continue
        # Start to start, across the hour and across midnight: the gap is always the interval.
        gaps = [b - a for a, b in zip(fires, [*fires[1:], fires[0] + 24 * 60], strict=True)]
        assert set(gaps) == {minutes}, minutes
        mapped.append(minutes)
    # SPEC 12: minutes that divide 60, hours that divide 24; everything else is refused.
    assert mapped == [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440]


@pytest.mark.parametrize(
    ("schedule_time", "named"),
    [
        ("90m", ["every hour ('0 * * * *')", "every 2 hours ('0 */2 * * *')"]),
        ("5400", ["every hour", "every 2 hours"]),
        ("30", ["every minute ('* * * * *')"]),
        ("30s", ["every minute"]),
        ("7h", ["every 6 hours ('0 */6 * * *')", "every 8 hours ('0 */8 * * *')"]),
        ("45m", ["every 30 minutes ('*/30 * * * *')", "every hour ('0 * * * *')"]),
        ("2d", ["every day ('0 0 * * *')"]),
        ("90.5", ["every minute", "every 2 minutes"]),
    ],
)
def test_refusals_say_why_and_name_what_would_work(schedule_time: str, named: list[str]) -> None:
    with pytest.raises(CronError) as caught:
        fields_of("interval", schedule_time)
    message = str(caught.value)
    assert "cannot be written as a cron schedule, because" in message
    assert "\n" not in message and message.endswith(".")
    for option in named:
        assert option in message


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "named"),
    [
        (
            "daily",
            "02:00:30",
            ["every day at 02:00 ('0 2 * * *')", "every day at 02:01 ('1 2 * * *')"],
        ),
        (
            "weekly",
            "sun 23:59:30",
            ["every Sunday at 23:59 ('59 23 * * 0')", "every Monday at 00:00 ('0 0 * * 1')"],
        ),
    ],
)
def test_seconds_in_a_time_are_refused(
    schedule_type: str, schedule_time: str, named: list[str]
) -> None:
    with pytest.raises(CronError) as caught:
        fields_of(schedule_type, schedule_time)
    assert "smallest unit is one minute" in str(caught.value)
    for option in named:
        assert option in str(caught.value)


# --- lines ---------------------------------------------------------------------------------


def test_the_line_is_exactly_the_spec_form() -> None:
    config = config_of(spec("daily_analysis", "daily", "02:00"))
    assert cron_line(config.jobs[0], config, PYTHON) == (
        "0 2 * * * cd /srv/batch && /opt/batch/venv/bin/python -m batch_runner"
        " -c /srv/batch/config/batch_config.json run-job daily_analysis"
        " >> /srv/batch/logs/cron.log 2>&1"
    )


def test_the_line_uses_the_log_dir_of_the_settings() -> None:
    config = config_of(spec("a"), log_dir="/var/log/batch")
    assert cron_line(config.jobs[0], config, PYTHON).endswith(
        "run-job a >> /var/log/batch/cron.log 2>&1"
    )


def test_awkward_paths_survive_the_shell_and_cron() -> None:
    root = "/srv/it's 100% $HOME `x`"
    config = config_of(spec("a.b-c_d"), root=root)
    python = "/opt/my venv/bin/python"
    words = shlex.split(as_cron_runs_it(cron_line(config.jobs[0], config, python)))
    assert words == [
        "cd",
        root,
        "&&",
        python,
        "-m",
        "batch_runner",
        "-c",
        f"{root}/config/batch_config.json",
        "run-job",
        "a.b-c_d",
        ">>",
        f"{root}/logs/cron.log",
        "2>&1",
    ]


def test_a_line_break_in_a_path_is_refused() -> None:
    config = config_of(spec("a"), root="/srv/two\nlines")
    with pytest.raises(CronError, match="line break"):
        cron_line(config.jobs[0], config, PYTHON)


def test_a_refused_line_names_the_job() -> None:
    config = config_of(spec("report", "interval", "90m"))
    with pytest.raises(CronError, match=r"^job 'report': every 90 minutes cannot"):
        cron_line(config.jobs[0], config, PYTHON)


def test_all_names_every_job_it_cannot_convert() -> None:
    config = config_of(
        spec("report", "interval", "90m"),
        spec("ok", "daily", "02:00"),
        spec("odd", "interval", "7m"),
    )
    _, refusals = crontab_all(config, PYTHON, SYSTEM_TZ, NOW)
    assert [why.split(":")[0] for why in refusals] == ["job 'report'", "job 'odd'"]


def test_python_is_absolute_and_keeps_the_venv_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(venv_python))
    assert cron.python_executable() == str(venv_python)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "venv/bin/python")
    assert cron.python_executable() == str(venv_python)


# --- time zones ----------------------------------------------------------------------------


def test_a_job_in_another_zone_gets_cron_tz_and_the_comment() -> None:
    config = config_of(spec("berlin", "daily", "02:00", timezone="Europe/Berlin"))
    lines = cron.cron_entry(config.jobs[0], config, PYTHON, SYSTEM_TZ, NOW).splitlines()
    assert lines[0].startswith("#") and "CRON_TZ" in lines[0]
    assert "Debian's among them" in lines[0] and "ignore it" in lines[0]
    assert lines[1] == "CRON_TZ=Europe/Berlin"
    assert lines[2].startswith("0 2 * * * cd /srv/batch && ")
    assert len(lines) == 3


@pytest.mark.parametrize("timezone", [None, "UTC", "Etc/UTC", "Etc/Universal"])
def test_no_cron_tz_when_the_clock_is_the_systems(timezone: str | None) -> None:
    config = config_of(spec("here", "daily", "02:00", timezone=timezone))
    text = cron.cron_entry(config.jobs[0], config, PYTHON, SYSTEM_TZ, NOW)
    assert "CRON_TZ" not in text and len(text.splitlines()) == 1


def test_intervals_on_a_utc_system_need_no_cron_tz() -> None:
    config = config_of(spec("tick", "interval", "15m", timezone="Asia/Tokyo"))
    assert "CRON_TZ" not in cron.cron_entry(config.jobs[0], config, PYTHON, SYSTEM_TZ, NOW)


@pytest.mark.parametrize("system", ["Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"])
def test_intervals_are_pinned_to_utc_where_the_system_clock_has_dst(system: str) -> None:
    """Issue 17.14: `0 */4 * * *` on a local clock with DST has a 3 h and a 5 h step a year."""
    config = config_of(spec("tick", "interval", "4h"), spec("nightly", "daily", "02:00"))
    entry = cron.cron_entry(config.jobs[0], config, PYTHON, ZoneInfo(system), NOW)
    assert entry.splitlines()[1:3] == ["CRON_TZ=UTC", entry.splitlines()[2]]
    assert entry.splitlines()[2].startswith("0 */4 * * * ")
    text, _ = crontab_all(config, PYTHON, ZoneInfo(system), NOW)
    lines = text.splitlines()
    utc = lines.index("CRON_TZ=UTC")
    assert " run-job tick " in lines[utc + 1] + " "
    nightly = next(
        i
        for i, line in enumerate(lines)
        if line.endswith("run-job nightly >> /srv/batch/logs/cron.log 2>&1")
    )
    assert nightly < utc  # the daily job stays on the system's clock
    assert lines[-2] == f"CRON_TZ={system}"  # and lines below the block get it back


def test_zones_that_keep_one_clock_are_the_same() -> None:
    assert cron.same_clock(ZoneInfo("Europe/London"), ZoneInfo("Europe/Lisbon"), NOW)
    assert cron.same_clock(ZoneInfo("Europe/London"), ZoneInfo("Europe/Dublin"), NOW)
    assert cron.same_clock(ZoneInfo("America/New_York"), ZoneInfo("America/Toronto"), NOW)
    # Same offset in winter, not in summer: a CRON_TZ line is needed.
    assert not cron.same_clock(ZoneInfo("Europe/Berlin"), ZoneInfo("Africa/Lagos"), NOW)


# --- a whole crontab -----------------------------------------------------------------------


def _crontab() -> tuple[ConfigSpec, str]:
    config = config_of(
        spec("berlin", "weekly", "mon,wed,fri 09:00", timezone="Europe/Berlin"),
        spec("nightly", "daily", "02:00"),
        spec("paused", "interval", "15m", enabled=False),
        spec("tokyo", "daily", "08:00", timezone="Asia/Tokyo"),
        spec("tick", "interval", "5m"),
    )
    return config, crontab_all(config, PYTHON, SYSTEM_TZ, NOW)[0]


def test_all_has_a_header_saying_where_it_came_from_and_how_to_install() -> None:
    config, text = _crontab()
    header = [line for line in text.splitlines() if line.startswith("#")][:8]
    joined = "\n".join(header)
    assert config.path in header[0]
    assert f"batch_runner {__version__}" in joined and NOW.isoformat() in joined
    assert "crontab batch_runner.cron" in joined and "crontab -e" in joined
    assert f"{PYTHON} -m batch_runner -c {config.path} cron --all" in joined


def test_all_has_one_line_per_enabled_job_and_leaves_disabled_ones_out() -> None:
    _, text = _crontab()
    job_lines = [line for line in text.splitlines() if " run-job " in line and line[0] != "#"]
    assert [line.split(" run-job ")[1].split()[0] for line in job_lines] == [
        "nightly",
        "tick",
        "berlin",
        "tokyo",
    ]
    assert "run-job paused" not in text
    assert "# Disabled, left out: paused" in text


def test_all_puts_zoned_jobs_last_so_cron_tz_moves_no_other_line() -> None:
    _, text = _crontab()
    lines = text.splitlines()
    current_zone = None
    zone_of_job = {}
    for line in lines:
        if line.startswith("CRON_TZ="):
            current_zone = line.split("=", 1)[1]
        elif " run-job " in line and not line.startswith("#"):
            zone_of_job[line.split(" run-job ")[1].split()[0]] = current_zone
    assert zone_of_job == {
        "nightly": None,
        "tick": None,
        "berlin": "Europe/Berlin",
        "tokyo": "Asia/Tokyo",
    }
    zone_lines = [i for i, line in enumerate(lines) if line.startswith("CRON_TZ=")]
    *job_zones, reset = zone_lines
    for index in job_zones:
        assert "Debian's among them" in lines[index - 1]
    # A line the user keeps below the block is back in the system's zone.
    assert lines[reset] == "CRON_TZ=Etc/UTC" and "system's time zone" in lines[reset - 1]
    assert not any(" run-job " in line for line in lines[reset:])


def test_all_without_zoned_jobs_sets_no_cron_tz() -> None:
    config = config_of(spec("a"), spec("b", "interval", "5m"))
    assert "CRON_TZ" not in crontab_all(config, PYTHON, SYSTEM_TZ, NOW)[0]


def test_all_keeps_the_other_jobs_and_comments_out_the_one_cron_cannot_express() -> None:
    config = config_of(spec("ok"), spec("odd", "interval", "90m"))
    text, refusals = crontab_all(config, PYTHON, SYSTEM_TZ, NOW)
    assert len(refusals) == 1 and refusals[0].startswith("job 'odd': every 90 minutes")
    [comment] = [line for line in text.splitlines() if "'odd'" in line]
    assert comment == f"# Left out, cron cannot run it as configured: {refusals[0]}"
    assert [line for line in text.splitlines() if " run-job " in line and line[0] != "#"]
    assert " run-job odd" not in text


def test_all_with_no_enabled_job_is_still_a_valid_crontab() -> None:
    config = config_of(spec("off", enabled=False))
    text, _ = crontab_all(config, PYTHON, SYSTEM_TZ, NOW)
    assert all(line == "" or line.startswith("#") for line in text.splitlines())


# --- the command line ----------------------------------------------------------------------


def _one_job(project: Path, **extra: Any) -> Path:
    return write_config(project, [job("hello", "echo hi", **extra)])


@pytest.mark.parametrize("argv", [["cron"], ["cron", "hello", "--all"]])
def test_cron_needs_exactly_one_of_name_and_all(
    project: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _one_job(project)
    assert cli(*argv) == 2
    assert "NAME or --all" in capsys.readouterr().err


def test_cron_of_an_unknown_job_exits_3(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_job(project)
    assert cli("cron", "helo") == 3
    assert "did you mean 'hello'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("schedule_time", "nearest"),
    [
        ("90m", "every hour ('0 * * * *') and every 2 hours"),
        ("30", "every minute ('* * * * *')"),
        ("7h", "every 6 hours ('0 */6 * * *') and every 8 hours"),
        ("45m", "every 30 minutes ('*/30 * * * *') and every hour"),
    ],
)
def test_cron_refuses_with_exit_2_and_one_sentence(
    project: Path, schedule_time: str, nearest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_job(project, schedule_time=schedule_time)
    assert cli("cron", "hello") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: job 'hello': every ")
    assert nearest in err


def test_cron_all_with_a_bad_job_exits_2_with_it_commented_out(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("ok", "true"), job("bad", "true", schedule_time="7h")])
    assert cli("cron", "--all") == 2
    out, err = capsys.readouterr()
    assert "run-job ok " in out and "# Left out, cron cannot run it as configured: job 'bad'" in out
    assert err.startswith("error: job 'bad': every 7 hours") and err.count("\n") == 1


def test_cron_daily_seconds_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _one_job(project, schedule_type="daily", schedule_time="02:00:30")
    assert cli("cron", "hello") == 2
    assert "02:01 ('1 2 * * *')" in capsys.readouterr().err


def test_cron_all_prints_enabled_jobs_through_the_cli(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        project,
        [
            job("a", "true"),
            job("b", "true", enabled=False),
            job("c", "true", schedule_type="daily", schedule_time="04:15"),
        ],
    )
    assert cli("cron", "--all") == 0
    out = capsys.readouterr().out
    assert f"# BEGIN batch_runner {project / 'config' / 'batch_config.json'}" in out
    assert "run-job a " in out and "15 4 * * * cd " in out and "run-job b" not in out


def test_cron_warns_when_the_python_cannot_start_batch_runner(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_job(project)
    monkeypatch.setattr(cron, "python_executable", lambda: "/nonexistent/bin/python")
    assert cli("cron", "hello") == 0
    out, err = capsys.readouterr()
    assert out.startswith("0 * * * * cd ")
    assert err.startswith("warning: /nonexistent/bin/python could not be started")


def test_cron_of_a_disabled_job_prints_it_and_warns(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_job(project, enabled=False)
    assert cli("cron", "hello") == 0
    out, err = capsys.readouterr()
    assert "run-job hello" in out and "disabled" in err


# --- the key test: the line as cron runs it ------------------------------------------------


def _bare_env() -> dict[str, str]:
    # Exactly what cron gives a job (crontab(5)): no virtualenv, no PYTHONPATH, nothing else.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.path.expanduser("~"),
        "SHELL": "/bin/sh",
        "LOGNAME": os.environ.get("LOGNAME", "root"),
    }


def test_the_printed_line_runs_the_job_from_slash_with_crons_environment(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = starts_in_bare_env(sys.executable, "/")
    if problem:
        pytest.skip(f"batch_runner is not installed for this Python: {problem}")
    log_dir = project / "var" / "log"  # not <root>/logs, so the line must name it
    marker = project / "ran-in"
    write_config(
        project,
        [
            job(
                "hello",
                f"echo hello from cron; pwd > {marker}",
                schedule_type="daily",
                schedule_time="02:00",
            )
        ],
        settings={"log_dir": str(log_dir)},
    )
    assert cli("cron", "hello") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("0 2 * * * ")

    result = subprocess.run(
        ["/bin/sh", "-c", as_cron_runs_it(line)],
        cwd="/",
        env=_bare_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout == result.stderr == ""  # cron would mail anything printed here
    [results_file] = (log_dir / "batch").glob("batch_*.jsonl")
    assert re.fullmatch(r"batch_\d{8}\.jsonl", results_file.name)
    [record] = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert record["job_name"] == "hello"
    assert record["status"] == "success" and record["exit_code"] == 0
    assert record["output"] == "hello from cron\n"
    assert marker.read_text().strip() == str(project)  # the job ran in the root
    cron_log = (log_dir / "cron.log").read_text()
    assert "hello: success" in cron_log


def test_a_config_path_with_a_line_break_injects_nothing_into_a_crontab() -> None:
    """Issue 16.9: the header comment named the path as it was, line break and all."""
    evil = "/srv/x\n* * * * * id > /tmp/pwned\n#/batch_config.json"
    config = config_of(spec("a"))._replace(path=evil)
    with pytest.raises(CronError, match="line break"):
        crontab_all(config, "/usr/bin/python3", UTC, datetime(2026, 1, 1, tzinfo=UTC))
    empty = config_of()._replace(path=evil)  # no job line would catch it: only the header
    with pytest.raises(CronError, match="line break"):
        crontab_all(empty, "/usr/bin/python3", UTC, datetime(2026, 1, 1, tzinfo=UTC))
