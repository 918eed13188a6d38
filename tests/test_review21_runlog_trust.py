"""Review of issue 21: the dashboard reads a run's log file the way the API does — never through
a symlink planted in its place, never stuck opening a FIFO planted there."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from webserver import WebServer

SECRET = "root:$6$not-for-a-read-token$:19000:0:99999:7:::"


def _finished_run(web: WebServer) -> tuple[str, Path]:
    added = web.cli("queue", "add", "--", "echo", "ordinary output")
    assert added.returncode == 0, added.stderr
    run_id = added.stdout.strip()
    done = web.cli("queue", "run")
    assert done.returncode == 0, done.stderr
    logs = list(web.root.rglob(f"{run_id}.log"))
    assert len(logs) == 1, logs
    return run_id, logs[0]


def test_a_run_log_replaced_by_a_symlink_is_not_followed_by_the_dashboard(serve_web):
    web = serve_web()
    run_id, log = _finished_run(web)
    secret = web.root / "shadow"  # stands for /etc/shadow, ~/.ssh/id_ed25519, ...
    secret.write_text(SECRET + "\n")
    log.unlink()
    log.symlink_to(secret)
    reader = web.client(web.token("read"))

    # The API refuses it (runoutput opens with O_NOFOLLOW) ...
    api = reader.get(f"/api/v1/runs/{run_id}/output")
    assert SECRET not in api.text
    # ... the dashboard's run page, its live part and its polling must too.
    page = reader.get(f"/ui/runs/{run_id}")
    assert page.status_code in (200, 404), page.text
    assert "not-for-a-read-token" not in page.text
    polled = reader.get(f"/ui/runs/{run_id}/output", params={"attempt": 1, "offset": 0})
    assert "not-for-a-read-token" not in polled.text


def test_a_run_log_replaced_by_a_fifo_does_not_hang_the_run_page(serve_web):
    web = serve_web()
    run_id, log = _finished_run(web)
    log.unlink()
    os.mkfifo(log)
    reader = web.client(web.token("read"))
    released = threading.Event()

    def release() -> None:
        # Whatever the outcome, unblock a server thread stuck opening the FIFO for reading,
        # so the server stops promptly at the test's end.
        released.wait(30)
        try:
            fd = os.open(log, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        try:
            page = reader.get(f"/ui/runs/{run_id}", timeout=5)
        except httpx.ReadTimeout:
            raise AssertionError(
                "the run page hung opening a FIFO in the log dir (a threadpool thread is "
                "held for good; 40 such views stop every endpoint)"
            ) from None
        assert page.status_code in (200, 404), page.text
    finally:
        released.set()
        releaser.join(5)
