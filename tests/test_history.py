"""``history``: newest start first, every run key in --json, bad arguments without tracebacks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from conftest import job, run_cli, write_config


def _record(name: str, start: datetime, seconds: float, status: str = "success") -> dict:
    end = start + timedelta(seconds=seconds)
    return {
        "job_name": name,
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "status": status,
        "output": "",
        "error": None,
        "run_id": f"r-{name}",
        "attempt": 1,
        "max_attempts": 1,
        "exit_code": 0,
        "duration_seconds": seconds,
        "trigger": "manual",
        "scheduled_for": None,
        "output_truncated": False,
        "log_file": None,
        "host": "h",
        "pid": 1,
    }


def _write_results(root: Path, records: list[dict]) -> None:
    # Appended as attempts end, as the runner does: a long run's line comes after shorter
    # runs that started later.
    records = sorted(records, key=lambda r: r["end_time"])
    day = datetime.fromisoformat(records[0]["start_time"]).strftime("%Y%m%d")
    folder = root / "logs" / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"batch_{day}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _history(root: Path, *argv: str) -> list[dict]:
    result = run_cli(root, "history", "--json", *argv)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_history_is_newest_start_first_whatever_order_runs_ended_in(project: Path) -> None:
    write_config(project, [job(n, "true") for n in ("long", "short", "mid", "late")])
    base = datetime.now().astimezone().replace(hour=1, minute=0, second=0, microsecond=0)
    _write_results(
        project,
        [
            _record("long", base, 3600),  # ends last
            _record("short", base + timedelta(minutes=10), 1),
            _record("mid", base + timedelta(minutes=20), 600),
            _record("late", base + timedelta(minutes=30), 1),
        ],
    )
    assert [r["job_name"] for r in _history(project)] == ["late", "mid", "short", "long"]
    assert [r["job_name"] for r in _history(project, "--limit", "2")] == ["late", "mid"]
    since = (base + timedelta(minutes=15)).isoformat()
    assert [r["job_name"] for r in _history(project, "--since", since)] == ["late", "mid"]


def test_history_json_has_every_run_key(project: Path) -> None:
    write_config(project, [job("a", "true")])
    queued = run_cli(
        project,
        "queue",
        "add",
        "--priority",
        "2",
        "--",
        "batch_runner progress --percent 40 halfway",
    )
    assert queued.returncode == 0, queued.stderr
    assert run_cli(project, "queue", "worker").returncode == 0
    (run,) = _history(project)
    for key in (
        "run_id",
        "job_name",
        "status",
        "priority",
        "progress_percent",
        "progress_message",
        "start_time",
        "end_time",
        "exit_code",
    ):
        assert key in run
    assert run["status"] == "success", run
    assert (run["priority"], run["progress_percent"], run["progress_message"]) == (2, 40, "halfway")
    # Once the queue has forgotten the run, they are no longer known.
    assert run_cli(project, "queue", "clean", "--keep-days", "0").returncode == 0
    (run,) = _history(project)
    assert run["priority"] is None and run["progress_percent"] is None


def test_history_of_an_unknown_job_exits_3_but_a_removed_job_keeps_its_history(
    project: Path,
) -> None:
    write_config(project, [job("gone", "true"), job("kept", "true")])
    assert run_cli(project, "run-job", "gone").returncode == 0
    write_config(project, [job("kept", "true")])
    assert [r["job_name"] for r in _history(project, "gone")] == ["gone"]
    assert _history(project, "kept") == []
    unknown = run_cli(project, "history", "kep")
    assert unknown.returncode == 3 and "did you mean 'kept'" in unknown.stderr


def test_a_huge_limit_means_all(project: Path) -> None:
    write_config(project, [job("a", "true")])
    assert run_cli(project, "run-job", "a").returncode == 0
    assert len(_history(project, "--limit", "99999999999999999999")) == 1
    negative = run_cli(project, "history", "--limit", "-1")
    assert negative.returncode == 2 and "Traceback" not in negative.stderr


def test_logs_of_runs_known_only_from_the_results(project: Path) -> None:
    write_config(project, [job("a", "echo out")])
    assert run_cli(project, "run-job", "a").returncode == 0
    (ran,) = _history(project)
    # A cleaned queue forgets the run; its results line and output file remain.
    assert run_cli(project, "queue", "clean", "--keep-days", "0").returncode == 0
    assert run_cli(project, "queue", "show", ran["run_id"]).returncode == 3
    logs = run_cli(project, "logs", ran["run_id"])
    assert logs.returncode == 0 and logs.stdout == "out\n"
    # A skipped occurrence is never in the queue at all.
    skipped = _record("a", datetime.now().astimezone(), 0, status="skipped")
    skipped["run_id"] = "skipped-run"
    with (project / "logs" / "batch" / f"batch_{datetime.now():%Y%m%d}.jsonl").open("a") as f:
        f.write(json.dumps(skipped) + "\n")
    logs = run_cli(project, "logs", "skipped-run")
    assert logs.returncode == 0 and "(skipped) has no output file" in logs.stderr
    assert run_cli(project, "logs", "").returncode == 3


def test_a_canceled_run_has_no_start_and_is_listed_when_it_was_canceled(project: Path) -> None:
    write_config(project, [job("a", "true")])
    assert run_cli(project, "run-job", "a").returncode == 0
    queued = run_cli(project, "queue", "add", "--delay", "1h", "--", "true")
    assert run_cli(project, "queue", "remove", queued.stdout.strip()).returncode == 0
    canceled, ran = _history(project)
    assert canceled["status"] == "canceled" and canceled["start_time"] is None
    assert ran["job_name"] == "a"
    table = run_cli(project, "history")
    assert table.returncode == 0 and "canceled" in table.stdout, table.stderr
    since = run_cli(project, "history", "--since", ran["start_time"], "--json")
    assert len(json.loads(since.stdout)) == 2


def test_a_since_beyond_the_calendar_in_local_time_is_a_usage_error(project: Path) -> None:
    write_config(project, [job("a", "true")])
    # Year 9999 in New York is year 10000 in UTC: past what datetime holds.
    result = run_cli(
        project, "history", "--since", "9999-12-31T23:59:59", env={"TZ": "America/New_York"}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_a_torn_last_line_never_swallows_the_next_record(project: Path) -> None:
    """Issue 16.3: half a line left at the end of the day's file (``printf`` of a fragment)."""
    write_config(project, [job("a", "true")])
    day = datetime.now().strftime("%Y%m%d")
    folder = project / "logs" / "batch"
    folder.mkdir(parents=True)
    results = folder / f"batch_{day}.jsonl"
    results.write_bytes(b'{"job_name": "x", "start_ti')
    ran = run_cli(project, "run-job", "a")
    assert ran.returncode == 0, ran.stderr
    lines = results.read_bytes().split(b"\n")
    assert lines[0] == b'{"job_name": "x", "start_ti'  # ended, left as it was
    assert json.loads(lines[1])["job_name"] == "a"
    shown = run_cli(project, "history", "--json")
    assert [r["job_name"] for r in json.loads(shown.stdout)] == ["a"]
    assert f"skipped line 1 of {results}: not a whole JSON record" in shown.stderr
    again = run_cli(project, "run-job", "a")  # a file that ends whole gets no empty line
    assert again.returncode == 0
    assert results.read_bytes().count(b"\n") == 3
    assert len(_history(project)) == 2
