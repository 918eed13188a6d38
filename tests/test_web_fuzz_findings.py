"""What fuzzing the API from its OpenAPI document found (tests/test_web_fuzz.py), each as a
plain request against a real ``batch_runner serve``."""

from __future__ import annotations

import sqlite3


def test_pause_and_resume_through_the_api_change_the_queue_and_are_audited(serve_web):
    # Found as a 503 "cannot start a transaction within a transaction": the action opened a
    # transaction (the change and its audit line together) and the store's set_paused a
    # second one inside it.
    web = serve_web()
    operator = web.client(web.token("operate"))

    paused = operator.post("/api/v1/queue/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"paused": True}
    assert operator.get("/api/v1/status").json()["paused"] is True

    resumed = operator.post("/api/v1/queue/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"paused": False}
    assert operator.get("/api/v1/status").json()["paused"] is False

    database = web.root / "logs" / "state" / "batch_runner.sqlite3"
    with sqlite3.connect(database, timeout=30) as db:
        actions = [row[0] for row in db.execute("SELECT action FROM audit ORDER BY seq")]
    # The token's own creation (by the CLI) is in the trail too; the API's changes follow it.
    assert [a for a in actions if not a.startswith("token.")] == ["pause", "resume"]
