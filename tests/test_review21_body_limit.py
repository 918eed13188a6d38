"""Review of issue 21: a caller without any token cannot make ``serve`` hold a body of any size
in memory (FastAPI reads a request's whole body before it looks at the caller's token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

BODY_BYTES = 128 * 1024 * 1024
# Far above any real request (a command, an HTTP call's body), far below the body sent.
ALLOWED_GROWTH_BYTES = 48 * 1024 * 1024


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def _body() -> Iterator[bytes]:
    chunk = b"[" + b"0," * (512 * 1024 - 1)
    sent = 0
    while sent < BODY_BYTES:
        yield chunk
        sent += len(chunk)


def _post_anonymously(url: str, path: str, content_type: str) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(_sent_size())}
    try:
        with httpx.Client(base_url=url, timeout=30) as anonymous:
            answer = anonymous.post(path, content=_body(), headers=headers)
        assert answer.status_code in (400, 401, 413, 422), answer.text
    except httpx.TransportError:
        pass  # the server closed on a refused body: what matters is what it held


def _sent_size() -> int:
    chunk = 1 + 2 * (512 * 1024 - 1)
    return -(-BODY_BYTES // chunk) * chunk


def test_an_anonymous_huge_body_is_refused_without_being_held(serve_web):
    web = serve_web()
    before = _peak_rss(web.proc.pid)
    _post_anonymously(web.url, "/api/v1/runs", "application/json")
    _post_anonymously(web.url, "/ui/signin", "application/x-www-form-urlencoded")
    grown = _peak_rss(web.proc.pid) - before
    assert grown < ALLOWED_GROWTH_BYTES, (
        f"serve's peak memory grew by {grown // 2**20} MiB for bodies sent without a token"
    )


def test_a_body_sent_without_its_length_is_cut_at_the_limit(serve_web):
    """Chunked: no Content-Length to refuse at once; the body is refused once past 1 MiB."""
    web = serve_web()
    token = web.token("admin")
    before = _peak_rss(web.proc.pid)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=web.url, timeout=30) as client:
            answer = client.post("/api/v1/runs", content=_body(), headers=headers)
        assert answer.status_code == 413, answer.text
    except httpx.TransportError:
        pass  # closed while still sending: refused all the same
    grown = _peak_rss(web.proc.pid) - before
    assert grown < ALLOWED_GROWTH_BYTES, f"grew by {grown // 2**20} MiB"
    # A body under the limit is taken as ever.
    small = {"command": "true", "label": "x" * 100}
    with httpx.Client(base_url=web.url, timeout=30, headers=headers) as client:
        assert client.post("/api/v1/runs", json=small).status_code == 201
