"""One HTTP exchange over the network, with ``urllib.request`` from the standard library.

Why urllib: it is always there, it honours the usual ``https_proxy``/``no_proxy`` variables,
verifies TLS certificates by default and follows redirects through a handler we can replace.
Three of its defaults are changed here:

- redirects: followed at most ``MAX_REDIRECTS`` times, only over http(s), only to allowed hosts,
  without credentials in the new URL, and without the masked headers (``Authorization``,
  cookies, API keys) once they lead to another origin; the body of a redirect is never read;
- the host: each connection goes to the host that was checked (``net.hosts``), never to
  another reading of the URL (``check_destination``);
- the body: read in chunks, never more than the cap plus one chunk, so memory stays bounded
  whatever the server sends;
- the connections are tracked, so another thread can ``abort()`` a blocked read at once.

Errors become ``Failure`` with the one-line reason users read (``connection refused: h:p``),
worded by ``net.reasons`` as for every other outbound call.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from batch_runner.httpjob.prepare import PreparedRequest
from batch_runner.net import hosts
from batch_runner.net.reasons import network_reason
from batch_runner.net.secrets import mask_names, safe_url
from batch_runner.net.urls import InvalidUrl, checked_host, with_host

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
# Never forwarded to another origin by a redirect, whatever mask_headers says.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class Failure(Exception):
    """The exchange failed; ``str()`` is the one-line reason."""


@dataclass(frozen=True, slots=True)
class Response:
    """A response as received, its body cut at the cap."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool  # the server sent more than the cap
    url: str  # where it came from, after redirects; no credentials
    redirects: int


class Exchange:
    """One request and its response; ``run()`` in a worker, ``abort()`` from anywhere."""

    def __init__(
        self,
        request: PreparedRequest,
        *,
        allow_hosts: tuple[str, ...],
        mask: tuple[str, ...],
        max_body: int,
        timeout: float,
    ) -> None:
        self.request, self.allow_hosts, self.max_body = request, allow_hosts, max_body
        self.sensitive = mask_names(mask) | _CREDENTIAL_HEADERS
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.url, self.host, self.port = request.url, request.host, request.port
        self.redirects = 0
        self.aborted = threading.Event()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def run(self) -> Response:
        """Send the request and read the response; Failure with the reason if it fails."""
        try:
            return self._exchange()
        except Failure:
            raise
        except Exception as exc:  # every other way a request can fail becomes one sentence
            if self.aborted.is_set():
                raise Failure("aborted") from None
            raise Failure(self._reason(exc)) from None

    def abort(self) -> None:
        """Stop the exchange: a blocked connect or read returns at once."""
        self.aborted.set()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed: nothing to interrupt

    def _exchange(self) -> Response:
        req = self.request
        opener = urllib.request.build_opener(
            _Redirects(self), _Http(self), _Https(self, ssl.create_default_context())
        )
        request = urllib.request.Request(
            req.url, data=req.data, headers=req.headers, method=req.method
        )
        try:
            response = opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:  # a non-2xx status is a response all the same
            response = exc
        with response:
            body, truncated = self._read_body(response)
            return Response(
                status=response.status,
                reason=str(response.reason or ""),
                headers=list(response.headers.items()),
                body=body,
                truncated=truncated,
                url=self.url,
                redirects=self.redirects,
            )

    def _read_body(self, response: Any) -> tuple[bytes, bool]:
        """At most ``max_body`` bytes, and whether the server had more."""
        # An HTTPError wraps the HTTPResponse; an HTTPResponse's own fp is the raw socket file.
        source: Any = response.fp if isinstance(response, urllib.error.HTTPError) else response
        chunks, size = [], 0
        while size <= self.max_body:
            if self.aborted.is_set():
                raise Failure("aborted")
            if time.monotonic() > self.deadline:
                raise TimeoutError
            chunk = source.read1(min(CHUNK, self.max_body + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        return data[: self.max_body], size > self.max_body

    def track(self, make: Callable[..., http.client.HTTPConnection]) -> Callable[..., Any]:
        """A connection factory for urllib that remembers each connection for ``abort()``."""

        def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            connection = make(host, **kwargs)
            with self._lock:
                self._connections.append(connection)
            if self.aborted.is_set():
                raise Failure("aborted")
            return connection

        return connect

    def check_redirect(self, new_url: str) -> str:
        """Failure if the redirect to ``new_url`` may not be followed; else the URL to follow
        (without credentials)."""
        parts = urlsplit(new_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failure(f"redirect refused: {safe_url(new_url)} is not an http(s) URL")
        if self.redirects >= MAX_REDIRECTS:
            raise Failure(f"too many redirects (more than {MAX_REDIRECTS})")
        try:
            host = checked_host(new_url)
        except InvalidUrl as exc:
            raise Failure(f"redirect refused: {exc}") from None
        if not hosts.host_allowed(host, self.allow_hosts):
            raise Failure(f"redirect refused: {hosts.refusal(host)}")
        return with_host(new_url, host)

    def moved_to(self, url: str) -> None:
        """A redirect (checked, so its host is in the checked form) is being followed: the
        connection must go to its host, and errors from now on name it."""
        parts = urlsplit(url)
        self.redirects += 1
        self.url, self.host = url, parts.hostname or self.host
        self.port = parts.port or (443 if parts.scheme == "https" else 80)

    def check_destination(self, req: urllib.request.Request) -> None:
        """Failure unless urllib is about to reach the host that was checked.

        urllib decodes the host of a URL again before it connects; a URL from
        ``prepare`` or ``check_redirect`` has nothing left to decode, and this makes sure.
        Through a proxy, the host is what the proxy is asked for.
        """
        tunnel = getattr(req, "_tunnel_host", None)  # set by urllib for https via a proxy
        if tunnel:  # the host:port of the proxy's CONNECT
            destination = str(tunnel)
        elif req.has_proxy():  # http through a proxy: the URL in the request line
            destination = urlsplit(req.full_url).netloc
        else:
            destination = req.host
        # http.client's own split of "host:port", so this compares what it will use.
        host = http.client.HTTPConnection(destination).host
        if host != self.host:
            raise Failure(
                f"refused: the connection would go to {host}, not to {self.host}, "
                "the host that was checked"
            )

    def _reason(self, exc: BaseException) -> str:
        """The sentence every outbound call uses (``net.reasons``), naming the current hop."""
        return network_reason(exc, self.host, self.port, self.timeout)


class _Http(urllib.request.HTTPHandler):
    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self._exchange = exchange

    def http_open(self, req: urllib.request.Request) -> Any:
        self._exchange.check_destination(req)
        return self.do_open(self._exchange.track(http.client.HTTPConnection), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, exchange: Exchange, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.context = context
        self._exchange = exchange

    def https_open(self, req: urllib.request.Request) -> Any:
        self._exchange.check_destination(req)
        connection = self._exchange.track(http.client.HTTPSConnection)
        return self.do_open(connection, req, context=self.context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's method rules (a POST becomes a GET on 301-303), our checks (``check_redirect``)."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        location = headers.get("location")
        if not location:
            return None  # not a redirect after all: the 3xx is the response
        # As urllib does: the header was decoded as latin-1; percent-encode the raw bytes.
        raw = quote(location, encoding="iso-8859-1", safe=string.punctuation)
        old = urlsplit(req.full_url)
        try:
            new_url = self.exchange.check_redirect(urljoin(req.full_url, raw))
        except Failure:
            fp.close()
            raise
        new = self.redirect_request(req, fp, code, msg, headers, new_url)
        if new is None:
            return None
        self.exchange.moved_to(new_url)
        if urlsplit(new_url)[:2] != old[:2]:  # another origin: no credentials go there
            for name in [n for n in new.headers if n.lower() in self.exchange.sensitive]:
                del new.headers[name]
        fp.close()  # the body of a redirect is never read: it could be of any size
        return self.parent.open(new, timeout=req.timeout)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302
