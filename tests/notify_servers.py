"""Real servers on 127.0.0.1 for the notifier and heartbeat tests: HTTP and a small SMTP.

Nothing is mocked: the code under test opens real sockets to these, in this process or from a
``python -m batch_runner`` subprocess.
"""

from __future__ import annotations

import base64
import email
import email.policy
import shutil
import socketserver
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from margins import SLOW

# How long a "hanging" server holds a request: far longer than any timeout under test, so a
# client that waits for the server instead fails a test's PROMPT bound; released at once when
# the server stops.
HANG_SECONDS = SLOW


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def capture_runner_log(caplog: Any, monkeypatch: Any) -> None:
    """Send the ``batch_runner`` log to caplog, whatever an earlier in-process ``main()`` set up
    (a level threshold, a pending handler set-up, no propagation, a stderr since closed)."""
    import logging

    from batch_runner import logs

    monkeypatch.setattr(logs, "threshold", 0, raising=False)
    monkeypatch.setattr(logs, "_configure", None, raising=False)
    logger = logging.getLogger("batch_runner")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    caplog.set_level(logging.DEBUG, logger="batch_runner")


# --- HTTP -------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Background:
    """A test server serving from a thread; leaving the ``with`` block stops it."""

    release: threading.Event
    _server: socketserver.BaseServer

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


class HttpServer(_Background):
    """Answers 200 "OK"; a path containing ``hang`` waits, ``500`` fails, ``redirect`` redirects.

    ``echo`` fails with 500 and quotes the path and the ``X-`` headers it got, as a server that
    explains a refusal by echoing the request would. ``/together/N/...`` answers 200 only once
    N such requests wait at the same time (503 if they never do): clients sent one after the
    other never get there.
    """

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _HttpHandler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._meetings: dict[int, threading.Barrier] = {}
        self._meetings_lock = threading.Lock()

    def __enter__(self) -> HttpServer:
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for barrier in self._meetings.values():
            barrier.abort()
        super().__exit__(*exc)

    def meet(self, count: int) -> bool:
        """Wait until ``count`` requests wait here at once; False if they never do."""
        with self._meetings_lock:
            barrier = self._meetings.setdefault(count, threading.Barrier(count))
        try:
            barrier.wait(HANG_SECONDS)
        except threading.BrokenBarrierError:
            return False
        return True

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]


class _HttpHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner: HttpServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner.requests.append(Seen(self.command, self.path, dict(self.headers), body))
        if "hang" in self.path:
            owner.release.wait(HANG_SECONDS)
        status, extra = 200, {}
        if self.path.startswith("/together/") and not owner.meet(int(self.path.split("/")[2])):
            status = 503
        if "500" in self.path:
            status = 500
        elif "redirect" in self.path:
            status, extra = 302, {"Location": "http://127.0.0.1:9/elsewhere"}
        payload = b"OK" if status == 200 else b"boom: no good"
        if "echo" in self.path:
            status = 500
            echoed = [f"{k}={v}" for k, v in self.headers.items() if k.lower().startswith("x-")]
            payload = " ".join([f"path={self.path}", *echoed]).encode()
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting: that is what the test wanted


# --- SMTP -------------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    user: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore


@dataclass
class SmtpServer(_Background):
    """Enough SMTP for smtplib: EHLO, STARTTLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA, QUIT."""

    tls: ssl.SSLContext | None = None  # offers STARTTLS (or speaks TLS at once: implicit_tls)
    implicit_tls: bool = False
    credentials: tuple[str, str] | None = None  # offers AUTH; only these are accepted
    hang: bool = False  # accepts the connection and never says a word
    port: int = 0  # any free port unless given
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    def __enter__(self) -> SmtpServer:
        self.release = threading.Event()
        self._server = _TcpServer(("127.0.0.1", self.port), _SmtpSession)
        self._server.owner = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # port 465 again right after the last test used it
    daemon_threads = True


class _SmtpSession(socketserver.StreamRequestHandler):
    timeout = 10

    def handle(self) -> None:
        self.owner: SmtpServer = self.server.owner  # type: ignore[attr-defined]
        self.secure, self.user = False, None
        if self.owner.hang:
            self.owner.release.wait(HANG_SECONDS)
            return
        if self.owner.implicit_tls:
            self._start_tls()
        self.reply("220 127.0.0.1 test ESMTP")
        sender, recipients = "", []
        while line := self.rfile.readline(2000):
            verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self._ehlo()
            elif verb == "STARTTLS" and self.owner.tls and not self.secure:
                self.reply("220 ready")
                self._start_tls()
            elif verb == "AUTH" and self.owner.credentials:
                self._auth(*arg.split(" ", 1))
            elif verb == "MAIL":
                sender, recipients = arg, []
                self.reply("250 ok")
            elif verb == "RCPT":
                recipients.append(arg)
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                mail = Mail(sender, recipients, self._data(), self.secure, self.user)
                self.owner.mails.append(mail)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok" if verb in ("RSET", "NOOP") else "502 not implemented")

    def reply(self, text: str) -> None:
        self.connection.sendall(text.encode() + b"\r\n")

    def _ehlo(self) -> None:
        lines = ["127.0.0.1"]
        if self.owner.tls and not self.secure and not self.owner.implicit_tls:
            lines.append("STARTTLS")
        if self.owner.credentials:
            lines.append("AUTH PLAIN LOGIN")
        lines.append("8BITMIME")
        for line in lines[:-1]:
            self.reply(f"250-{line}")
        self.reply(f"250 {lines[-1]}")

    def _start_tls(self) -> None:
        assert self.owner.tls is not None
        self.connection = self.owner.tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.secure = True

    def _auth(self, mechanism: str, initial: str = "") -> None:
        if mechanism.upper() == "PLAIN":
            _, user, password = self._b64(initial or self._ask("")).split("\0")
        else:
            user = self._b64(initial or self._ask("VXNlcm5hbWU6"))
            password = self._b64(self._ask("UGFzc3dvcmQ6"))
        self.owner.logins.append((user, password))
        if (user, password) == self.owner.credentials:
            self.user = user
            self.reply("235 2.7.0 authenticated")
        else:
            self.reply("535 5.7.8 authentication credentials invalid")

    def _ask(self, prompt: str) -> str:
        self.reply(f"334 {prompt}")
        return self.rfile.readline(2000).decode().strip()

    @staticmethod
    def _b64(text: str) -> str:
        return base64.b64decode(text).decode()

    def _data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline(100_000)) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


def make_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 made by ``openssl``; None when it is missing."""
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
