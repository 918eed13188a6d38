"""Review of issue 21: a client opening event streams does not make every other dashboard redraw.

Each new subscriber reset the watcher's last overview, so the overview went again to every
open stream; each browser then fetches and the server renders its overview and queue parts.
Any ``read`` token connecting in a loop turned that into work for every dashboard."""

from __future__ import annotations

import socket
import time

import httpx


def _events(
    lines, deadline: float, until_kind: str | None = None, kinds: list[str] | None = None
) -> list[str]:
    kinds = [] if kinds is None else kinds
    for line in lines:
        if line.startswith("event: "):
            kinds.append(line[len("event: ") :])
            if kinds[-1] == until_kind:
                return kinds
        if time.monotonic() > deadline:
            break
    return kinds


def test_newcomers_do_not_resend_the_overview_to_everyone(serve_web):
    web = serve_web()
    token = web.token("read")
    watcher = web.client(token)
    host, port = web.url.removeprefix("http://").split(":")
    with watcher.stream("GET", "/api/v1/events", timeout=httpx.Timeout(30, read=3)) as stream:
        lines = stream.iter_lines()
        assert "overview" in _events(lines, time.monotonic() + 20, until_kind="overview")
        for _ in range(5):  # others come and go; nothing changes
            with socket.create_connection((host, int(port))) as other:
                other.sendall(
                    f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode()
                )
                # Its first event (the overview the newcomer needs) has come.
                other.settimeout(10)
                seen = b""
                while b"event: overview" not in seen:
                    chunk = other.recv(4096)
                    assert chunk, "the newcomer's stream ended"
                    seen += chunk
        again: list[str] = []
        try:
            _events(lines, time.monotonic() + 2, kinds=again)
        except httpx.ReadTimeout:
            pass  # nothing more came in 3 s
    assert again.count("overview") == 0, (
        f"5 streams opened elsewhere sent this unchanged dashboard {again.count('overview')} "
        "overview events"
    )
