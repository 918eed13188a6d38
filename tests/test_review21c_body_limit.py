"""Second outside review of issue 21 (after 609a7a9): the body limit (``web/limits.py``) at
its edges, sent byte for byte on a raw socket so that no client library smooths them over.

The finding: a dashboard session's change to an API route that takes no body (pause, stop,
cancel, enable...) sent as a form without the ``X-CSRF-Token`` header has its CSRF token read
from the form by ``auth.check_csrf`` inside the dependency, outside FastAPI's own body parsing;
a form cut at the limit (or by a client that went away) raised Starlette's ``ClientDisconnect``
there: 500 and a traceback in serve's log instead of 413."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlparse

LIMIT = 1024 * 1024
_SMALL_RUN = b'{"command":"true","delay":"1h"}'


def _exchange(url: str, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` whole, then read the answer until the server closes."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as conn:
        conn.sendall(request)
        answer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                return answer
            answer += chunk
        return answer


def _chunked(body: bytes) -> bytes:
    pieces = [body[i : i + 60000] for i in range(0, len(body), 60000)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def _head(path: str, *lines: str) -> bytes:
    return (
        "\r\n".join([f"POST {path} HTTP/1.1", "Host: x", *lines, "Connection: close"]) + "\r\n\r\n"
    ).encode()


def _status(answer: bytes) -> int:
    final = answer.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]
    return int(final.split(b" ", 2)[1])


def test_a_sessions_form_cut_at_the_limit_is_413_not_500(serve_web: Any) -> None:
    web = serve_web()
    browser = web.client()
    signed_in = browser.post("/ui/signin", data={"token": web.token("operate")})
    assert signed_in.status_code == 303, signed_in.text
    cookie = browser.cookies["br_session"]
    form = b"csrf=" + b"a" * (LIMIT + 4096)
    for content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=XX",
    ):
        body = form
        if content_type.startswith("multipart"):
            body = (
                b'--XX\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
                + form
                + b"\r\n--XX--\r\n"
            )
        head = _head(
            "/api/v1/queue/pause",
            f"Cookie: br_session={cookie}",
            f"Content-Type: {content_type}",
            "Transfer-Encoding: chunked",
        )
        answer = _exchange(web.url, head + _chunked(body))
        assert _status(answer) == 413, (content_type, answer[:200], web.log()[-1500:])
    assert "Traceback" not in web.log(), web.log()


def test_the_limits_edges_are_sound(serve_web: Any) -> None:
    """Checked and found sound: a body of exactly 1 MiB is taken; over it by a byte, or
    announced over it with ``Expect: 100-continue``, is 413 without a 100 Continue; a small
    body after a 100 Continue is taken; chunked with a Content-Length too is refused (400)."""
    web = serve_web()
    auth = f"Authorization: Bearer {web.token('admin')}"
    json_type = "Content-Type: application/json"
    exact = _SMALL_RUN + b" " * (LIMIT - len(_SMALL_RUN))
    answer = _exchange(
        web.url, _head("/api/v1/runs", auth, json_type, f"Content-Length: {LIMIT}") + exact
    )
    assert _status(answer) == 201, answer[:300]
    over = exact + b" "
    answer = _exchange(
        web.url, _head("/api/v1/runs", auth, json_type, f"Content-Length: {LIMIT + 1}") + over
    )
    assert _status(answer) == 413, answer[:300]
    expect = _head(
        "/api/v1/runs", auth, json_type, "Content-Length: 2000000", "Expect: 100-continue"
    )
    answer = _exchange(web.url, expect)
    assert b"100 Continue" not in answer and _status(answer) == 413, answer[:300]
    small = _head(
        "/api/v1/runs",
        auth,
        json_type,
        f"Content-Length: {len(_SMALL_RUN)}",
        "Expect: 100-continue",
    )
    answer = _exchange(web.url, small + _SMALL_RUN)
    assert _status(answer) == 201, answer[:300]
    both = _head("/api/v1/runs", auth, json_type, "Content-Length: 5", "Transfer-Encoding: chunked")
    assert _status(_exchange(web.url, both + _chunked(_SMALL_RUN))) == 400
