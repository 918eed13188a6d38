"""The poke from ``queue add`` to the scheduler: a named pipe only the scheduler reads."""

from __future__ import annotations

import os
import select
import stat
import threading
from pathlib import Path

from conftest import run_cli, start_cli, wait_for, write_config
from margins import PROMPT

from batch_runner.state.wakeup import bind_listener, drain_pipe, poke


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_poke_wakes_the_listener_once_and_the_pipe_is_private(tmp_path: Path) -> None:
    fd = bind_listener(tmp_path)
    assert fd is not None
    try:
        fifo = tmp_path / "state" / "wakeup.fifo"
        assert stat.S_ISFIFO(fifo.stat().st_mode)
        assert stat.S_IMODE(fifo.stat().st_mode) == 0o600
        assert not readable(fd)
        poke(tmp_path)
        poke(tmp_path)
        assert readable(fd)
        drain_pipe(fd)
        assert not readable(fd)  # and no end-of-file either: a select would not spin
    finally:
        os.close(fd)


def test_a_poke_with_nobody_listening_is_a_quick_no_op(tmp_path: Path) -> None:
    poke(tmp_path)  # no pipe at all
    os.close(bind_listener(tmp_path) or -1)  # the pipe exists, its reader is gone
    done = threading.Event()
    threading.Thread(target=lambda: (poke(tmp_path), done.set()), daemon=True).start()
    try:
        # A blocking open() would wait for a reader for ever: any bound tells the two apart.
        assert done.wait(PROMPT), "poke blocked waiting for a reader"
    finally:
        if not done.is_set():  # let the stuck poke go, so no thread is left behind
            os.close(os.open(tmp_path / "state" / "wakeup.fifo", os.O_RDONLY | os.O_NONBLOCK))


def test_a_full_pipe_does_not_block_the_poker(tmp_path: Path) -> None:
    fd = bind_listener(tmp_path)
    assert fd is not None
    try:
        for _ in range(70_000):  # more than a pipe holds
            poke(tmp_path)
        assert readable(fd)
    finally:
        os.close(fd)


def test_something_else_under_the_name_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "wakeup.fifo").write_text("not a pipe")
    assert bind_listener(tmp_path) is None
    poke(tmp_path)
    assert (tmp_path / "state" / "wakeup.fifo").read_text() == "not a pipe"


def test_the_scheduler_starts_a_queued_run_at_once(project: Path) -> None:
    write_config(project, [])
    scheduler = start_cli(project, "scheduler")
    try:
        assert scheduler.stderr is not None
        for line in scheduler.stderr:
            if "scheduler started" in line:
                break
        added = run_cli(project, "queue", "add", "--", "true")
        assert added.returncode == 0, added.stderr
        run_id = added.stdout.strip()
        # The executor's idle re-check is a minute away: only the poke can start it this soon.
        wait_for(lambda: "success" in run_cli(project, "queue", "show", run_id).stdout, 10)
    finally:
        scheduler.terminate()
        scheduler.wait(30)


def test_a_scheduler_without_its_pipe_says_so_and_still_runs(project: Path) -> None:
    write_config(project, [])
    state = project / "logs" / "state"
    state.mkdir(parents=True)
    (state / "wakeup.fifo").write_text("not a pipe")
    scheduler = start_cli(project, "scheduler")
    try:
        assert scheduler.stderr is not None
        lines = []
        for line in scheduler.stderr:
            lines.append(line)
            if "scheduler started" in line:
                break
        assert any(
            "cannot make the wake-up pipe" in line and "wakeup.fifo" in line for line in lines
        ), lines
        assert scheduler.poll() is None
    finally:
        scheduler.terminate()
        scheduler.wait(30)
