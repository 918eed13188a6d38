"""Tables at 80 and 120 columns, in a real terminal (a pty), as the user saw them (issue 17.4/5).

Ids and times are never wrapped nor cut, words never split; long text (errors, commands) is
what shrinks, with an ellipsis; a narrow terminal drops the optional columns; piped output is
full width, one row per line. Jobs in another zone than the system's say which.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import REPO, job, run_cli, write_config

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def on_terminal(root: Path, columns: int, *argv: str, expect: int = 0) -> list[str]:
    """The CLI's output on a pty ``columns`` wide, as lines without colour codes."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("COLUMNS", None)
    env.pop("BATCH_RUNNER_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", *argv],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=30) == expect
    text = ANSI.sub("", b"".join(chunks).decode())
    return [line.rstrip() for line in text.replace("\r", "").split("\n") if line.strip()]


@pytest.fixture
def busy_project(project: Path) -> Path:
    write_config(
        project,
        [
            job(
                "wed_backup_with_a_long_name",
                "true",
                schedule_type="weekly",
                schedule_time="mon,wed,fri 09:00",
            ),
            job(
                "ny_report",
                "true",
                schedule_type="daily",
                schedule_time="18:04",
                timezone="America/New_York" if _system_is_not_new_york() else "Asia/Tokyo",
            ),
            job("failing", "echo 'something went badly wrong in the report' >&2; exit 3"),
            job("tick", "true", schedule_time="15m"),
        ],
    )
    run_cli(project, "run-job", "failing")
    run_cli(project, "run-job", "tick")
    assert run_cli(project, "run-job", "tick", "--queue").returncode == 0
    run_cli(project, "run-job", "tick", "--queue")  # turned away: a `skipped` record
    add = ["queue", "add", "--", "sh", "-c", "echo a very long command line " * 4]
    assert run_cli(project, *add).returncode == 0
    return project


def _system_is_not_new_york() -> bool:
    from datetime import datetime

    return datetime.now().astimezone().tzname() not in ("EST", "EDT")


COMMANDS = [("history",), ("list",), ("queue", "list"), ("next",)]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_nothing_is_broken_at_this_width(busy_project: Path, columns: int, argv: tuple) -> None:
    lines = on_terminal(busy_project, columns, *argv)
    assert lines, "nothing printed"
    for line in lines:
        assert len(line) <= columns, line
    piped = run_cli(busy_project, *argv).stdout
    # Every run id the piped output holds is whole on one line of the table, and nothing that
    # starts like an id or a time is cut short.
    ids = {m[0] for m in map(RUN_ID.search, piped.splitlines()) if m}  # the id column's
    shown_ids = {match for line in lines for match in RUN_ID.findall(line)}
    assert ids <= shown_ids, ids - shown_ids
    for line in lines:
        for token in re.findall(r"\d{8}-[0-9a-f-]*", line):
            assert RUN_ID.fullmatch(token), f"a cut id {token!r} in {line!r}"
        for token in re.findall(r"\d{4}-\d{2}-\d{2}[ \d:]*", line):
            assert TIME.match(token), f"a cut time {token!r} in {line!r}"
    text = "\n".join(lines)
    for word in ("skipped", "Wednesday", "success", "interrupted", "pending", "America"):
        for cut in range(3, len(word)):
            assert not re.search(rf"\b{word[:cut]}$", text, re.M), f"{word!r} split: {text}"


def test_long_text_shrinks_with_an_ellipsis_and_ids_stay(busy_project: Path) -> None:
    lines = on_terminal(busy_project, 80, "queue", "list")
    [row] = [line for line in lines if "sh -c" in line]
    assert RUN_ID.search(row) and row.endswith("…")
    lines = on_terminal(busy_project, 120, "history")
    [row] = [line for line in lines if " error " in line]
    assert "exit code 3" in row


def test_piped_output_is_full_width_one_row_per_line(busy_project: Path) -> None:
    piped = run_cli(busy_project, "history").stdout.splitlines()
    history = json.loads(run_cli(busy_project, "history", "--json").stdout)
    assert len(piped) == 1 + len(history)
    assert all(r["run_id"] in "\n".join(piped) for r in history)
    queued = run_cli(busy_project, "queue", "list").stdout
    assert ("echo a very long command line " * 4).strip() in queued


def test_a_narrow_terminal_leaves_optional_columns_out_and_says_disabled_jobs(
    busy_project: Path,
) -> None:
    run_cli(busy_project, "disable", "tick")
    narrow = on_terminal(busy_project, 80, "list")
    wide = on_terminal(busy_project, 200, "list")
    assert "errors" in wide[1] and "errors" not in narrow[1]
    assert any("tick" in line and "(disabled)" in line for line in narrow)


def test_a_job_in_another_zone_says_which(busy_project: Path) -> None:
    zone = "America/New_York" if _system_is_not_new_york() else "Asia/Tokyo"
    lines = on_terminal(busy_project, 200, "list")
    [row] = [line for line in lines if line.lstrip().startswith("ny_report")]
    assert f"every day at 18:04 {zone}" in row
    assert re.search(TIME.pattern + r" (EST|EDT|JST)", row), row
    [local] = [line for line in lines if line.lstrip().startswith("wed_backup")]
    assert not re.search(TIME.pattern + r" [A-Z]{3}", local)  # the system's zone: no label


def test_an_interval_without_a_scheduler_shows_a_next_run_counted_from_now(
    busy_project: Path,
) -> None:
    lines = on_terminal(busy_project, 200, "list")
    [row] = [line for line in lines if line.lstrip().startswith("tick")]
    assert re.search(TIME.pattern + r" \(from now\)", row), row
