"""Review of issue 22: ``queue worker`` with the cluster's database down must give up within
the short deadline (exit 75, one sentence), as every other command does.

``work_in_cluster`` starts the procrastinate worker thread before it first reads the store;
that thread opens procrastinate's pool with psycopg_pool's ``open(wait=True)`` and its default
30 s (the ``timeout=3`` given to ``PsycopgConnector`` is ``getconn``'s, not ``open``'s: the
trap docs/cluster-design.md 1.9 warns of). The main thread fails at once, then waits for that
thread in ``runtime.join(shutdown_grace)``: the command hangs ~30 s, and a SIGTERM meanwhile
waits as long.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from conftest import job, run_cli, write_config


def refused_dsn() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://batch@127.0.0.1:{port}/nothing"


def test_queue_worker_gives_up_in_seconds_when_the_database_is_down(tmp_path: Path) -> None:
    backend = {"type": "postgres", "dsn_env": "BR_REVIEW_DSN"}
    write_config(tmp_path, [job("a", "true")], settings={"backend": backend})
    started = time.monotonic()
    result = run_cli(tmp_path, "queue", "worker", timeout=60, env={"BR_REVIEW_DSN": refused_dsn()})
    took = time.monotonic() - started
    assert result.returncode == 75, result.stderr
    assert took < 10, f"queue worker took {took:.1f} s to give up:\n{result.stderr[-2000:]}"
