"""The webhook notifier against a real HTTP server on 127.0.0.1, and how notifiers are named."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from notify_servers import HttpServer

from batch_runner.net.secrets import describe_url, is_secret_header, redact
from batch_runner.notify.deliver import Delivery, deliver_all, labels
from batch_runner.notify.notice import build_test_notice


@pytest.fixture
def http() -> Any:
    with HttpServer() as server:
        yield server


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "headers": {}, "timeout": 5, **extra}


def send(*notifiers: dict[str, Any]) -> list[Delivery]:
    return deliver_all(notifiers, build_test_notice("host1", "/c.json", time.time()), cwd="/")


def test_posts_the_notice_as_json_with_text_and_headers(
    http: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "abc123")
    [delivery] = send(
        webhook(
            f"{http.url}/hooks/T0/B0/${{HOOK_TOKEN}}",
            headers={"Authorization": "Bearer ${HOOK_TOKEN}", "X-Source": "batch"},
        )
    )
    assert delivery.ok, delivery.reason
    assert delivery.label == f"webhook {http.url}/…"  # the token in the path is not shown
    [seen] = http.requests
    assert seen.method == "POST" and seen.path == "/hooks/T0/B0/abc123"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Authorization"] == "Bearer abc123"
    assert seen.headers["X-Source"] == "batch"
    body = json.loads(seen.body)
    assert body["kind"] == "test" and body["host"] == "host1"
    assert "this notifier works" in body["text"]


def test_an_error_status_is_a_failure_with_its_reason(http: HttpServer) -> None:
    [delivery] = send(webhook(f"{http.url}/500"))
    assert not delivery.ok
    assert delivery.reason == "HTTP 500 Internal Server Error: boom: no good"


def test_a_hanging_server_is_given_up_after_the_timeout(http: HttpServer) -> None:
    started = time.monotonic()
    [delivery] = send(webhook(f"{http.url}/hang", timeout=0.4))
    assert time.monotonic() - started < 1.2
    assert not delivery.ok and delivery.reason == "timed out after 0.4 s"


def test_notifiers_run_side_by_side(http: HttpServer) -> None:
    """Three hanging notifiers cost one timeout, not three."""
    started = time.monotonic()
    deliveries = send(*(webhook(f"{http.url}/hang/{n}", timeout=0.4) for n in range(3)))
    assert time.monotonic() - started < 1.2
    assert [d.ok for d in deliveries] == [False] * 3
    assert [d.label for d in deliveries] == [f"webhook {http.url}/… #{n}" for n in (1, 2, 3)]


def test_redirects_are_not_followed(http: HttpServer) -> None:
    """A redirect would carry the secret headers to another address."""
    [delivery] = send(webhook(f"{http.url}/redirect", headers={"Authorization": "x-secret"}))
    assert not delivery.ok and delivery.reason.startswith("HTTP 302")
    assert http.paths() == ["/redirect"]


def test_nothing_listening_is_a_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    [delivery] = send(webhook(f"http://127.0.0.1:{port}/hook"))
    assert not delivery.ok and delivery.reason == "Connection refused"


def test_a_missing_variable_fails_before_anything_is_sent(http: HttpServer) -> None:
    [delivery] = send(webhook(f"{http.url}/hook", headers={"X-Token": "${NO_SUCH_VAR_42}"}))
    assert not delivery.ok
    assert delivery.reason == (
        "environment variable NO_SUCH_VAR_42 (used in the webhook header X-Token) is not set"
    )
    assert http.requests == []


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("Cookie", True),
        ("X-Api-Key", True),
        ("X-Auth-Token", True),
        ("X-Hook-Secret", True),
        ("Content-Type", False),
        ("X-Source", False),
        ("Accept", False),
    ],
)
def test_secret_headers(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret


def test_redact() -> None:
    assert redact("Bearer abc123 failed", ["abc123", None, ""]) == "Bearer *** failed"
    assert redact("a b", ["a"]) == "a b"  # too short to mask without garbling the text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/…"),
        ("https://user:pw@example.org:8443/", "https://example.org:8443"),
        ("https://example.org?token=1", "https://example.org/…"),
        ("http://[::1]:80/x", "http://[::1]:80/…"),
    ],
)
def test_describe_url_hides_paths_and_credentials(url: str, shown: str) -> None:
    assert describe_url(url) == shown


def test_labels() -> None:
    assert labels(
        [
            {"type": "command", "command": ["notify-send", "batch"]},
            {"type": "email", "smtp_host": "mail.example.org", "smtp_port": 587},
            {"type": "command", "command": "x" * 80},
        ]
    ) == ["command notify-send batch", "email mail.example.org:587", "command " + "x" * 59 + "…"]
