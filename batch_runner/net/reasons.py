"""The one sentence for why a network call failed: HTTP jobs, webhooks, pings and SMTP alike.

A user who reads ``connection refused: api.example.com:443`` in a record, a notifier failure
or a heartbeat warning should learn the same thing from each, so every caller that catches a
network error hands it here with where it was going. Imported only once a call has failed
or is about to be made: the modules it needs are loaded by then anyway.
"""

from __future__ import annotations

import http.client
import socket
import ssl

from batch_runner.timefmt import format_seconds


def where(host: str, port: int | None) -> str:
    """``host:port``; ``[::1]:443`` for an IPv6 address; the host alone without a port."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def network_reason(exc: BaseException, host: str, port: int | None, timeout: float) -> str:
    """One line for ``exc``, raised by a call to ``host:port`` bounded by ``timeout`` seconds.

    urllib wraps the real cause in a ``URLError``; it is unwrapped here.
    """
    cause = getattr(exc, "reason", None)
    if isinstance(cause, BaseException):  # urllib.error.URLError; not importing it saves time
        exc = cause
    target = where(host, port)
    if isinstance(exc, TimeoutError):
        return f"timed out after {format_seconds(timeout)} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {host}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: {target}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS error: {exc.verify_message or exc.reason} ({target})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc} ({target})"
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected):
        return f"connection closed by {target} before a complete response"
    if isinstance(exc, http.client.InvalidURL):  # raised before connecting, e.g. a bad port
        # Not its message: it quotes the URL, path and query (and credentials) included.
        return f"invalid URL for {host}: a bad port, or a space or control character in it"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP response from {target}: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return f"connection to {target} failed: {exc.strerror or exc}"
    return f"request failed: {type(exc).__name__}: {exc}"
