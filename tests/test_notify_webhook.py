"""The webhook notifier against a real HTTP server on 127.0.0.1, and how notifiers are named."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from margins import PROMPT
from notify_servers import HttpServer

from batch_runner.net.secrets import describe_url
from batch_runner.notify.deliver import Delivery, deliver_all, labels
from batch_runner.notify.notice import build_test_notice


@pytest.fixture
def http() -> Any:
    with HttpServer() as server:
        yield server


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "headers": {}, "timeout": 5, **extra}


def send(*notifiers: dict[str, Any], **options: Any) -> list[Delivery]:
    notice = build_test_notice("host1", "/c.json", time.time())
    return deliver_all(notifiers, notice, cwd="/", **options)


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
    assert time.monotonic() - started < PROMPT  # the server holds it for SLOW s
    assert not delivery.ok and delivery.reason == "timed out after 0.4 s"


def test_notifiers_run_side_by_side(http: HttpServer) -> None:
    """Three notifiers are in flight at once, so hanging ones cost one timeout, not three.

    The server answers only once all three wait on it together: notifiers sent one after the
    other would each time out waiting for the others.
    """
    deliveries = send(*(webhook(f"{http.url}/together/3/{n}", timeout=10) for n in range(3)))
    assert [d.ok for d in deliveries] == [True] * 3, [d.reason for d in deliveries]
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
    assert not delivery.ok and delivery.reason == f"connection refused: 127.0.0.1:{port}"


def test_a_missing_variable_fails_before_anything_is_sent(http: HttpServer) -> None:
    [delivery] = send(webhook(f"{http.url}/hook", headers={"X-Token": "${NO_SUCH_VAR_42}"}))
    assert not delivery.ok
    assert delivery.reason == (
        "the environment variable NO_SUCH_VAR_42 is not set (used in the webhook header X-Token)"
    )
    assert http.requests == []


def test_a_missing_variable_in_the_url_names_the_url(http: HttpServer) -> None:
    [delivery] = send(webhook(f"{http.url}/hooks/${{NO_SUCH_VAR_42}}"))
    assert delivery.reason == (
        "the environment variable NO_SUCH_VAR_42 is not set (used in the webhook URL)"
    )
    assert http.requests == []


def test_an_escaped_reference_stays_literal(
    http: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$${X}`` is a literal ``${X}``, as in HTTP jobs, even when X is set."""
    monkeypatch.setenv("HOOK_PART", "expanded")
    [delivery] = send(
        webhook(
            f"{http.url}/hooks/$${{HOOK_PART}}/${{HOOK_PART}}",
            headers={"X-Note": "$${HOOK_PART}"},
        )
    )
    assert delivery.ok, delivery.reason
    [seen] = http.requests
    assert seen.path == "/hooks/${HOOK_PART}/expanded"
    assert seen.headers["X-Note"] == "${HOOK_PART}"


def test_an_expanded_value_echoed_in_an_error_response_is_redacted(
    http: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every value taken from ``${VAR}`` is a secret, whatever header or URL part it is in."""
    monkeypatch.setenv("HOOK_PATH_SECRET", "path-secret-1f2e")
    monkeypatch.setenv("HOOK_HEADER_SECRET", "header-secret-3d4c")
    [delivery] = send(
        webhook(
            f"{http.url}/echo/${{HOOK_PATH_SECRET}}",
            headers={"X-Plain-Name": "${HOOK_HEADER_SECRET}", "X-Visible": "shown-value"},
        )
    )
    [seen] = http.requests
    assert seen.headers["X-Plain-Name"] == "header-secret-3d4c"  # it was sent...
    assert delivery.reason == (
        "HTTP 500 Internal Server Error: path=/echo/*** X-Plain-Name=*** X-Visible=shown-value"
    )


def test_webhook_headers_are_judged_by_mask_headers(http: HttpServer) -> None:
    """A literal header value is secret when its name is in ``settings.http.mask_headers``."""
    headers = {"X-Hook-Secret": "literal-hook-5b6a", "X-Api-Key": "literal-key-7c8d"}
    [default] = send(webhook(f"{http.url}/echo", headers=headers))
    assert default.reason == (
        "HTTP 500 Internal Server Error: path=/echo X-Hook-Secret=literal-hook-5b6a X-Api-Key=***"
    )
    [custom] = send(webhook(f"{http.url}/echo", headers=headers), mask=["x-hook-secret"])
    assert custom.reason == (
        "HTTP 500 Internal Server Error: path=/echo X-Hook-Secret=*** X-Api-Key=literal-key-7c8d"
    )


def test_the_twin_of_a_masked_header_is_masked_too(http: HttpServer) -> None:
    """Masking Authorization masks Proxy-Authorization, as for HTTP jobs."""
    headers = {"X-Proxy-Authorization": "not-a-twin-9e0f", "Proxy-Authorization": "twin-1a2b3c"}
    [delivery] = send(webhook(f"{http.url}/500", headers=headers))
    assert delivery.reason == "HTTP 500 Internal Server Error: boom: no good"
    [echoed] = send(
        webhook(f"{http.url}/echo", headers={"X-Token": "Basic twin-1a2b3c", **headers}),
        mask=["Authorization", "X-Token"],
    )
    assert "twin-1a2b3c" not in echoed.reason and "not-a-twin-9e0f" in echoed.reason


def test_url_credentials_never_show_in_a_reason() -> None:
    """urllib cannot send ``user:pass@`` itself; whatever the reason, it hides the password."""
    for url in (
        "http://hook-user:hook-pass-4d5e@127.0.0.1:9/hook",
        "http://hook-user:hook-pass-4d5e@127.0.0.1:bad/hook",
    ):
        [delivery] = send(webhook(url))
        assert not delivery.ok and delivery.reason
        assert "hook-pass-4d5e" not in delivery.reason
    # http.client takes "hook-pass-4d5e@127.0.0.1" for the port and quotes it.
    [quoted] = send(webhook("http://hook-user:hook-pass-4d5e@127.0.0.1/hook"))
    assert quoted.reason == (
        "invalid URL for 127.0.0.1: a bad port, or a space or control character in it"
    )


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
