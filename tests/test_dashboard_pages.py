"""The dashboard without a browser: a real ``batch_runner serve`` read with httpx (sign-in and
its cookie, CSRF, scopes, escaping, the root path behind a proxy) and its event stream."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
from conftest import job

if TYPE_CHECKING:
    from webserver import WebServer


HOSTILE = "<script>alert(1)</script>"


def sign_in(web: WebServer, token: str, prefix: str = "") -> tuple[httpx.Client, str]:
    """A browser-like client signed in with ``token``; and its session's CSRF token."""
    client = web.client()
    answer = client.post(f"{prefix}/ui/signin", data={"token": token})
    assert answer.status_code == 303, answer.text
    return client, csrf_of(client.get(f"{prefix}/ui/queue").text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def status_json(web: WebServer) -> dict[str, Any]:
    done = web.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_sign_in_sets_a_strict_cookie_and_pages_need_it(serve_web):
    web = serve_web()
    anonymous = web.client()
    # Before any token exists, the sign-in page says how to make one.
    form = anonymous.get("/ui/signin")
    assert form.status_code == 200
    assert "batch_runner token create NAME --scope operate" in form.text

    answer = anonymous.get("/ui/jobs")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/signin?next=%2Fui%2Fjobs"

    token = web.token("operate")
    wrong = anonymous.post("/ui/signin", data={"token": token + "x"})
    assert wrong.status_code == 401
    assert "That token is not valid" in wrong.text
    assert "br_session" not in wrong.headers.get("set-cookie", "")

    right = anonymous.post("/ui/signin", data={"token": token, "next": "/ui/jobs"})
    assert right.status_code == 303 and right.headers["location"] == "/ui/jobs"
    cookie = right.headers["set-cookie"]
    assert cookie.startswith("br_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert "Secure" not in cookie
    assert anonymous.get("/ui/jobs").status_code == 200

    # Any client may claim https: believed only from a proxy named with --trusted-proxy.
    claims = web.client(headers={"X-Forwarded-Proto": "https"})
    claimed = claims.post("/ui/signin", data={"token": token})
    assert "Secure" not in claimed.headers["set-cookie"]

    # Over https (the trusted proxy says so), the cookie is Secure; an outside next is not
    # followed.
    proxied = serve_web(args=("--trusted-proxy", "127.0.0.1"))
    other = proxied.client(headers={"X-Forwarded-Proto": "https"})
    secure = other.post(
        "/ui/signin", data={"token": proxied.token("read"), "next": "//evil.example/ui/"}
    )
    assert "Secure" in secure.headers["set-cookie"]
    assert secure.headers["location"] == "/ui/"


def test_sign_out_needs_csrf_and_ends_the_session(serve_web):
    web = serve_web()
    client, csrf = sign_in(web, web.token("read"))
    assert client.post("/ui/signout").status_code == 403
    assert client.get("/ui/").status_code == 200
    out = client.post("/ui/signout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/signin"
    assert 'br_session=""' in out.headers["set-cookie"]
    # The cookie the browser had no longer opens anything, even if it kept it.
    assert client.get("/ui/").status_code == 303
    actions = [line["action"] for line in json.loads(web.cli("audit", "--json").stdout)]
    assert "signin" in actions and "signout" in actions


def test_changes_need_the_csrf_token_and_the_operate_scope(serve_web):
    web = serve_web()
    run_id = web.cli("queue", "add", "--delay", "3600", "--", "true").stdout.strip()
    operator, csrf = sign_in(web, web.token("operate"))
    page = f"/ui/runs/{run_id}"
    assert "Cancel" in operator.get(page).text
    refused = operator.post(f"{page}/cancel", data={"back": "/ui/queue"})
    assert refused.status_code == 403
    assert status_json(web)["pending"][0]["run_id"] == run_id

    canceled = operator.post(f"{page}/cancel", data={"csrf": csrf, "back": "/ui/queue"})
    assert canceled.status_code == 303 and canceled.headers["location"] == "/ui/queue"
    assert status_json(web)["pending"] == []
    assert "canceled" in operator.get(page).text

    # A second cancel is refused with the CLI's sentence, as a page.
    again = operator.post(f"{page}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and "has already finished (canceled)" in again.text

    reader, reader_csrf = sign_in(web, web.token("read"))
    for path in ("/ui/", "/ui/jobs", "/ui/jobs/nightly", "/ui/queue", page):
        html = reader.get(path).text
        # Only the sign-out form: no button that would change anything.
        assert html.count('method="post"') == 1, path
        assert "Pause" not in html and "Run now" not in html
    for path in ("/ui/queue/pause", "/ui/jobs/nightly/run", f"{page}/stop"):
        assert reader.post(path, data={"csrf": reader_csrf}).status_code == 403, path
    assert status_json(web)["paused"] is False


def test_pause_and_resume_from_the_queue_page(serve_web):
    web = serve_web()
    operator, csrf = sign_in(web, web.token("operate"))
    paused = operator.post("/ui/queue/pause", data={"csrf": csrf, "back": "/ui/queue"})
    assert paused.status_code == 303 and paused.headers["location"] == "/ui/queue"
    assert status_json(web)["paused"] is True
    assert "Resume" in operator.get("/ui/queue").text
    resumed = operator.post("/ui/queue/resume", data={"csrf": csrf})
    assert resumed.status_code == 303 and resumed.headers["location"] == "/ui/queue"
    assert status_json(web)["paused"] is False


def test_names_and_output_are_text_not_markup(serve_web):
    web = serve_web(jobs=[job("nightly", f"echo '{HOSTILE}'")])
    added = web.cli("queue", "add", "--label", HOSTILE, "--", "echo", f"out {HOSTILE}")
    assert added.returncode == 0, added.stderr
    run_id = added.stdout.strip()
    assert web.cli("queue", "run").returncode == 0
    assert web.cli("run-job", "nightly").returncode == 0
    client, _ = sign_in(web, web.token("read"))

    pages = [f"/ui/runs/{run_id}", "/ui/", "/ui/jobs/nightly", f"/ui/runs/{run_id}?part=live"]
    for path in pages:
        html = client.get(path).text
        assert "<script>alert" not in html, path
    run_page = client.get(f"/ui/runs/{run_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page  # the label
    assert "out &lt;script&gt;alert(1)&lt;/script&gt;" in run_page  # the output
    csp = client.get("/ui/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_a_page_under_the_proxy_prefix_links_under_it(serve_web):
    web = serve_web(args=("--root-path", "/batch"))
    token = web.token("operate")
    signed = web.client().post("/batch/ui/signin", data={"token": token})
    assert signed.status_code == 303 and signed.headers["location"] == "/batch/ui/"
    assert "Path=/batch/" in signed.headers["set-cookie"]
    session = signed.cookies["br_session"]
    # A proxy that passes the prefix on, and one that strips it: the same links either way.
    for prefix in ("/batch", ""):
        client = web.client(headers={"Cookie": f"br_session={session}"})
        html = client.get(f"{prefix}/ui/").text
        links = re.findall(r'(?:href|action|src|data-events|data-live)="([^"]+)"', html)
        assert len(links) > 5 and all(link.startswith("/batch/") for link in links), links
        assert 'data-events="/batch/api/v1/events"' in html
        assert client.get(f"{prefix}/ui/static/app.css").status_code == 200
    gone = web.client().get("/batch/ui/queue")
    assert gone.headers["location"] == "/batch/ui/signin?next=%2Fbatch%2Fui%2Fqueue"


def read_events(lines: Iterator[str], wanted: Any, deadline: float) -> dict[str, Any]:
    """The first event ``wanted(kind, data)`` accepts, read from an open stream's lines."""
    kind, data = None, None
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line == "" and kind is not None:
            if wanted(kind, data):
                return {"event": kind, "data": data}
            kind, data = None, None
    raise AssertionError("the event did not come")


def test_an_event_follows_a_change(serve_web):
    web = serve_web()
    reader = web.client(web.token("read"))
    timeout = httpx.Timeout(30, read=30)
    with reader.stream("GET", "/api/v1/events", timeout=timeout) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        lines = stream.iter_lines()
        read_events(lines, lambda kind, data: kind == "overview", time.monotonic() + 30)
        assert web.cli("queue", "pause").returncode == 0
        got = read_events(
            lines, lambda kind, data: kind == "overview" and data["paused"], time.monotonic() + 30
        )
        assert got["data"]["waiting"] == 0


def test_a_run_page_stream_sends_the_output_as_text(serve_web):
    web = serve_web()
    added = web.cli("queue", "add", "--", "printf", "one\\n<b>two</b>\\n")
    run_id = added.stdout.strip()
    assert web.cli("queue", "run").returncode == 0
    reader = web.client(web.token("read"))
    url = f"/api/v1/events?run={run_id}&attempt=1&offset=4"
    with reader.stream("GET", url, timeout=httpx.Timeout(30, read=30)) as stream:
        got = read_events(
            stream.iter_lines(), lambda kind, data: kind == "output", time.monotonic() + 30
        )
    assert got["data"] == {"run_id": run_id, "attempt": 1, "text": "<b>two</b>\n"}

    # The polling the page falls back to says the same.
    client, _ = sign_in(web, web.token("read"))
    polled = client.get(f"/ui/runs/{run_id}/output", params={"attempt": 1, "offset": 4}).json()
    assert polled["parts"] == [{"attempt": 1, "text": "<b>two</b>\n"}]
    assert polled["done"] is True and polled["offset"] == len("one\n<b>two</b>\n")
