"""``systemd`` and ``systemd --timer NAME``: complete units, checked by systemd's own tools.

``systemd-analyze`` (Debian's systemd package) parses the calendar expressions and verifies the
unit files when it is installed; those tests skip without it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, job, write_config

from batch_runner.config.spec import ConfigSpec, JobSpec, Settings
from batch_runner.export import systemd
from batch_runner.export.systemd import on_calendar, service_unit, timer_bundle, timer_units
from batch_runner.schedules import parse_schedule, resolve_tz, upcoming

PYTHON = "/opt/batch/venv/bin/python"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


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


def config_of(*jobs: JobSpec, root: str = "/srv/batch", **settings: Any) -> ConfigSpec:
    return ConfigSpec(
        path=f"{root}/config/batch_config.json",
        root=root,
        settings=Settings(log_dir=f"{root}/logs", **settings),
        jobs=jobs,
    )


def sections(unit: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values]}}; comments and blank lines dropped."""
    parsed: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = parsed.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return parsed


def exec_argv(value: str) -> list[str]:
    """ExecStart= split as systemd does for these words: quotes, backslashes, %% and $$."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]


# --- the scheduler service -----------------------------------------------------------------


def test_the_service_unit_has_every_directive() -> None:
    unit = sections(service_unit(config_of(), PYTHON))
    assert unit["Unit"]["Description"][0].startswith("batch_runner scheduler")
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Unit"]["Wants"] == ["network-online.target"]
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "60",
        "WorkingDirectory": "/srv/batch",
        "Restart": "on-failure",
        "KillMode": "mixed",
        "Environment": "PYTHONUNBUFFERED=1",
    }
    for key, value in expected.items():
        assert service[key] == [value], key
    assert int(service["RestartSec"][0]) > 0
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert exec_argv(service["ExecStart"][0]) == [
        PYTHON,
        "-m",
        "batch_runner",
        "-c",
        "/srv/batch/config/batch_config.json",
        "--root",
        "/srv/batch",
        "scheduler",
    ]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize(("shutdown_grace", "kill_grace"), [(30, 10), (0.5, 0.2), (600, 45.5)])
def test_stop_timeout_outlasts_the_schedulers_own_shutdown(
    shutdown_grace: float, kill_grace: float
) -> None:
    config = config_of(shutdown_grace=shutdown_grace, kill_grace=kill_grace)
    [stop] = sections(service_unit(config, PYTHON))["Service"]["TimeoutStopSec"]
    assert int(stop) > shutdown_grace + kill_grace


def test_user_is_set_when_given_and_suggested_otherwise() -> None:
    assert sections(service_unit(config_of(), PYTHON, "batch"))["Service"]["User"] == ["batch"]
    text = service_unit(config_of(), PYTHON)
    assert "User" not in sections(text)["Service"] and "# User=" in text


def test_awkward_paths_are_escaped_for_systemd() -> None:
    root = '/srv/my 100% $HOME "x" \\y'
    unit = sections(service_unit(config_of(root=root), "/opt/my venv/bin/python"))
    argv = exec_argv(unit["Service"]["ExecStart"][0])
    assert argv[0] == "/opt/my venv/bin/python"
    assert argv[4] == f"{root}/config/batch_config.json" and argv[6] == root
    assert unit["Service"]["WorkingDirectory"] == [root.replace("%", "%%")]


def test_a_line_break_in_a_path_is_refused() -> None:
    with pytest.raises(systemd.UnitError, match="line break"):
        service_unit(config_of(root="/srv/two\nlines"), PYTHON)


# --- OnCalendar= ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "timezone", "expected"),
    [
        ("daily", "02:00", None, "*-*-* 02:00:00"),
        ("daily", "23:59:30", None, "*-*-* 23:59:30"),
        ("daily", "02:00", "Europe/Berlin", "*-*-* 02:00:00 Europe/Berlin"),
        ("weekly", "sunday", None, "Sun *-*-* 00:00:00"),
        ("weekly", "mon,wed,fri 09:00", None, "Mon,Wed,Fri *-*-* 09:00:00"),
        ("weekly", "sun,sat 18:45", "America/New_York", "Sat,Sun *-*-* 18:45:00 America/New_York"),
        ("weekly", "mon,tue,wed,thu,fri,sat,sun 01:00", None, "*-*-* 01:00:00"),
        ("interval", "1", None, "*-*-* *:*:0/1 UTC"),
        ("interval", "30", None, "*-*-* *:*:0/30 UTC"),
        ("interval", "60", None, "*-*-* *:*:00 UTC"),
        ("interval", "15m", None, "*-*-* *:0/15:00 UTC"),
        ("interval", "1h", "Asia/Tokyo", "*-*-* *:00:00 UTC"),
        ("interval", "2h", None, "*-*-* 0/2:00:00 UTC"),
        ("interval", "12h", None, "*-*-* 0/12:00:00 UTC"),
        ("interval", "1d", None, "*-*-* 00:00:00 UTC"),
    ],
)
def test_on_calendar(
    schedule_type: str, schedule_time: str, timezone: str | None, expected: str
) -> None:
    assert on_calendar(parse_schedule(schedule_type, schedule_time), timezone) == expected


@pytest.mark.parametrize("schedule_time", ["90m", "7h", "45m", "45", "2d", "1.5"])
def test_intervals_without_a_steady_calendar_step_have_none(schedule_time: str) -> None:
    assert on_calendar(parse_schedule("interval", schedule_time)) is None


def _elapses(expression: str, base: datetime, count: int) -> list[datetime]:
    assert ANALYZE is not None
    result = subprocess.run(
        [
            ANALYZE,
            "calendar",
            f"--iterations={count}",
            f"--base-time={base.strftime('%Y-%m-%d %H:%M:%S')} UTC",
            expression,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    if "--base-time" in result.stderr:
        pytest.skip("this systemd-analyze has no --base-time (systemd < 250)")
    assert result.returncode == 0, result.stderr
    assert "Normalized form:" in result.stdout
    found = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", result.stdout)
    return [datetime.fromisoformat(f"{t}+00:00") for t in found]


CALENDAR_JOBS = [
    ("daily", "02:00", None),
    ("daily", "23:59:30", "Europe/Berlin"),
    ("weekly", "mon,wed,fri 09:00", None),
    ("weekly", "sunday 03:30", "America/New_York"),
    ("weekly", "sat 12:00", "Asia/Kolkata"),
    ("interval", "30", None),
    ("interval", "15m", None),
    ("interval", "1h", None),
    ("interval", "6h", None),
    ("interval", "1d", None),
]


@needs_analyze
@pytest.mark.parametrize(("schedule_type", "schedule_time", "timezone"), CALENDAR_JOBS)
def test_systemd_reads_each_expression_as_batch_runner_does(
    schedule_type: str, schedule_time: str, timezone: str | None
) -> None:
    schedule = parse_schedule(schedule_type, schedule_time)
    expression = on_calendar(schedule, timezone)
    assert expression is not None
    # A base time away from any daylight saving change: at a change systemd skips a time that
    # does not exist, where batch_runner runs it at the first instant after the gap.
    base = datetime(2026, 1, 14, 10, 17, 5, tzinfo=UTC)
    tz = resolve_tz(timezone or "UTC")
    if schedule_type == "interval":
        seconds = schedule.seconds  # type: ignore[union-attr]
        expected = [base + timedelta(seconds=seconds - base.timestamp() % seconds)]
        expected += [expected[0] + timedelta(seconds=seconds * k) for k in (1, 2, 3)]
    else:
        expected = [t.astimezone(UTC) for t in upcoming(schedule, base, tz, 4)]
    # Daily/weekly without a zone are local: compare them with the system's zone set to UTC.
    assert _elapses(expression, base, 4) == expected


# --- one job as a timer --------------------------------------------------------------------


def test_the_timer_pair_runs_the_job_through_run_job() -> None:
    config = config_of(spec("report", "daily", "02:00"))
    service, timer = timer_units(config.jobs[0], config, PYTHON)
    unit = sections(service)["Service"]
    assert unit["Type"] == ["oneshot"]
    assert exec_argv(unit["ExecStart"][0])[-3:] == ["/srv/batch", "run-job", "report"]
    assert unit["WorkingDirectory"] == ["/srv/batch"]
    assert unit["TimeoutStartSec"] == ["infinity"]
    assert "Install" not in sections(service)  # started by its timer only
    timer_unit = sections(timer)
    assert timer_unit["Timer"]["OnCalendar"] == ["*-*-* 02:00:00"]
    assert timer_unit["Timer"]["AccuracySec"] == ["1s"]
    assert timer_unit["Timer"]["Unit"] == ["batch-runner-report.service"]
    assert timer_unit["Install"]["WantedBy"] == ["timers.target"]


def test_catch_up_and_jitter() -> None:
    config = config_of(
        spec("a", "weekly", "mon 09:00", catch_up=True, jitter=90), spec("b", "daily", "09:00")
    )
    timer_a = sections(timer_units(config.jobs[0], config, PYTHON)[1])["Timer"]
    timer_b = sections(timer_units(config.jobs[1], config, PYTHON)[1])["Timer"]
    assert timer_a["Persistent"] == ["true"] and timer_a["RandomizedDelaySec"] == ["90s"]
    assert timer_b["Persistent"] == ["false"] and "RandomizedDelaySec" not in timer_b


@pytest.mark.parametrize(
    ("schedule_time", "catch_up", "boot", "active"),
    [
        ("90m", False, "5400s", "5400s"),
        ("7h", True, "0", "25200s"),
        ("1.5", False, "1.5s", "1.5s"),
    ],
)
def test_intervals_without_a_steady_calendar_step_use_monotonic_timers(
    schedule_time: str, catch_up: bool, boot: str, active: str
) -> None:
    config = config_of(spec("a", "interval", schedule_time, catch_up=catch_up))
    timer = sections(timer_units(config.jobs[0], config, PYTHON)[1])["Timer"]
    assert timer["OnBootSec"] == [boot] and timer["OnUnitActiveSec"] == [active]
    assert "OnCalendar" not in timer


def test_the_bundle_names_both_files() -> None:
    config = config_of(spec("report", "daily", "02:00"))
    text = timer_bundle(config.jobs[0], config, PYTHON)
    assert "# ===== /etc/systemd/system/batch-runner-report.service =====" in text
    assert "# ===== /etc/systemd/system/batch-runner-report.timer =====" in text
    assert "systemctl enable --now batch-runner-report.timer" in text
    service, timer = timer_units(config.jobs[0], config, PYTHON)
    assert service in text and timer in text


@needs_analyze
def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart= names an executable, so the real Python is used.
    root = tmp_path / "my 100% $root"
    config = config_of(
        spec("daily", "daily", "02:00", timezone="Europe/Berlin", catch_up=True, jitter=30),
        spec("weekly", "weekly", "mon,wed,fri 09:00"),
        spec("steps", "interval", "15m"),
        spec("odd", "interval", "90m", catch_up=True),
        root=str(root),
    )
    files = {"batch-runner.service": service_unit(config, sys.executable, "root")}
    for each in config.jobs:
        service, timer = timer_units(each, config, sys.executable)
        files[f"batch-runner-{each.name}.service"] = service
        files[f"batch-runner-{each.name}.timer"] = timer
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", *(str(tmp_path / name) for name in files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path) not in result.stderr, result.stderr  # no complaint about our files


# --- the command line ----------------------------------------------------------------------


def test_systemd_prints_the_service_unit(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(project, [job("a", "true")], settings={"shutdown_grace": 100, "kill_grace": 20})
    assert cli("systemd") == 0
    unit = sections(capsys.readouterr().out)
    argv = exec_argv(unit["Service"]["ExecStart"][0])
    assert argv == [
        sys.executable,
        "-m",
        "batch_runner",
        "-c",
        str(project / "config" / "batch_config.json"),
        "--root",
        str(project),
        "scheduler",
    ]
    assert Path(argv[0]).is_absolute()
    assert int(unit["Service"]["TimeoutStopSec"][0]) > 120


def test_systemd_timer_prints_the_pair(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(project, [job("a", "true", schedule_time="90m")])
    assert cli("systemd", "--timer", "a") == 0
    out = capsys.readouterr().out
    assert "batch-runner-a.timer" in out and "OnUnitActiveSec=5400s" in out


def test_systemd_timer_of_an_unknown_job_exits_3(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("a", "true")])
    assert cli("systemd", "--timer", "nope") == 3
    assert "no job named 'nope'" in capsys.readouterr().err


def test_a_config_path_with_a_line_break_injects_nothing_into_a_unit() -> None:
    """Issue 16.9: the first comment of each unit named the path as it was."""
    config = config_of(spec("a"))._replace(path="/srv/x\nExecStartPre=/bin/id\n#/c.json")
    with pytest.raises(systemd.UnitError, match="line break"):
        service_unit(config, "/usr/bin/python3")
    with pytest.raises(systemd.UnitError, match="line break"):
        timer_bundle(config.jobs[0], config, "/usr/bin/python3")
