"""The API fuzzed from its own OpenAPI document (issue 21): schemathesis generates requests for
every operation of ``/api/v1/openapi.json`` (valid ones and not), sends them with an admin
token to a real ``batch_runner serve``, and checks each answer: never a 500, a status code the
document lists, the content type and body it says.

Nothing queued runs: no worker or scheduler is started, and an HTTP run may only call
127.0.0.1 (``settings.http.allow_hosts``) were one ever started. A bounded number of examples
per operation keeps it well under a minute and a half on 2 cores.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from webserver import WebServer


pytestmark = pytest.mark.slow

# 22 operations: about 25 s on 2 cores (all four phases).
EXAMPLES_PER_OPERATION = 60
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# The whole run's bound: a hang shows as this, not as a stuck test.
FUZZ_TIMEOUT = 300


def _fuzzed_server(serve_web) -> tuple[WebServer, str]:
    web = serve_web(
        jobs=[job("nightly", "true"), job("weekly", ["echo", "hi"])],
        settings={"http": {"allow_hosts": ["127.0.0.1"]}},
    )
    token = web.token("admin")
    # Something to find: a waiting run of each kind (they wait an hour; nothing starts them).
    admin = web.client(token)
    for body in (
        {"command": "echo queued", "delay": "1h", "tags": ["a"]},
        {"http": {"method": "GET", "url": "http://127.0.0.1:9/"}, "delay": "1h"},
        {"job": "nightly"},
    ):
        answer = admin.post("/api/v1/runs", json=body)
        assert answer.status_code == 201, answer.text
    return web, token


def test_the_api_answers_as_its_openapi_document_says(serve_web, tmp_path: Path) -> None:
    web, token = _fuzzed_server(serve_web)
    # schemathesis's own command (its pytest plugin does not run on this pytest), in a folder
    # of its own so that no schemathesis.toml elsewhere changes what it does.
    command = [
        os.path.join(os.path.dirname(sys.executable), "schemathesis"),
        "run",
        f"{web.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "21",
        "--workers",
        "1",  # 2 threads drawing examples crashed schemathesis itself (an ast.parse race)
        "--request-timeout",
        "30",
        "--max-failures",
        "50",
        "--output-truncate",
        "false",
        "--no-color",
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in web.log(), web.log()
    # Nothing ran: of all the runs the fuzzing queued, none started.
    database = web.root / "logs" / "state" / "batch_runner.sqlite3"
    with sqlite3.connect(database, timeout=30) as db:
        started = db.execute("SELECT count(*) FROM runs WHERE started_at IS NOT NULL").fetchone()
        queued = db.execute("SELECT count(*) FROM runs").fetchone()
    assert started == (0,) and queued[0] >= 3
