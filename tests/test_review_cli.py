"""An outside review of the CLI: user text read as rich markup, result records of any JSON type,
labels that forge log lines. Each through the real CLI, on a real pty where the user saw it."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from conftest import cli, job, run_cli, write_config
from test_tables import on_terminal

STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4} (INFO|WARNING) ")
MARKUP_LABELS = ["[/x]", "[bold red]x[/bold red]", ":smile:"]


@pytest.fixture
def queue_project(project: Path) -> Path:
    write_config(project, [job("tick", "true")])
    return project


def _add(root: Path, *argv: str) -> str:
    added = run_cli(root, "queue", "add", *argv)
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


def _statuses(root: Path) -> list[str]:
    listed = run_cli(root, "queue", "list", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    return [run["status"] for run in json.loads(listed.stdout)]


# 1. Text a user wrote is shown as written, never read as rich markup or emoji codes.


def test_a_label_in_brackets_is_listed_as_written_on_a_terminal(queue_project: Path) -> None:
    for label in MARKUP_LABELS:
        _add(queue_project, "--label", label, "--", "true")
    text = "\n".join(on_terminal(queue_project, 120, "queue", "list"))
    for label in MARKUP_LABELS:
        assert f" {label}: true" in text, text


def test_the_worker_on_a_terminal_runs_every_run_whatever_its_label(queue_project: Path) -> None:
    for label in MARKUP_LABELS:
        _add(queue_project, "--label", label, "--", "true")
    _add(queue_project, "--", "echo", "second")
    lines = on_terminal(queue_project, 120, "queue", "worker")
    assert _statuses(queue_project) == ["success"] * 4
    for label in MARKUP_LABELS:
        assert any(f"end {label} (run" in line for line in lines), lines


def test_a_config_path_in_brackets_does_not_break_the_jobs_title(tmp_path: Path) -> None:
    root = tmp_path / "[b]x[" / "b] :smile:"  # the path holds "[b]x[/b] :smile:"
    root.mkdir(parents=True)
    write_config(root, [job("tick", "true")])
    text = "\n".join(on_terminal(root, 200, "list"))
    assert "/[b]x[/b]" in text and ":smile:/config" in text, text  # the title may wrap


def test_control_characters_in_a_cell_are_shown_not_sent_to_the_terminal(
    queue_project: Path,
) -> None:
    _add(queue_project, "--", "printf", "\x1b]0;owned\x07\tx")
    # A terminal would act on the escape sequence; piped, a tab would misalign the columns.
    piped = run_cli(queue_project, "queue", "list").stdout
    assert "\x1b" not in piped and "\t" not in piped and "\\x1b]0;owned\\x07\\tx" in piped
    text = "\n".join(on_terminal(queue_project, 200, "queue", "list"))
    assert "owned" in text and "\x07" not in text and "\x1b]" not in text


# 2. A hand-edited result record: any JSON type in any field, never a traceback.


def _record(run_id: str, **fields: object) -> dict[str, object]:
    start = datetime.now().astimezone().replace(microsecond=0)
    return {
        "job_name": "tick",
        "start_time": start.isoformat(),
        "end_time": start.isoformat(),
        "status": "error",
        "output": "",
        "error": "exit code 1",
        "run_id": run_id,
        "attempt": 1,
        "max_attempts": 1,
        "exit_code": 1,
        "duration_seconds": 0.5,
        "trigger": "manual",
        "scheduled_for": None,
        "output_truncated": False,
        "log_file": None,
        "host": "h",
        "pid": 1,
        **fields,
    }


ODD_RECORDS = [
    _record("r-fast", duration_seconds="fast"),
    _record("r-dict", error={"code": 5, "message": "boom"}),
    _record("r-list", error=["first", "second"]),
    _record("r-number", error=7, duration_seconds=True),
    _record("r-inf", duration_seconds=float("inf"), attempt=float("nan")),
    _record("r-types", job_name={"x": 1}, status=[1], attempt="x", max_attempts=None),
    _record("r-times", start_time=12, end_time=["x"]),
    _record("r-surrogate", error="bad \ud800 byte", job_name="j\udc80"),
]


def _write_odd_results(root: Path) -> None:
    folder = root / "logs" / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    day = datetime.now().strftime("%Y%m%d")
    # json.dumps writes Infinity and NaN, as a hand edit may: the reader takes them.
    lines = "".join(json.dumps(record) + "\n" for record in ODD_RECORDS)
    (folder / f"batch_{day}.jsonl").write_text(lines)


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_history_shows_what_it_can_of_records_of_any_json_type(queue_project: Path) -> None:
    _write_odd_results(queue_project)
    shown = run_cli(queue_project, "history")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    lines = shown.stdout.splitlines()

    def row(run_id: str) -> str:
        [line] = [line for line in lines if f" {run_id} " in line or line.endswith(run_id)]
        return line

    assert len(lines) == 1 + len(ODD_RECORDS)
    assert re.search(r" - +r-fast +exit code 1$", row("r-fast")), row("r-fast")
    assert re.search(r'r-dict +\{"code": 5, "message": "boom"\}$', row("r-dict")), row("r-dict")
    assert re.search(r'r-list +\["first", "second"\]$', row("r-list")), row("r-list")
    assert re.search(r"1/1 +- +r-number +7$", row("r-number")), row("r-number")
    assert re.search(r"-/1 +- +r-inf +exit code 1$", row("r-inf")), row("r-inf")
    assert re.search(r'\{"x": 1\} +\[1\] +-/- +0.50 s +r-types', row("r-types")), row("r-types")
    assert re.match(r"- +tick +error ", row("r-times")), row("r-times")
    assert "j\ufffd" in row("r-surrogate") and row("r-surrogate").endswith("bad \ufffd byte")


def test_history_json_of_records_of_any_json_type_is_strict_json(queue_project: Path) -> None:
    _write_odd_results(queue_project)
    shown = run_cli(queue_project, "history", "--json")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    runs = _strict_json(shown.stdout)
    assert isinstance(runs, list) and len(runs) == len(ODD_RECORDS)
    by_id = {run["run_id"]: run for run in runs}
    assert by_id["r-dict"]["error"] == {"code": 5, "message": "boom"}
    assert by_id["r-fast"]["duration_seconds"] == "fast"
    assert by_id["r-inf"]["duration_seconds"] is None
    assert by_id["r-surrogate"]["error"] == "bad \ud800 byte"  # kept, as a JSON escape


def test_history_on_a_terminal_of_records_of_any_json_type(queue_project: Path) -> None:
    _write_odd_results(queue_project)
    text = "\n".join(on_terminal(queue_project, 200, "history"))
    assert "r-fast" in text and "r-surrogate" in text and "Traceback" not in text


@pytest.mark.parametrize(
    "fields",
    [{"log_file": 5}, {"log_file": ["a"]}, {"attempt": "x", "log_file": "/nowhere/x.log"}],
    ids=["number", "list", "attempt-text"],
)
def test_logs_of_a_record_of_any_json_type(queue_project: Path, fields: dict) -> None:
    folder = queue_project / "logs" / "batch"
    folder.mkdir(parents=True)
    record = _record("r-odd", **fields)
    (folder / f"batch_{datetime.now():%Y%m%d}.jsonl").write_text(json.dumps(record) + "\n")
    shown = run_cli(queue_project, "logs", "r-odd")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == "run r-odd (error) has no output file\n"


# 3. A label, or a header, with a control character is refused: it would forge log lines.


FORGED = "x\n2026-12-06T03:00:00+0000 INFO forged line"


def test_a_label_that_would_forge_a_log_line_is_a_usage_error(queue_project: Path) -> None:
    added = run_cli(queue_project, "queue", "add", "--label", FORGED, "--", "true")
    assert added.returncode == 2 and added.stdout == ""
    assert added.stderr.count("\n") == 1 and "control character" in added.stderr, added.stderr
    assert _statuses(queue_project) == []


@pytest.mark.parametrize("char", ["\r", "\t", "\x1b", "\x00", "\x7f", "\x85", "\u2028", "\u2029"])
def test_a_label_with_any_control_character_is_a_usage_error(
    queue_project: Path, char: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("queue", "add", "--label", f"a{char}b", "--", "true") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--label" in err and char not in err
    assert cli("queue", "add", "--label", "ünïcode label [ok]", "--", "true") == 0


@pytest.mark.parametrize(
    "header", ["X-A: b\r\nX-Evil: 1", "X-A: secret\nvalue", "X\nB: c", "X\x1bB: c"]
)
def test_a_header_with_a_line_break_or_control_character_is_a_usage_error(
    queue_project: Path, header: str
) -> None:
    url = "http://127.0.0.1:9/"
    added = run_cli(queue_project, "queue", "add", "--http", "GET", url, "--header", header)
    assert added.returncode == 2 and added.stderr.count("\n") == 1, added.stderr
    assert "secret" not in added.stderr and "Evil" not in added.stderr  # a value may be one
    assert _statuses(queue_project) == []


def test_a_stored_label_with_a_line_break_cannot_forge_a_worker_line(
    queue_project: Path,
) -> None:
    """A label stored before labels were checked: the worker's lines stay one per event."""
    run_id = _add(queue_project, "--label", "plain", "--", "true")
    with sqlite3.connect(queue_project / "logs" / "state" / "batch_runner.sqlite3") as db:
        db.execute(
            "UPDATE runs SET job_name = ?, label = ? WHERE run_id = ?", (FORGED, FORGED, run_id)
        )
    db.close()
    worked = run_cli(queue_project, "queue", "worker")
    assert worked.returncode == 0, worked.stderr
    lines = worked.stdout.splitlines()
    assert len(lines) == 3 and all(STAMP.match(line) for line in lines), lines
    assert "x\\n2026-12-06T03:00:00+0000 INFO forged line" in lines[0]
