"""Review of issue 21 (outside, adversarial): a run queued through the API exists only with
its audit line. ``POST /runs`` with ``job`` (``run-job --queue``) committed the run first and
its audit line in a second transaction: when the second could not be written the caller was
told 503 (not accepted) while the run stayed queued, unaudited, and would run.

The audit line is made unwritable by a real SQLite trigger on the real database."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from conftest import job

_REFUSE_AUDIT = (
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit trail refuses this line'); END"
)


def _refuse_audit_lines(web: Any) -> None:
    with sqlite3.connect(web.root / "logs" / "state" / "batch_runner.sqlite3") as db:
        db.execute(_REFUSE_AUDIT)


def _runs(web: Any) -> list[dict[str, Any]]:
    listed = web.cli("queue", "list", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def test_a_command_run_refused_503_is_not_queued(serve_web: Any) -> None:
    web = serve_web()
    admin = web.client(web.token("admin"))
    _refuse_audit_lines(web)
    answer = admin.post("/api/v1/runs", json={"command": "true", "delay": "1h"})
    assert answer.status_code == 503, answer.text
    assert _runs(web) == []


def test_a_job_run_refused_503_is_not_queued(serve_web: Any) -> None:
    web = serve_web(jobs=[job("nightly", "true")])
    admin = web.client(web.token("admin"))
    _refuse_audit_lines(web)
    answer = admin.post("/api/v1/runs", json={"job": "nightly"})
    assert answer.status_code == 503, answer.text
    left = [run["run_id"] for run in _runs(web)]
    assert left == [], f"answered 503, yet queued without an audit line: {left}"
