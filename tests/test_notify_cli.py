"""``batch_runner notify-test`` end to end: one line per notifier, exit 1 if any failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_config
from notify_servers import HttpServer


@pytest.fixture
def http() -> Any:
    with HttpServer() as server:
        yield server


def test_no_notifiers(project: Path) -> None:
    write_config(project, [])
    result = run_cli(project, "notify-test")
    assert result.returncode == 0, result.stderr
    assert "no notifiers configured" in result.stdout
    assert "notices go to the log only" in result.stdout


def test_every_notifier_ok(project: Path, http: HttpServer) -> None:
    sink = project / "notice.json"
    write_config(
        project,
        [],
        settings={
            "notifiers": [
                {"type": "webhook", "url": f"{http.url}/hook"},
                {"type": "command", "command": ["sh", "-c", "cat > notice.json"]},  # in the root
            ]
        },
    )
    result = run_cli(project, "notify-test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"webhook {http.url}/…: ok",
        "command sh -c cat > notice.json: ok",
    ]
    notice = json.loads(sink.read_text())
    assert notice["kind"] == "test"
    assert notice["config"] == str(project / "config" / "batch_config.json")
    assert json.loads(http.requests[0].body) == notice


def test_one_failing_notifier_exits_1(project: Path, http: HttpServer) -> None:
    write_config(
        project,
        [],
        settings={
            "notifiers": [
                {"type": "webhook", "url": f"{http.url}/hook"},
                {"type": "webhook", "url": f"{http.url}/500"},
                {
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "starttls": True,  # a login goes over TLS or not at all
                    "from": "a@example.org",
                    "to": ["b@example.org"],
                    "username_env": "NO_SUCH_USER_VAR",
                },
            ]
        },
    )
    result = run_cli(project, "notify-test")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"webhook {http.url}/… #1: ok",
        f"webhook {http.url}/… #2: failed: HTTP 500 Internal Server Error: boom: no good",
        "email 127.0.0.1:25: failed: the environment variable NO_SUCH_USER_VAR is not set "
        "(used in username_env)",
    ]
    assert result.stderr == "error: 2 of 3 notifiers failed\n"


def test_an_invalid_notifier_is_a_config_error(project: Path) -> None:
    write_config(project, [], settings={"notifiers": [{"type": "webhok", "url": "x"}]})
    result = run_cli(project, "notify-test")
    assert result.returncode == 78
    assert "notifiers[0]" in result.stderr


def test_webhook_headers_follow_settings_mask_headers(project: Path, http: HttpServer) -> None:
    """``settings.http.mask_headers`` decides which webhook header values are secret."""
    write_config(
        project,
        [],
        settings={
            "http": {"mask_headers": ["X-Hook-Secret"]},
            "notifiers": [
                {
                    "type": "webhook",
                    "url": f"{http.url}/echo",
                    "headers": {"X-Hook-Secret": "literal-hook-5b6a", "X-Api-Key": "k-visible"},
                }
            ],
        },
    )
    result = run_cli(project, "notify-test")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"webhook {http.url}/…: failed: HTTP 500 Internal Server Error: "
        "path=/echo X-Hook-Secret=*** X-Api-Key=k-visible",
    ]
    assert "literal-hook-5b6a" not in result.stdout + result.stderr
