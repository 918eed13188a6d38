"""The command notifier: a real command gets the notice as JSON on stdin."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from margins import PROMPT, SLOW
from notify_servers import wait_until

from batch_runner.notify.deliver import Delivery, deliver_all
from batch_runner.notify.notice import build_test_notice


def send(tmp_path: Path, command: Any, **extra: Any) -> Delivery:
    notifier = {"type": "command", "command": command, "shell": "auto", "timeout": 5, **extra}
    notice = build_test_notice("host1", "/c.json", time.time())
    [delivery] = deliver_all([notifier], notice, cwd=str(tmp_path))
    return delivery


def test_the_notice_arrives_on_stdin(tmp_path: Path) -> None:
    script = (
        "import json, os, sys; json.dump({'notice': json.load(sys.stdin), 'cwd': os.getcwd(),"
        " 'kind': os.environ['BATCH_NOTICE_KIND']}, open('got.json', 'w'))"
    )
    delivery = send(tmp_path, [sys.executable, "-c", script])
    assert delivery.ok, delivery.reason
    got = json.loads((tmp_path / "got.json").read_text())
    assert got["notice"]["kind"] == got["kind"] == "test"
    assert got["notice"]["host"] == "host1" and "text" in got["notice"]
    assert got["cwd"] == str(tmp_path)  # the root, as for jobs


def test_a_string_with_shell_syntax_runs_under_sh(tmp_path: Path) -> None:
    delivery = send(tmp_path, "cat | tr a-z A-Z > upper.json")
    assert delivery.ok, delivery.reason
    assert '"KIND": "TEST"' in (tmp_path / "upper.json").read_text()


def test_a_non_zero_exit_is_a_failure_with_the_output_tail(tmp_path: Path) -> None:
    delivery = send(tmp_path, ["sh", "-c", "echo 'chat service said no' >&2; exit 4"])
    assert not delivery.ok
    assert delivery.reason == "exit code 4: chat service said no"


def test_a_missing_program_is_a_failure(tmp_path: Path) -> None:
    delivery = send(tmp_path, ["no-such-notifier-xyz", "--now"])
    assert not delivery.ok
    assert delivery.reason.startswith("cannot start no-such-notifier-xyz")


def test_a_hanging_command_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    delivery = send(tmp_path, f"sleep {SLOW:g} & echo $! > {pid_file}; wait", timeout=0.3)
    assert time.monotonic() - started < PROMPT  # killed at its timeout, not waited for
    assert not delivery.ok and delivery.reason == "timed out after 0.3 s"
    background = int(pid_file.read_text())
    wait_until(lambda: not _alive(background), timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False
