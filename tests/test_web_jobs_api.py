"""The jobs API (/api/v1/jobs): what ``list`` shows, a job's last runs, run now, enable and
disable through the CLI's own code, against a real ``serve`` process."""

from __future__ import annotations

import json

from conftest import job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from webserver import WebServer


def _config_jobs(web: WebServer) -> dict[str, dict]:
    return {j["name"]: j for j in json.loads(web.config_path.read_text())["jobs"]}


def test_jobs_list_agrees_with_cli_list(serve_web):
    web = serve_web(
        jobs=[
            job("nightly", "true"),
            {
                "name": "tokyo",
                "command": "true",
                "schedule_type": "daily",
                "schedule_time": "09:30",
                "timezone": "Asia/Tokyo",
            },
            job("off", "true", enabled=False),
        ],
        settings={"timezone": "UTC"},
    )
    reader = web.client(web.token("read"))
    answer = reader.get("/api/v1/jobs")
    assert answer.status_code == 200, answer.text
    jobs = {j["name"]: j for j in answer.json()}
    assert list(jobs) == ["nightly", "tokyo", "off"]
    listed = {j["name"]: j for j in json.loads(web.cli("list", "--json").stdout)}
    for name, row in listed.items():
        for key, value in row.items():
            assert jobs[name][key] == value, (name, key)
    tokyo = jobs["tokyo"]
    assert tokyo["timezone"] == "Asia/Tokyo"
    assert "Asia/Tokyo" in tokyo["schedule"]
    assert tokyo["lane"] == "default"
    assert tokyo["next_run"].endswith("+09:00")
    assert tokyo["disabled_reason"] is None and tokyo["disabled_at"] is None
    assert jobs["off"]["enabled"] is False and jobs["off"]["next_run"] is None


def test_scopes_and_unknown_job(serve_web):
    web = serve_web()
    assert web.client().get("/api/v1/jobs").status_code == 401
    reader = web.client(web.token("read"))
    assert reader.post("/api/v1/jobs/nightly/run").status_code == 403
    assert reader.post("/api/v1/jobs/nightly/disable").status_code == 403
    missing = reader.get("/api/v1/jobs/nope")
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]
    operator = web.client(web.token("operate"))
    assert operator.post("/api/v1/jobs/nope/run").status_code == 404
    assert operator.post("/api/v1/jobs/nope/enable").status_code == 404


def test_run_now_then_409_then_history(serve_web):
    web = serve_web(jobs=[job("hello", "echo hi"), job("other", "echo other")])
    operator = web.client(web.token("operate"))
    first = operator.post("/api/v1/jobs/hello/run")
    assert first.status_code == 201, first.text
    run = first.json()
    assert run["job_name"] == "hello" and run["status"] == "pending"
    assert run["trigger"] == "queue" and run["tags"] is None
    again = operator.post("/api/v1/jobs/hello/run")
    assert again.status_code == 409  # as the CLI's exit 75
    assert "already waiting or running" in again.json()["detail"]
    assert operator.post("/api/v1/jobs/other/run").status_code == 201
    done = web.cli("queue", "worker", timeout=120)
    assert done.returncode == 0, done.stderr
    detail = operator.get("/api/v1/jobs/hello").json()
    assert detail["name"] == "hello" and detail["last_status"] == "success"
    runs = detail["runs"]
    # The skipped record of the refused run, then the run: only this job's, latest first.
    assert [r["job_name"] for r in runs] == ["hello"] * len(runs)
    ran = [r for r in runs if r["run_id"] == run["run_id"]]
    assert len(ran) == 1 and ran[0]["status"] == "success" and ran[0]["output"] == "hi\n"
    assert {"start_time", "end_time", "duration_seconds", "trigger"} <= set(ran[0])
    audit = json.loads(web.cli("audit", "--json").stdout)
    assert any(a["action"] == "run" and a["run_id"] == run["run_id"] for a in audit)


def test_last_runs_are_twenty_newest_first(serve_web):
    web = serve_web(jobs=[job("tick", "true")])
    for _ in range(23):
        assert web.cli("run-job", "tick").returncode == 0
    reader = web.client(web.token("read"))
    runs = reader.get("/api/v1/jobs/tick").json()["runs"]
    assert len(runs) == 20
    starts = [r["start_time"] for r in runs]
    assert starts == sorted(starts, reverse=True)


def test_disable_and_enable_edit_the_file_as_the_cli_does(serve_web):
    web = serve_web(jobs=[job("nightly", "true"), job("keep", "true")])
    before = web.config_path.read_text()
    operator = web.client(web.token("operate"))
    answer = operator.post("/api/v1/jobs/nightly/disable")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "nightly", "enabled": False, "edited": True, "cleared": False}
    assert _config_jobs(web)["nightly"]["enabled"] is False
    assert _config_jobs(web)["keep"] == json.loads(before)["jobs"][1]
    listed = {j["name"]: j for j in json.loads(web.cli("list", "--json").stdout)}
    assert listed["nightly"]["enabled"] is False
    assert operator.get("/api/v1/jobs/nightly").json()["enabled"] is False
    answer = operator.post("/api/v1/jobs/nightly/enable")
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is True
    assert _config_jobs(web)["nightly"]["enabled"] is True
    listed = {j["name"]: j for j in json.loads(web.cli("list", "--json").stdout)}
    assert listed["nightly"]["enabled"] is True
    assert operator.get("/api/v1/jobs/nightly").json()["enabled"] is True
    actions = [a["action"] for a in json.loads(web.cli("audit", "--json").stdout)]
    assert "disable" in actions and "enable" in actions


def test_enable_lifts_a_disable_by_failures(serve_web):
    web = serve_web(jobs=[job("flaky", "exit 1", disable_after=1)])
    assert web.cli("run-job", "flaky").returncode == 1
    reader = web.client(web.token("read"))
    row = reader.get("/api/v1/jobs/flaky").json()
    assert row["disabled_reason"] and row["disabled_at"] and row["next_run"] is None
    operator = web.client(web.token("operate"))
    answer = operator.post("/api/v1/jobs/flaky/enable").json()
    assert answer["cleared"] is True
    row = reader.get("/api/v1/jobs/flaky").json()
    assert row["disabled_reason"] is None and row["disabled_at"] is None


def test_damaged_lines_are_left_out(serve_web):
    web = serve_web(jobs=[job("tick", "true")])
    assert web.cli("run-job", "tick").returncode == 0
    (results,) = (web.root / "logs" / "batch").glob("batch_*.jsonl")
    times = {"start_time": "2099-01-01T00:00:00+00:00", "end_time": "2099-01-01T00:00:01+00:00"}
    start = json.dumps(times)[1:-1]
    with open(results, "a") as lines:
        # Typed in by hand: no text (a lone surrogate), no number (NaN), no status string.
        for fields in (
            '"status": "success", "output": "\\ud800"',
            '"status": "success", "duration_seconds": NaN',
            '"status": 5',
        ):
            lines.write(f'{{"job_name": "tick", {fields}, {start}}}\n')
    answer = web.client(web.token("read")).get("/api/v1/jobs/tick")
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["runs"]] == ["success"]
