"""The SMTP login goes over TLS or not at all: refused by validation and by the sender itself.

Against the real SMTP server of ``notify_servers`` on 127.0.0.1, which offers AUTH over plain
text: it records every login it is sent, so "nothing recorded" means the password never left.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_config
from notify_servers import SmtpServer
from test_notify_email import PASSWORD, certificate, email_notifier, send, tls  # noqa: F401

LOGIN = {"username_env": "TEST_SMTP_USER", "password_env": "TEST_SMTP_PASSWORD"}
ADVICE = 'set "starttls": true, or "smtp_port": 465 for TLS from the first byte'


@pytest.fixture(autouse=True)
def login_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_USER", "alice")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)


def with_notifier(project: Path, notifier: dict[str, Any]) -> None:
    write_config(project, [], settings={"notifiers": [notifier]})


@pytest.mark.parametrize(
    ("login", "named"),
    [
        (LOGIN, "username_env, password_env"),
        ({"username_env": "TEST_SMTP_USER"}, "username_env"),
        ({"password_env": "TEST_SMTP_PASSWORD"}, "password_env"),
    ],
)
def test_validate_refuses_a_login_without_tls(
    project: Path, login: dict[str, str], named: str
) -> None:
    with_notifier(project, email_notifier(587, **login))
    result = run_cli(project, "validate")
    assert result.returncode == 78, result.stdout
    assert (
        f"settings.notifiers[0] (line 5, column 7): a login ({named}) needs TLS, or the "
        f"password crosses the network in clear text; {ADVICE}\n"
    ) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "tls_settings", [{"starttls": True}, {"smtp_port": 465}, {"smtp_port": 465, "starttls": True}]
)
def test_validate_accepts_a_login_over_tls(project: Path, tls_settings: dict[str, Any]) -> None:
    with_notifier(project, {**email_notifier(587, **LOGIN), **tls_settings})
    result = run_cli(project, "validate")
    assert result.returncode == 0, result.stderr


def test_validate_accepts_plain_text_without_a_login(project: Path) -> None:
    with_notifier(project, email_notifier(25))
    assert run_cli(project, "validate").returncode == 0


def test_notify_test_never_sends_the_password_in_clear(project: Path) -> None:
    with SmtpServer(credentials=("alice", PASSWORD)) as server:
        with_notifier(project, email_notifier(server.port, **LOGIN))
        result = run_cli(project, "notify-test")
    assert result.returncode == 78, result.stdout
    assert ADVICE in result.stderr
    assert server.logins == [] and server.mails == []
    assert PASSWORD not in result.stderr + result.stdout


def test_the_sender_refuses_to_log_in_without_tls_whatever_reaches_it() -> None:
    """A notifier dict that skipped validation: the sender checks the connection itself."""
    with SmtpServer(credentials=("alice", PASSWORD)) as server:
        delivery = send(email_notifier(server.port, **LOGIN))
    assert not delivery.ok
    assert delivery.reason == (
        "refused to log in without TLS, which would send the password in clear text; "
        'set "starttls": true, or "smtp_port": 465'
    )
    assert server.logins == [] and server.mails == []


def test_without_a_login_plain_text_still_delivers() -> None:
    with SmtpServer() as server:
        delivery = send(email_notifier(server.port))
    assert delivery.ok, delivery.reason
    [mail] = server.mails
    assert not mail.tls and mail.user is None


def test_port_465_logs_in_over_tls_without_starttls(tls: ssl.SSLContext) -> None:  # noqa: F811
    try:
        server = SmtpServer(
            tls=tls, implicit_tls=True, port=465, credentials=("alice", PASSWORD)
        ).__enter__()
    except OSError as exc:
        pytest.skip(f"cannot listen on port 465 here: {exc.strerror}")
    try:
        delivery = send(email_notifier(465, **LOGIN))
    finally:
        server.__exit__(None, None, None)
    assert delivery.ok, delivery.reason
    [mail] = server.mails
    assert mail.tls and mail.user == "alice"
    assert server.logins == [("alice", PASSWORD)]
