"""The email notifier against a real SMTP server on 127.0.0.1 (``notify_servers.SmtpServer``)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_config
from margins import PROMPT
from notify_servers import SmtpServer, capture_runner_log, make_certificate

from batch_runner.notify.deliver import Delivery, deliver_all
from batch_runner.notify.notice import build_test_notice

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    made = make_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("the openssl command is not installed: no certificate to test STARTTLS with")
    return made


@pytest.fixture
def tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context for the certificate, which the client side is told to trust."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return context


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_USER", "alice")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)


def email_notifier(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "from": "batch@example.org",
        "to": ["ops@example.org", "dev@example.org"],
        "starttls": False,
        "username_env": None,
        "password_env": None,
        "timeout": 5,
        **extra,
    }


def send(notifier: dict[str, Any]) -> Delivery:
    [delivery] = deliver_all(
        [notifier], build_test_notice("host1", "/c.json", time.time()), cwd="/"
    )
    return delivery


def test_plain_smtp_delivers_the_notice() -> None:
    with SmtpServer() as server:
        delivery = send(email_notifier(server.port))
    assert delivery.ok, delivery.reason
    assert delivery.label == f"email 127.0.0.1:{server.port}"
    [mail] = server.mails
    assert mail.sender == "FROM:<batch@example.org>"
    assert mail.recipients == ["TO:<ops@example.org>", "TO:<dev@example.org>"]
    message = mail.message
    assert message["Subject"] == "[batch_runner] test notice from host1"
    assert message["To"] == "ops@example.org, dev@example.org"
    assert "this notifier works" in message.get_content()
    assert not mail.tls and mail.user is None


def test_starttls_and_login_from_the_environment(tls: ssl.SSLContext) -> None:
    with SmtpServer(tls=tls, credentials=("alice", PASSWORD)) as server:
        delivery = send(
            email_notifier(
                server.port,
                starttls=True,
                username_env="TEST_SMTP_USER",
                password_env="TEST_SMTP_PASSWORD",
            )
        )
    assert delivery.ok, delivery.reason
    [mail] = server.mails
    assert mail.tls and mail.user == "alice"
    assert server.logins == [("alice", PASSWORD)]


def test_an_untrusted_certificate_is_refused(
    tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "no-cas.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with SmtpServer(tls=tls, credentials=("alice", PASSWORD)) as server:
        delivery = send(
            email_notifier(
                server.port,
                starttls=True,
                username_env="TEST_SMTP_USER",
                password_env="TEST_SMTP_PASSWORD",
            )
        )
    assert not delivery.ok
    # Worded as for every outbound call (net.reasons): what failed, then where.
    assert delivery.reason.startswith("TLS error: ")
    assert delivery.reason.endswith(f" (127.0.0.1:{server.port})")
    assert "certificate" in delivery.reason
    assert server.logins == [] and server.mails == []  # the password never left


def test_starttls_the_server_does_not_offer_fails() -> None:
    with SmtpServer() as server:
        delivery = send(email_notifier(server.port, starttls=True))
    assert not delivery.ok and "STARTTLS" in delivery.reason
    assert server.mails == []


def test_a_wrong_password_fails_without_showing_it(
    tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-" + PASSWORD)
    capture_runner_log(caplog, monkeypatch)
    with SmtpServer(tls=tls, credentials=("alice", PASSWORD)) as server:
        delivery = send(
            email_notifier(
                server.port,
                starttls=True,
                username_env="TEST_SMTP_USER",
                password_env="TEST_SMTP_PASSWORD",
            )
        )
    assert not delivery.ok
    assert delivery.reason.startswith("SMTP 535")
    assert server.mails == []
    assert PASSWORD not in delivery.reason and PASSWORD not in caplog.text
    assert "notifier email 127.0.0.1" in caplog.text  # the failure is logged, with its reason


def test_a_missing_variable_is_a_failure_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SMTP_PASSWORD")
    with SmtpServer(credentials=("alice", PASSWORD)) as server:
        delivery = send(
            email_notifier(
                server.port, username_env="TEST_SMTP_USER", password_env="TEST_SMTP_PASSWORD"
            )
        )
    assert not delivery.ok
    assert delivery.reason == (
        "the environment variable TEST_SMTP_PASSWORD is not set (used in password_env)"
    )
    assert server.mails == []


def test_a_missing_username_variable_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_SMTP_USER")
    with SmtpServer(credentials=("alice", PASSWORD)) as server:
        delivery = send(
            email_notifier(
                server.port, username_env="TEST_SMTP_USER", password_env="TEST_SMTP_PASSWORD"
            )
        )
    assert delivery.reason == (
        "the environment variable TEST_SMTP_USER is not set (used in username_env)"
    )
    assert server.mails == []


def test_a_server_that_never_answers_is_given_up_after_the_timeout() -> None:
    with SmtpServer(hang=True) as server:
        started = time.monotonic()
        delivery = send(email_notifier(server.port, timeout=0.5))
        took = time.monotonic() - started
    assert not delivery.ok and delivery.reason == "timed out after 0.5 s"
    assert took < PROMPT  # the server would hang for SLOW seconds


def test_nothing_listening_is_a_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = send(email_notifier(port))
    assert not delivery.ok and delivery.reason == f"connection refused: 127.0.0.1:{port}"


def test_port_465_speaks_tls_from_the_start(tls: ssl.SSLContext) -> None:
    try:
        server = SmtpServer(tls=tls, implicit_tls=True, port=465).__enter__()
    except OSError as exc:
        pytest.skip(f"cannot listen on port 465 here: {exc.strerror}")
    try:
        delivery = send(email_notifier(465, starttls=True))
    finally:
        server.__exit__(None, None, None)
    assert delivery.ok, delivery.reason
    [mail] = server.mails
    assert mail.tls


def test_notify_test_through_email_with_starttls(
    project: Path, tls: ssl.SSLContext, certificate: tuple[Path, Path]
) -> None:
    with SmtpServer(tls=tls, credentials=("alice", PASSWORD)) as server:
        write_config(
            project,
            [],
            settings={
                "notifiers": [
                    email_notifier(
                        server.port,
                        starttls=True,
                        username_env="TEST_SMTP_USER",
                        password_env="TEST_SMTP_PASSWORD",
                    )
                ]
            },
        )
        result = run_cli(project, "notify-test", env={"SSL_CERT_FILE": str(certificate[0])})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"email 127.0.0.1:{server.port}: ok\n"
    [mail] = server.mails
    assert mail.tls and mail.user == "alice"
