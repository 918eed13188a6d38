"""Heartbeats (SPEC 8): ``/start``, success and ``/fail`` pings to a real server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, job, read_results, run_cli, write_config
from margins import PROMPT
from notify_servers import HttpServer, capture_runner_log, wait_until

from batch_runner.notify import heartbeat
from batch_runner.runs.notices import final_signal


@pytest.fixture
def http() -> Any:
    with HttpServer() as server:
        yield server


def test_a_successful_run_pings_start_then_success(project: Path, http: HttpServer) -> None:
    write_config(project, [job("ok", "true", ping_url=f"{http.url}/ping/abc")])
    assert run_cli(project, "run-job", "ok").returncode == 0
    assert http.paths() == ["/ping/abc/start", "/ping/abc"]
    assert {seen.method for seen in http.requests} == {"GET"}
    assert http.requests[0].headers["User-Agent"].startswith("batch_runner/")


def test_each_attempt_pings_start_and_the_run_pings_fail_once(
    project: Path, http: HttpServer
) -> None:
    write_config(
        project,
        [
            job(
                "bad",
                "false",
                max_attempts=2,
                backoff="fixed",
                backoff_seconds=0,
                ping_url=f"{http.url}/ping/abc/",
            )
        ],
    )
    assert run_cli(project, "run-job", "bad").returncode == 1
    assert http.paths() == ["/ping/abc/start", "/ping/abc/start", "/ping/abc/fail"]


def test_a_timeout_pings_fail(project: Path, http: HttpServer) -> None:
    write_config(
        project,
        [job("slow", "sleep 5", timeout=0.2, ping_url=f"{http.url}/p")],
        settings={"kill_grace": 0.1},
    )
    assert run_cli(project, "run-job", "slow").returncode == 124
    assert http.paths() == ["/p/start", "/p/fail"]


def test_the_settings_ping_url_is_the_default(project: Path, http: HttpServer) -> None:
    write_config(
        project,
        [job("a", "true"), job("b", "true", ping_url=f"{http.url}/own")],
        settings={"ping_url": f"{http.url}/shared"},
    )
    assert run_cli(project, "run-job", "a").returncode == 0
    assert run_cli(project, "run-job", "b").returncode == 0
    assert http.paths() == ["/shared/start", "/shared", "/own/start", "/own"]


def test_an_interrupted_run_sends_no_final_ping(project: Path, http: HttpServer) -> None:
    write_config(
        project, [job("long", "sleep 30", ping_url=f"{http.url}/p")], settings={"kill_grace": 0.2}
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "run-job", "long"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: http.paths() == ["/p/start"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    [record] = read_results(project)
    assert record["status"] == "interrupted"
    assert http.paths() == ["/p/start"]


def test_a_failing_ping_never_changes_the_outcome(project: Path, http: HttpServer) -> None:
    write_config(project, [job("ok", "echo fine", ping_url=f"{http.url}/500")])
    result = run_cli(project, "run-job", "ok")
    assert result.returncode == 0, result.stderr
    assert f"heartbeat start to {http.url}/… failed: HTTP 500" in result.stderr
    assert f"heartbeat success to {http.url}/… failed: HTTP 500" in result.stderr
    [record] = read_results(project)
    assert record["status"] == "success" and record["output"] == "fine\n"


def test_an_unreachable_ping_url_never_changes_the_outcome(project: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_config(project, [job("bad", "false", ping_url=f"http://127.0.0.1:{port}/p")])
    result = run_cli(project, "run-job", "bad")
    assert result.returncode == 1
    assert f"heartbeat fail to http://127.0.0.1:{port}/… failed: " in result.stderr
    assert f"connection refused: 127.0.0.1:{port}" in result.stderr


def test_a_hanging_ping_is_given_up_after_its_timeout(
    http: HttpServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture_runner_log(caplog, monkeypatch)
    started = time.monotonic()
    assert heartbeat.ping(f"{http.url}/hang", "start", timeout=0.3) is False
    assert time.monotonic() - started < PROMPT  # the server holds it for SLOW s
    assert "heartbeat start to" in caplog.text and "timed out after 0.3 s" in caplog.text


def test_a_failed_ping_never_shows_the_url_password(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture_runner_log(caplog, monkeypatch)
    # http.client takes "ping-pass-4d5e@127.0.0.1" for the port; its error, which quotes the
    # URL, is not repeated.
    assert heartbeat.ping("http://u:ping-pass-4d5e@127.0.0.1/p", "start", timeout=1) is False
    assert (
        "heartbeat start to http://127.0.0.1/… failed: invalid URL for 127.0.0.1: a bad port, "
        "or a space or control character in it"
    ) in caplog.text
    assert "ping-pass-4d5e" not in caplog.text


def test_the_ping_timeout_is_ten_seconds() -> None:
    assert heartbeat.PING_TIMEOUT == 10.0


@pytest.mark.parametrize(
    ("url", "signal", "expected"),
    [
        ("https://hc-ping.com/u-u-i-d", "start", "https://hc-ping.com/u-u-i-d/start"),
        ("https://hc-ping.com/u-u-i-d/", "fail", "https://hc-ping.com/u-u-i-d/fail"),
        ("https://hc-ping.com/u-u-i-d", "success", "https://hc-ping.com/u-u-i-d"),
        (
            "https://hc.example/ping/key/slug?create=1",
            "start",
            "https://hc.example/ping/key/slug/start?create=1",
        ),
    ],
)
def test_signal_url(url: str, signal: Any, expected: str) -> None:
    assert heartbeat.signal_url(url, signal) == expected


@pytest.mark.parametrize(
    ("status", "signal"),
    [
        ("success", "success"),
        ("error", "fail"),
        ("timeout", "fail"),
        ("stopped", None),
        ("interrupted", None),  # neither succeeded nor failed: no final ping
    ],
)
def test_final_signal(status: str, signal: str | None) -> None:
    assert final_signal(status) == signal
