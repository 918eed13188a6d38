"""Review of issue 21 (outside, adversarial): ``serve`` stopped by Ctrl-C (SIGINT) after it
has written (its writer thread's connection open) ends cleanly: one line at most, no
traceback. ``Service.close`` closed the writer's SQLite connection from the main thread,
which sqlite3 refuses (ProgrammingError: objects created in a thread ...)."""

from __future__ import annotations

import signal
from typing import Any


def test_ctrl_c_after_a_write_ends_serve_without_a_traceback(serve_web: Any) -> None:
    web = serve_web()
    admin = web.client(web.token("admin"))
    made = admin.post("/api/v1/runs", json={"command": "true", "delay": "1h"})
    assert made.status_code == 201, made.text
    admin.close()
    web.proc.send_signal(signal.SIGINT)
    code = web.proc.wait(30)
    log = web.log()
    assert "Traceback" not in log and "ProgrammingError" not in log, log
    assert code in (0, 130, -signal.SIGINT), (code, log)
