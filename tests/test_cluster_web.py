"""The service on a cluster (issue 22): its API reads and changes the shared database, a run
queued through it is run by a worker of another "host", and a database that does not answer is
503 with ``Retry-After`` within seconds, never a 500 nor a hang; it answers again once the
database is back.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_hosts import BACKEND, DSN_ENV, Cluster
from conftest import job, wait_for
from webserver import WebServer

pytestmark = pytest.mark.slow


def serve(serve_web: Any, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> WebServer:
    monkeypatch.setenv(DSN_ENV, cluster.dsn)
    monkeypatch.setenv("BATCH_RUNNER_HOST_ID", "web")
    web: WebServer = serve_web(jobs=[job("nightly", "true")], settings={"backend": BACKEND})
    return web


def test_the_service_works_on_the_cluster_and_is_503_while_it_is_away(
    serve_web: Any, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = serve(serve_web, cluster, monkeypatch)
    admin = web.client(web.token("admin"))
    # The token is in the shared database: any host's service would take it.
    assert cluster.value("SELECT count(*) FROM batch_runner.tokens") == 1
    worker = cluster.host("h2", [job("nightly", "true")])
    worker.start("queue", "worker", "--forever")
    answer = admin.post("/api/v1/runs", json={"command": "echo from-the-api"})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    wait_for(
        lambda: admin.get(f"/api/v1/runs/{run_id}").json().get("status") == "success",
        timeout=30,
        interval=0.2,
    )
    run = admin.get(f"/api/v1/runs/{run_id}").json()
    assert run["host"] == "h2"
    output = admin.get(f"/api/v1/runs/{run_id}/output")
    assert output.status_code == 200 and "from-the-api" in output.text, output.text
    # On a real cluster the log file is on h2, not on the service's host: the copy h2 kept in
    # the database is served instead, ranges and all.
    for log_file in (worker.root / "logs" / "runs").rglob("*.log"):
        log_file.unlink()
    output = admin.get(f"/api/v1/runs/{run_id}/output")
    assert output.status_code == 200 and output.text == "from-the-api\n", output.text
    tail = admin.get(f"/api/v1/runs/{run_id}/output", headers={"Range": "bytes=-4"})
    assert tail.status_code == 206 and tail.text == "api\n", tail.text
    assert admin.get("/api/v1/audit").json()  # the change's audit line, in the database

    server = cluster.database.server
    server.stop("fast")
    try:
        for path in ("/api/v1/runs", "/api/v1/status"):
            started = time.monotonic()
            answer = admin.get(path)
            took = time.monotonic() - started
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert answer.headers.get("Retry-After"), answer.headers
            assert "cluster database" in answer.json()["detail"]
            assert took < 6, took
        started = time.monotonic()
        refused = admin.post("/api/v1/runs", json={"command": "true"})
        assert refused.status_code == 503, refused.text
        assert time.monotonic() - started < 6
    finally:
        server.start()
    wait_for(lambda: admin.get("/api/v1/runs").status_code == 200, timeout=30, interval=0.3)
    assert "Traceback" not in web.log()
