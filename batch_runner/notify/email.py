"""The ``email`` notifier: SMTP, with STARTTLS and credentials from environment variables.

Port 465 speaks TLS from the first byte (SMTPS), as every mail provider documents it; any other
port starts in plain text and upgrades with STARTTLS when ``starttls`` is set. A login is only
ever sent over TLS: without it the sender refuses, as validation does. The SMTP
server's own answers are quoted as it gave them; every other failure (a timeout, TLS, a refused
connection) is worded by ``net.reasons``, as for every outbound call. The password is a secret
(``net.secrets``): it is scrubbed from every reason.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from batch_runner.net import envrefs
from batch_runner.net.reasons import network_reason
from batch_runner.net.secrets import Scrubber
from batch_runner.notify import NotifierError
from batch_runner.notify.notice import notice_subject

SMTPS_PORT = 465
# The notice fields listed under the text, in this order, when they have a value.
_BODY_FIELDS = (
    "kind",
    "job_name",
    "status",
    "error_count",
    "notify_after",
    "run_id",
    "attempt",
    "max_attempts",
    "exit_code",
    "start_time",
    "end_time",
    "host",
    "log_file",
    "disabled_reason",
)


def send(notifier: Mapping[str, Any], notice: dict[str, Any]) -> None:
    """Send the notice as a plain-text mail; raise NotifierError with the reason if it fails."""
    username, password = _credentials(notifier)
    try:
        _send(notifier, build_message(notifier, notice), username, password)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise NotifierError(Scrubber([password]).text(_reason(exc, notifier))) from None


def _credentials(notifier: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(username, password) from the environment variables the config names, or (None, None)."""
    user_var, password_var = notifier.get("username_env"), notifier.get("password_env")
    if not user_var and not password_var:
        return None, None
    if not user_var:
        raise NotifierError("password_env is set but username_env is not; both are needed")
    try:
        username = envrefs.lookup(user_var, os.environ, "username_env")
        password = envrefs.lookup(password_var, os.environ, "password_env") if password_var else ""
    except envrefs.MissingVariable as exc:
        raise NotifierError(str(exc)) from None
    return username, password


def _send(
    notifier: Mapping[str, Any], message: EmailMessage, username: str | None, password: str | None
) -> None:
    host, port = notifier["smtp_host"], int(notifier.get("smtp_port", 25))
    timeout = float(notifier.get("timeout", 30))
    context = ssl.create_default_context()  # certificates and host names are always checked
    if port == SMTPS_PORT:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if notifier.get("starttls") and port != SMTPS_PORT:
            smtp.starttls(context=context)
        if username is not None:
            _require_tls(smtp)
            smtp.login(username, password or "")
        smtp.send_message(message)


def _require_tls(smtp: smtplib.SMTP) -> None:
    """NotifierError unless the connection is encrypted now, before a password is sent.

    Validation refuses a login without ``starttls`` or port 465 already; this judges the socket
    itself, so no notifier dict, however it got here, sends the password in clear text.
    """
    if not isinstance(smtp.sock, ssl.SSLSocket):
        raise NotifierError(
            "refused to log in without TLS, which would send the password in clear text; "
            f'set "starttls": true, or "smtp_port": {SMTPS_PORT}'
        )


def build_message(notifier: Mapping[str, Any], notice: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = notifier["from"]
    message["To"] = ", ".join(notifier["to"])
    message["Subject"] = notice_subject(notice)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=notice.get("host") or None)
    lines = [notice["text"], ""]
    lines += [f"{key}: {notice[key]}" for key in _BODY_FIELDS if notice.get(key) is not None]
    if notice.get("error"):
        lines += ["", "error:", notice["error"]]
    message.set_content("\n".join(lines) + "\n")
    return message


def _reason(exc: BaseException, notifier: Mapping[str, Any]) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"SMTP {exc.smtp_code} {' '.join(text.split())}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "every recipient was refused: " + ", ".join(map(str, exc.recipients))
    # smtplib turns a read that timed out into "Connection unexpectedly closed: timed out".
    if isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__
    if isinstance(exc, smtplib.SMTPException) or not isinstance(exc, OSError):
        return str(exc) or type(exc).__name__  # smtplib's own words ("STARTTLS ... not supported")
    host, port = notifier["smtp_host"], int(notifier.get("smtp_port", 25))
    return network_reason(exc, host, port, float(notifier.get("timeout", 30)))
