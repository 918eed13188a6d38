"""Review of issue 21: a run page's event stream whose client never reads holds a bounded amount
of memory in ``serve`` (the bound was 1000 events, each up to 64 KiB of output, which JSON
may write six times larger: about 400 MB for one such client)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webserver import WebServer

LOG_BYTES = 48 * 1000 * 1000
# A few MiB of events waiting for one slow client is plenty; the server held hundreds.
ALLOWED_GROWTH_BYTES = 48 * 1024 * 1024
WATCH_SECONDS = 6.0


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def _run_with_a_big_binary_log(web: WebServer) -> str:
    added = web.cli("queue", "add", "--", "head", "-c", str(LOG_BYTES), "/dev/zero")
    assert added.returncode == 0, added.stderr
    run_id = added.stdout.strip()
    done = web.cli("queue", "run")
    assert done.returncode == 0, done.stderr
    return run_id


def _open_and_never_read(web: WebServer, token: str, path: str) -> socket.socket:
    host, port = web.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    # A small receive buffer: the kernel absorbs little, as over a slow link.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def test_a_never_reading_run_page_stream_holds_bounded_memory(serve_web):
    web = serve_web()
    run_id = _run_with_a_big_binary_log(web)
    token = web.token("read")
    before = _peak_rss(web.proc.pid)
    sock = _open_and_never_read(web, token, f"/api/v1/events?run={run_id}&attempt=1&offset=0")
    try:
        deadline = time.monotonic() + WATCH_SECONDS
        grown = 0
        while time.monotonic() < deadline and grown < ALLOWED_GROWTH_BYTES:
            time.sleep(0.2)
            grown = _peak_rss(web.proc.pid) - before
    finally:
        sock.close()
    assert grown < ALLOWED_GROWTH_BYTES, (
        f"one client that reads nothing made serve's memory grow by {grown // 2**20} MiB "
        f"in {WATCH_SECONDS:g} s"
    )
