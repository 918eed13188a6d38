"""The native API for runs, the queue and status (``/api/v1``), against a real ``batch_runner
serve`` and real workers: what is queued through it is durable and runs, its output is served
whole and in byte ranges, lists page without gaps or repeats, every change is audited, and
every bad request is one sentence, never a 500."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from conftest import job, wait_for
from webserver import WebServer


@pytest.fixture
def web(serve_web: Any) -> WebServer:
    return serve_web(jobs=[job("nightly", "true")], settings={"lanes": {"wide": 2}})


def _queue(client: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/runs", json=body)
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


def _run(client: httpx.Client, run_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def _one_sentence(answer: httpx.Response, status: int, *words: str) -> str:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail, detail
    for word in words:
        assert word in detail, detail
    return detail


def test_a_command_queued_by_an_admin_is_durable_runs_and_its_output_is_served(
    web: WebServer,
) -> None:
    admin = web.client(web.token("admin"))
    run = _queue(
        admin,
        command="printf 'hello\\nworld\\n'",
        priority=3,
        label="greet",
        tags=["nightly", "greet"],
        max_attempts=2,
        backoff="fixed",
        backoff_seconds=1,
    )
    assert run["status"] == "pending" and run["priority"] == 3 and run["label"] == "greet"
    assert run["tags"] == ["nightly", "greet"] and run["max_attempts"] == 2
    listed = web.cli("queue", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run["run_id"]]
    worked = web.cli("queue", "worker")
    assert worked.returncode == 0, worked.stderr
    done = _run(admin, run["run_id"][:12])  # a unique prefix, as the CLI takes
    assert done["run_id"] == run["run_id"] and done["status"] == "success"
    assert done["exit_code"] == 0 and done["output"] == "hello\nworld\n"

    whole = admin.get(f"/api/v1/runs/{run['run_id']}/output")
    assert whole.status_code == 200 and whole.content == b"hello\nworld\n"
    assert whole.headers["content-type"] == "text/plain; charset=utf-8"
    assert whole.headers["x-output-size"] == "12"
    part = admin.get(f"/api/v1/runs/{run['run_id']}/output", params={"offset": 6, "length": 3})
    assert part.status_code == 200 and part.content == b"wor"
    tail = admin.get(f"/api/v1/runs/{run['run_id']}/output", params={"offset": 12})
    assert tail.status_code == 200 and tail.content == b"" and tail.headers["x-output-size"] == "12"
    ranged = admin.get(f"/api/v1/runs/{run['run_id']}/output", headers={"Range": "bytes=6-10"})
    assert ranged.status_code == 206 and ranged.content == b"world"
    assert ranged.headers["content-range"] == "bytes 6-10/12"
    last = admin.get(f"/api/v1/runs/{run['run_id']}/output", headers={"Range": "bytes=-6"})
    assert last.status_code == 206 and last.content == b"world\n"
    past = admin.get(f"/api/v1/runs/{run['run_id']}/output", headers={"Range": "bytes=50-"})
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */12"
    missing = admin.get(f"/api/v1/runs/{run['run_id']}/output", params={"attempt": 2})
    _one_sentence(missing, 404, "attempt 2")


def test_no_token_is_401_a_read_token_cannot_change_and_operate_cannot_run_commands(
    web: WebServer,
) -> None:
    anonymous = web.client()
    answer = anonymous.get("/api/v1/runs")
    _one_sentence(answer, 401, "token")
    assert answer.headers["www-authenticate"] == "Bearer"
    _one_sentence(anonymous.post("/api/v1/runs", json={"command": "true"}), 401)
    _one_sentence(web.client("br_not-a-token").get("/api/v1/status"), 401)

    reader = web.client(web.token("read", "viewer"))
    assert reader.get("/api/v1/runs").status_code == 200
    assert reader.get("/api/v1/status").status_code == 200
    for path in ("/api/v1/queue/pause", "/api/v1/queue/resume", "/api/v1/runs/x/stop"):
        _one_sentence(reader.post(path), 403, "viewer", "operate")
    _one_sentence(reader.post("/api/v1/runs", json={"job": "nightly"}), 403, "operate")
    _one_sentence(reader.get("/api/v1/audit"), 403, "admin")

    operator = web.client(web.token("operate", "ops"))
    refused = operator.post("/api/v1/runs", json={"command": ["touch", "/tmp/x"]})
    _one_sentence(refused, 403, "ops", "admin")
    _one_sentence(operator.get("/api/v1/audit"), 403, "admin")
    assert json.loads(web.cli("queue", "list", "--json").stdout) == []  # nothing was queued
    http = _queue(
        operator,
        http={
            "method": "post",
            "url": "http://127.0.0.1:9/hook",
            "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"},
            "params": {"dry": "1"},
            "body": {"a": 1},
        },
    )
    assert http["request"]["method"] == "POST" and http["request"]["body"] == {"a": 1}
    assert http["request"]["headers"] == {"Authorization": "***"} and http["command"] is None


def test_a_jobs_run_now_and_a_second_one_while_it_waits_is_409(web: WebServer) -> None:
    operator = web.client(web.token("operate"))
    run = _queue(operator, job="nightly")
    assert run["job_name"] == "nightly" and run["trigger"] == "queue"
    _one_sentence(operator.post("/api/v1/runs", json={"job": "nightly"}), 409, "nightly")
    _one_sentence(operator.post("/api/v1/runs", json={"job": "nope"}), 404, "nope")
    with_option = operator.post("/api/v1/runs", json={"job": "nightly", "priority": 5})
    _one_sentence(with_option, 400, "priority")


def test_bad_bodies_and_parameters_are_one_sentence_never_a_500(web: WebServer) -> None:
    admin = web.client(web.token("admin"))
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"command": "true", "lane": "wdie"}, 400, 'did you mean "wide"'),
        ({"command": "true", "priority": 2**31}, 400, "priority must be between"),
        ({"command": "true", "max_attempts": 0}, 400, "max_attempts must be between 1 and 1000"),
        ({"command": "true", "label": "a\nb"}, 400, "control character"),
        ({"command": "true", "delay": "1x"}, 400, "delay '1x' is not a duration"),
        ({"command": "true", "delay": -1}, 400, "delay must be 0 or more"),
        ({"command": "true", "at": "tomorrow"}, 400, "at 'tomorrow' is not a time"),
        ({"command": "true", "delay": 5, "at": "2030-01-01T00:00"}, 400, "not both"),
        ({"command": "true", "timeout": 0}, 400, "timeout must be a positive number"),
        ({"command": "true", "tags": ["x" * 65]}, 400, "1 to 64 printable"),
        ({"command": "true", "tags": [str(n) for n in range(21)]}, 400, "at most 20"),
        ({"command": ""}, 400, "command is empty"),
        ({"command": []}, 400, "command is empty"),
        ({"command": "true", "http": {"method": "GET", "url": "http://x/"}}, 400, "exactly one"),
        ({}, 400, "exactly one of command, job or http"),
        ({"http": {"method": "FETCH", "url": "http://127.0.0.1/"}}, 400, "not an HTTP method"),
        ({"http": {"method": "GET", "url": "ftp://127.0.0.1/"}}, 400, "http:// or https://"),
        (
            {"http": {"method": "GET", "url": "http://127.0.0.1/", "headers": {"A": "1\r\nB: 2"}}},
            400,
            "http.headers 'A': a header cannot hold a control character",
        ),
        ({"command": "true", "priority": "high"}, 422, "priority: "),
        ({"command": "true", "colour": "red"}, 422, "colour: "),
        ({"command": 5}, 422, "command: "),
        ({"command": "true", "backoff": "linear"}, 422, "backoff: "),
    ]
    for body, status, words in cases:
        _one_sentence(admin.post("/api/v1/runs", json=body), status, words)
    not_json = admin.post(
        "/api/v1/runs", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    _one_sentence(not_json, 422, "not valid JSON")
    # JSON can escape half of a UTF-16 pair, which is no text: nothing may store or echo it.
    for raw, field in [
        (r'{"command": "true", "label": "\ud800"}', "label"),
        (r'{"command": "true", "lane": "\ud800"}', "lane"),
        (r'{"command": "true", "tags": ["ok", "\udfff"]}', "tags.1"),
        (r'{"command": ["echo", "\ud800"]}', "command.1"),
        (r'{"http": {"method": "GET", "url": "http://x/", "headers": {"A\ud800": "1"}}}', "http"),
        (r'{"http": {"method": "GET", "url": "http://x/", "body": {"k": ["\ud800"]}}}', "http"),
    ]:
        answer = admin.post(
            "/api/v1/runs", content=raw.encode(), headers={"Content-Type": "application/json"}
        )
        _one_sentence(answer, 400, field, "surrogate")
    _one_sentence(admin.get("/api/v1/runs", params={"limit": 0}), 422, "limit: ")
    _one_sentence(admin.get("/api/v1/runs", params={"status": "done"}), 400, "'done'")
    _one_sentence(admin.get("/api/v1/runs", params={"cursor": "abc"}), 400, "cursor")
    _one_sentence(admin.get("/api/v1/runs", params={"since": "yesterday"}), 400, "since")
    _one_sentence(admin.get("/api/v1/runs/zz-unknown"), 404, "zz-unknown")
    _one_sentence(admin.get("/api/v1/next", params={"count": 0}), 422, "count: ")
    assert json.loads(web.cli("queue", "list", "--json").stdout) == []
    assert "Traceback" not in web.log() and "internal error" not in web.log()


def test_the_api_refuses_with_the_clis_own_sentence(web: WebServer) -> None:
    admin = web.client(web.token("admin"))
    cli = web.cli("queue", "add", "--lane", "wdie", "--", "true")
    assert cli.returncode == 2
    api = admin.post("/api/v1/runs", json={"command": "true", "lane": "wdie"})
    assert cli.stderr.strip() == f"error: {api.json()['detail']}"
    cli = web.cli("queue", "add", "--max-attempts", "0", "--", "true")
    api = admin.post("/api/v1/runs", json={"command": "true", "max_attempts": 0})
    assert cli.stderr.strip().replace("--max-attempts", "max_attempts") == (
        f"error: {api.json()['detail']}"
    )


def test_filters_and_cursor_paging_yield_every_run_once(web: WebServer) -> None:
    admin = web.client(web.token("admin"))
    ids, tagged, labelled = [], set(), set()
    middle = ""
    for n in range(120):
        if n == 60:
            time.sleep(0.01)  # the clock moves on: the first 60 are before, the rest after
            middle = _iso_now()
        body: dict[str, Any] = {"command": ["true"], "delay": 3600}
        if n % 3 == 0:
            body["tags"] = ["three"]
        if n % 5 == 0:
            body["label"] = "five"
        run = _queue(admin, **body)
        ids.append(run["run_id"])
        if n % 3 == 0:
            tagged.add(run["run_id"])
        if n % 5 == 0:
            labelled.add(run["run_id"])
    canceled = set(ids[::7])
    for run_id in canceled:
        assert admin.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "canceled"

    def pages(**params: Any) -> list[str]:
        seen, cursor = [], None
        while True:
            answer = admin.get(
                "/api/v1/runs", params={**params, **({"cursor": cursor} if cursor else {})}
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()
            seen += [r["run_id"] for r in page["runs"]]
            assert len(page["runs"]) <= params.get("limit", 50)
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert pages(limit=7) == ids[::-1]  # newest first, each once
    assert pages() == ids[::-1]
    assert set(pages(limit=11, status="canceled")) == canceled
    assert set(pages(status=["pending", "canceled"])) == set(ids)
    assert set(pages(tag="three", limit=9)) == tagged
    assert set(pages(job="five")) == labelled
    assert set(pages(since=middle, limit=13)) == set(ids[60:])
    assert set(pages(until=middle)) == set(ids[:60])
    assert pages(tag="none-such") == []


def _iso_now() -> str:
    from datetime import datetime

    return datetime.now().astimezone().isoformat()


def test_stop_a_running_run_and_cancel_pending_and_finished_ones(web: WebServer) -> None:
    operator = web.client(web.token("operate", "ops"))
    admin = web.client(web.token("admin"))
    sleeper = _queue(admin, command=["sleep", "30"])
    worker = web.start_cli("queue", "worker")
    wait_for(lambda: _run(operator, sleeper["run_id"])["status"] == "running", timeout=30)
    stopping = operator.post(f"/api/v1/runs/{sleeper['run_id']}/stop")
    assert stopping.status_code == 200, stopping.text
    wait_for(lambda: _run(operator, sleeper["run_id"])["status"] == "stopped", timeout=30)
    assert worker.wait(timeout=30) is not None

    waiting = _queue(admin, command="true", delay="1h")
    canceled = operator.post(f"/api/v1/runs/{waiting['run_id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    again = operator.post(f"/api/v1/runs/{waiting['run_id']}/cancel")
    _one_sentence(again, 409, "already finished (canceled)")
    finished = operator.post(f"/api/v1/runs/{sleeper['run_id']}/cancel")
    _one_sentence(finished, 409, "already finished (stopped)")
    _one_sentence(operator.post("/api/v1/runs/zz-unknown/stop"), 404)


def test_status_and_next_answer_as_the_cli_does(serve_web: Any) -> None:
    daily = job("morning", "true", schedule_type="daily", schedule_time="06:30")
    web = serve_web(jobs=[daily], settings={"lanes": {"wide": 2}})
    reader = web.client(web.token("read"))
    status = reader.get("/api/v1/status")
    assert status.status_code == 200
    assert status.json()["paused"] is False
    assert status.json()["scheduler"] == {"alive": False, "pid": None}
    assert set(status.json()) >= {"scheduler", "paused", "running", "pending", "lanes"}
    web.cli("queue", "add", "--delay", "1h", "--", "true")
    assert reader.get("/api/v1/status").json() == json.loads(web.cli("status", "--json").stdout)
    plain = serve_web()  # no lanes: no "lanes" key, as status --json has none
    answer = plain.client(plain.token("read")).get("/api/v1/status").json()
    assert answer == json.loads(plain.cli("status", "--json").stdout)
    assert "lanes" not in answer and "disabled_jobs" not in answer
    upcoming = reader.get("/api/v1/next", params={"count": 3})
    assert upcoming.status_code == 200
    assert upcoming.json() == json.loads(web.cli("next", "--count", "3", "--json").stdout)
    assert [entry["name"] for entry in upcoming.json()] == ["morning"] * 3


def test_pause_and_resume_show_in_status_and_are_audited(web: WebServer) -> None:
    operator = web.client(web.token("operate", "ops"))
    reader = web.client(web.token("read"))
    assert operator.post("/api/v1/queue/pause").json() == {"paused": True}
    assert reader.get("/api/v1/status").json()["paused"] is True
    assert "PAUSED" in web.cli("status").stdout
    assert operator.post("/api/v1/queue/resume").json() == {"paused": False}
    assert reader.get("/api/v1/status").json()["paused"] is False
    lines = [e for e in json.loads(web.cli("audit", "--json").stdout) if e["actor"] == "ops"]
    assert [(e["action"], e["remote"]) for e in lines] == [
        ("resume", "127.0.0.1"),
        ("pause", "127.0.0.1"),
    ]


def test_every_change_is_audited_with_the_token_action_run_and_address(web: WebServer) -> None:
    admin = web.client(web.token("admin", "root-key"))
    operator = web.client(web.token("operate", "ops"))
    queued = _queue(admin, command="true", delay=3600)
    operator.post(f"/api/v1/runs/{queued['run_id']}/cancel")
    job_run = _queue(operator, job="nightly")
    stopped = _queue(admin, command="true", delay=3600)
    operator.post(f"/api/v1/runs/{stopped['run_id']}/stop")  # a waiting run: canceled
    listed = web.cli("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    lines = [e for e in json.loads(listed.stdout) if not e["actor"].startswith("cli:")]
    assert [(e["actor"], e["action"], e["run_id"]) for e in lines[::-1]] == [
        ("root-key", "queue", queued["run_id"]),
        ("ops", "cancel", queued["run_id"]),
        ("ops", "run", job_run["run_id"]),
        ("root-key", "queue", stopped["run_id"]),
        ("ops", "cancel", stopped["run_id"]),
    ]
    assert {e["remote"] for e in lines} == {"127.0.0.1"}
    assert {e["scope"] for e in lines} == {"admin", "operate"}
    assert lines[-1]["job_name"] == "adhoc" and lines[-3]["job_name"] == "nightly"

    first = admin.get("/api/v1/audit", params={"limit": 2}).json()
    assert [e["action"] for e in first["entries"]] == ["cancel", "queue"]
    rest = admin.get("/api/v1/audit", params={"cursor": first["next_cursor"]}).json()
    assert [e["action"] for e in rest["entries"]][:3] == ["run", "cancel", "queue"]
    one = admin.get("/api/v1/audit", params={"run_id": queued["run_id"]}).json()
    assert [e["action"] for e in one["entries"]] == ["cancel", "queue"]
    assert one["entries"][0]["at"].endswith(tuple("0123456789")) and "T" in one["entries"][0]["at"]


def test_a_running_scheduler_starts_what_the_api_queues(web: WebServer) -> None:
    admin = web.client(web.token("admin"))
    web.start_cli("scheduler")
    wait_for(lambda: admin.get("/api/v1/status").json()["scheduler"]["alive"], timeout=30)
    run = _queue(admin, command=["echo", "from the api"], tags=["e2e"])
    wait_for(lambda: _run(admin, run["run_id"])["status"] == "success", timeout=30)
    assert admin.get(f"/api/v1/runs/{run['run_id']}/output").text == "from the api\n"
    page = admin.get("/api/v1/runs", params={"tag": "e2e", "status": "success", "cursor": ""})
    assert [r["run_id"] for r in page.json()["runs"]] == [run["run_id"]]
