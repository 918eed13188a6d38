"""Real HTTP servers on 127.0.0.1 for the HTTP job tests: one thread each, ephemeral ports.

Each server records every request it gets, so a test can check what was sent (headers, query,
body) and that nothing was sent at all when a call must be refused before connecting.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

STREAM_CHUNK = 64 * 1024
STREAM_LIMIT = 512 * 1024 * 1024  # a safety net: "endless" stops here if nobody hangs up


@dataclass
class Seen:
    """One request as the server got it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running server; ``url(path)`` addresses it, ``seen`` lists what it received."""

    httpd: ThreadingHTTPServer
    scheme: str = "http"
    seen: list[Seen] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    streamed: int = 0  # bytes sent by /endless

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Handler(BaseHTTPRequestHandler):
    server_version = "TestServer/1"
    protocol_version = "HTTP/1.0"  # bodies end when the connection closes, like many servers

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    @property
    def state(self) -> Server:
        return self.server.state  # type: ignore[attr-defined]

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.state.seen.append(
            Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
        )
        self.state.hits[parts.path] = self.state.hits.get(parts.path, 0) + 1
        route = ROUTES.get(parts.path, _echo if parts.path.startswith("/echo/") else _not_found)
        route(self, parse_qs(parts.query), body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _json(handler: Handler, query: dict, body: bytes) -> None:
    handler.send(200, json.dumps({"ok": True, "items": [1, 2]}).encode(), "application/json")


def _echo(handler: Handler, query: dict, body: bytes) -> None:
    """Everything the request carried, as JSON: like httpbin's /anything (also /echo/...)."""
    echo = {
        "method": handler.command,
        "path": urlsplit(handler.path).path,
        "query": query,
        "headers": dict(handler.headers.items()),
        "body": body.decode(errors="replace"),
    }
    handler.send(
        200,
        json.dumps(echo).encode(),
        "application/json",
        {"Set-Cookie": "session=server-secret-cookie"},
    )


def _text(handler: Handler, query: dict, body: bytes) -> None:
    handler.send(200, "héllo wörld\n".encode("latin-1"), "text/plain; charset=iso-8859-1")


def _fail(handler: Handler, query: dict, body: bytes) -> None:
    handler.send(500, b'{"detail": "database down"}', "application/json")


def _slow(handler: Handler, query: dict, body: bytes) -> None:
    time.sleep(float(query.get("s", ["3"])[0]))
    try:
        handler.send(200, b"finally")
    except OSError:
        pass  # the client gave up, as it should


def _endless(handler: Handler, query: dict, body: bytes) -> None:
    """A body with no end: only a client that stops reading and hangs up ends it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    chunk = b"[" + b"1," * (STREAM_CHUNK // 2 - 1)
    try:
        while handler.state.streamed < STREAM_LIMIT:
            handler.wfile.write(chunk)
            handler.state.streamed += len(chunk)
    except OSError:
        pass


def _redirect(handler: Handler, query: dict, body: bytes) -> None:
    code = int(query.get("code", ["302"])[0])
    handler.send(code, b"moved", headers={"Location": query["to"][0]})


def _loop(handler: Handler, query: dict, body: bytes) -> None:
    handler.send(302, b"", headers={"Location": "/loop"})


def _flaky(handler: Handler, query: dict, body: bytes) -> None:
    """Fails the first time it is called, then succeeds."""
    if handler.state.hits["/flaky"] == 1:
        handler.send(503, b"try again later")
    else:
        handler.send(200, b'{"ok": true}', "application/json")


def _not_found(handler: Handler, query: dict, body: bytes) -> None:
    handler.send(404, b"no such page")


ROUTES = {
    "/json": _json,
    "/echo": _echo,
    "/text": _text,
    "/fail": _fail,
    "/slow": _slow,
    "/endless": _endless,
    "/redirect": _redirect,
    "/loop": _loop,
    "/flaky": _flaky,
}


def start(tls: ssl.SSLContext | None = None) -> Server:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state = Server(httpd, scheme="https" if tls else "http")
    httpd.state = state  # type: ignore[attr-defined]
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return state


# Requests to 127.0.0.1 must go straight there, whatever proxy the machine is set up with.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy")


@pytest.fixture
def server() -> Iterator[Server]:
    """A fresh test HTTP server on 127.0.0.1 for one test."""
    srv = start()
    yield srv
    srv.close()
