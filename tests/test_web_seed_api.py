"""Seed 001's API (/jobs...) against a real ``serve``: its README's example request works as
written (its url pointed at a local server), a queue worker runs it to ``succeeded``, and every
answer has the seed's shape and statuses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from conftest import wait_for

# The README's "ジョブ投入リクエスト例", as written there.
README_REQUEST = """
{
  "method": "POST",
  "url": "https://httpbin.org/post",
  "headers": {"Content-Type": "application/json"},
  "params": {"debug": "1"},
  "body": {"message": "hello"},
  "timeout_sec": 15,
  "priority": 5,
  "max_attempts": 3,
  "backoff_strategy": "exponential",
  "backoff_seconds": 5,
  "scheduled_at": null,
  "ttl_seconds": 604800,
  "tags": ["demo","external-api"]
}
"""
STATUS_FIELDS = {
    "job_id",
    "status",
    "attempt",
    "max_attempts",
    "priority",
    "scheduled_at",
    "created_at",
    "started_at",
    "finished_at",
    "method",
    "url",
    "timeout_sec",
    "tags",
}
RESULT_FIELDS = {
    "job_id",
    "status",
    "response_status",
    "response_headers",
    "response_body",
    "error",
    "duration_ms",
}
ZULU = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _readme_request(url: str) -> dict:
    request = json.loads(README_REQUEST)
    request["url"] = url
    return request


def _operator(web):
    return web.client(web.token("operate"))


def test_readme_example_runs_to_succeeded(serve_web, server):
    web = serve_web()
    client = _operator(web)
    answer = client.post("/jobs", json=_readme_request(server.url("/echo/post")))
    assert answer.status_code == 200, answer.text
    queued = answer.json()
    assert set(queued) == {"job_id", "status"} and queued["status"] == "queued"
    job_id = queued["job_id"]

    shown = client.get(f"/jobs/{job_id}").json()
    assert set(shown) == STATUS_FIELDS
    assert shown["status"] == "queued" and shown["attempt"] == 0
    assert (shown["max_attempts"], shown["priority"], shown["timeout_sec"]) == (3, 5, 15)
    assert shown["method"] == "POST" and shown["url"] == server.url("/echo/post")
    assert shown["tags"] == ["demo", "external-api"]
    assert shown["scheduled_at"] is None and shown["started_at"] is None
    assert ZULU.match(shown["created_at"])
    pending = client.get(f"/jobs/{job_id}/result").json()
    assert pending["status"] == "queued" and pending["response_status"] is None

    done = web.cli("queue", "worker", timeout=120)
    assert done.returncode == 0, done.stderr
    shown = client.get(f"/jobs/{job_id}").json()
    assert shown["status"] == "succeeded" and shown["attempt"] == 1
    assert ZULU.match(shown["started_at"]) and ZULU.match(shown["finished_at"])
    result = client.get(f"/jobs/{job_id}/result").json()
    assert set(result) == RESULT_FIELDS
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["response_status"] == 200
    assert result["response_headers"]["content-type"] == "application/json"
    echoed = result["response_body"]  # parsed: the response was JSON
    assert echoed["method"] == "POST" and echoed["query"] == {"debug": ["1"]}
    assert json.loads(echoed["body"]) == {"message": "hello"}
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    assert server.seen[0].headers["Content-Type"] == "application/json"


def test_authorization_is_never_shown(serve_web, server):
    web = serve_web()
    client = _operator(web)
    secret = "seed-secret-0123456789"
    request = _readme_request(server.url("/echo"))
    request["headers"]["Authorization"] = f"Bearer {secret}"
    job_id = client.post("/jobs", json=request).json()["job_id"]
    assert web.cli("queue", "worker", timeout=120).returncode == 0
    assert server.seen[0].headers["Authorization"] == f"Bearer {secret}"  # really sent
    result = client.get(f"/jobs/{job_id}/result")
    assert result.json()["status"] == "succeeded"
    assert secret not in result.text
    assert secret not in client.get(f"/jobs/{job_id}").text
    assert secret not in client.get("/jobs").text
    for path in (web.root / "logs" / "batch").glob("*.jsonl"):
        assert secret not in path.read_text()


def test_failed_canceled_and_other_runs(serve_web, server):
    web = serve_web()
    client = _operator(web)
    failing = {"method": "GET", "url": server.url("/fail")}
    failed_id = client.post("/jobs", json=failing).json()["job_id"]
    assert web.cli("queue", "worker", timeout=120).returncode == 1  # a run failed
    result = client.get(f"/jobs/{failed_id}/result").json()
    assert result["status"] == "failed" and result["response_status"] == 500
    assert result["response_body"] == {"detail": "database down"}
    assert result["error"].startswith("HTTP 500")

    later = datetime.now(UTC) + timedelta(hours=1)
    waiting = {**failing, "scheduled_at": later.isoformat()}
    waiting_id = client.post("/jobs", json=waiting).json()["job_id"]
    shown = client.get(f"/jobs/{waiting_id}").json()
    assert shown["scheduled_at"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    canceled = client.post(f"/jobs/{waiting_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert client.get(f"/jobs/{waiting_id}/result").json()["status"] == "canceled"
    again = client.post(f"/jobs/{waiting_id}/cancel")
    assert again.status_code == 409 and again.json()["detail"]
    assert client.post(f"/jobs/{failed_id}/cancel").status_code == 409

    # A command run is not one of this API's jobs; neither is an id nobody gave.
    command_id = web.cli("queue", "add", "--", "true").stdout.strip()
    for job_id in (command_id, "nope"):
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert client.get(f"/jobs/{job_id}/result").status_code == 404
        assert client.post(f"/jobs/{job_id}/cancel").status_code == 404
    audit = json.loads(web.cli("audit", "--json").stdout)
    assert {"queue", "cancel"} <= {a["action"] for a in audit}


def test_cancel_stops_a_running_job(serve_web, server):
    web = serve_web()
    client = _operator(web)
    job_id = client.post("/jobs", json={"url": server.url("/slow?s=60")}).json()["job_id"]
    worker = web.start_cli("queue", "worker")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running", 60)
    asked = client.post(f"/jobs/{job_id}/cancel")
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] in ("running", "canceled")
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "canceled", 60, 0.1)
    assert worker.wait(timeout=60) == 1  # its run was stopped
    assert client.get(f"/jobs/{job_id}/result").json()["status"] == "canceled"


def test_list_filters_and_pages(serve_web, server):
    web = serve_web()
    client = _operator(web)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ids = []
    for tags in (["a"], ["a", "b"], ["b"], None):
        body = {"url": server.url("/json"), "tags": tags, "scheduled_at": later}
        ids.append(client.post("/jobs", json=body).json()["job_id"])
    web.cli("queue", "add", "--", "true")  # not an HTTP job: never listed
    everything = client.get("/jobs").json()
    assert [j["job_id"] for j in everything["jobs"]] == ids[::-1]
    assert everything["next_cursor"] is None and everything["next_offset"] is None
    tagged = client.get("/jobs", params={"tag": "a"}).json()["jobs"]
    assert [j["job_id"] for j in tagged] == [ids[1], ids[0]]
    client.post(f"/jobs/{ids[2]}/cancel")
    canceled = client.get("/jobs", params={"status": "canceled"}).json()["jobs"]
    assert [j["job_id"] for j in canceled] == [ids[2]]
    queued = client.get("/jobs", params={"status": "queued"}).json()["jobs"]
    assert [j["job_id"] for j in queued] == [ids[3], ids[1], ids[0]]

    first = client.get("/jobs", params={"limit": 3}).json()
    assert [j["job_id"] for j in first["jobs"]] == ids[:0:-1]
    assert first["next_offset"] == 3 and first["next_cursor"]
    by_cursor = client.get("/jobs", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    by_offset = client.get("/jobs", params={"limit": 3, "offset": 3}).json()
    assert [j["job_id"] for j in by_cursor["jobs"]] == [ids[0]]
    assert [j["job_id"] for j in by_offset["jobs"]] == [ids[0]]
    assert by_cursor["next_cursor"] is None
    assert client.get("/jobs", params={"cursor": "x"}).status_code == 400


def test_refusals(serve_web, server):
    web = serve_web()
    reader = web.client(web.token("read"))
    body = _readme_request(server.url("/json"))
    assert web.client().post("/jobs", json=body).status_code == 401
    assert reader.post("/jobs", json=body).status_code == 403
    client = _operator(web)
    bad_backoff = client.post("/jobs", json={**body, "backoff_strategy": "linear"})
    assert bad_backoff.status_code == 422
    bad_url = client.post("/jobs", json={**body, "url": "ftp://example.com/x"})
    assert bad_url.status_code == 400 and "url" in bad_url.json()["detail"]
    bad_method = client.post("/jobs", json={**body, "method": "FETCH"})
    assert bad_method.status_code == 400 and "method" in bad_method.json()["detail"]
    bad_attempts = client.post("/jobs", json={**body, "max_attempts": 0})
    assert bad_attempts.status_code == 400 and "max_attempts" in bad_attempts.json()["detail"]
    too_late = client.post("/jobs", json={**body, "scheduled_at": "9999-12-31T23:59:59-05:00"})
    assert too_late.status_code == 400 and "scheduled_at" in too_late.json()["detail"]
    # "\ud800" is valid JSON but no text: it could be neither stored nor shown.
    for field, value in (("url", '"http://127.0.0.1/\\ud800"'), ("tags", '["\\ud800"]')):
        others = {key: v for key, v in body.items() if key != field}
        raw = json.dumps(others)[:-1] + f', "{field}": {value}}}'
        refused = client.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert refused.status_code == 400 and field in refused.json()["detail"]
    assert server.seen == []  # nothing was queued, nothing sent
    assert json.loads(web.cli("queue", "list", "--json").stdout) == []
