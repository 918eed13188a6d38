"""Several "hosts" of one cluster on this machine, for the multi-process tests: each host is a
project folder of its own (its config, its log dir) whose processes carry a distinct
``BATCH_RUNNER_HOST_ID`` and the DSN of the test's database in ``BR_CLUSTER_DSN``.

``cluster`` (a pytest fixture) gives a ``Cluster``: ``cluster.host("h1", jobs, **settings)``
writes the same config on that host, ``host.start("scheduler")`` starts a process (stopped or
killed at the end of the test, whatever happened), ``host.run(...)`` runs a command to its end,
and ``cluster.query(sql)`` reads the shared database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO
from pg_server import PgDatabase

DSN_ENV = "BR_CLUSTER_DSN"
BACKEND = {"type": "postgres", "dsn_env": DSN_ENV}


# The stale bound of the hosts' processes: 4 s instead of 10 (BATCH_RUNNER_STALE_SECONDS), so the
# tests of dead workers take seconds; the test that checks README's bound keeps the default.
TEST_STALE_SECONDS = "4"


class Host:
    def __init__(
        self, cluster: Cluster, name: str, root: Path, stale: str | None = TEST_STALE_SECONDS
    ) -> None:
        self.cluster, self.name, self.root = cluster, name, root
        self.stale = stale
        self.procs: list[subprocess.Popen[str]] = []

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BATCH_RUNNER_ROOT": str(self.root),
            "PYTHONPATH": str(REPO),
            "BATCH_RUNNER_HOST_ID": self.name,
            DSN_ENV: self.cluster.dsn,
            **({"BATCH_RUNNER_STALE_SECONDS": self.stale} if self.stale else {}),
        }

    def write_config(self, jobs: list[dict[str, Any]], **settings: Any) -> None:
        path = self.root / "config" / "batch_config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"jobs": jobs, "settings": {"backend": BACKEND, **settings}}
        path.write_text(json.dumps(document, indent=2) + "\n")

    def start(self, *argv: str, log: str | None = None) -> subprocess.Popen[str]:
        """A background process of this host; its stderr goes to a file under the root."""
        name = log or "-".join(argv).replace("/", "_")
        stderr = open(self.root / f"{name}.stderr", "a")  # noqa: SIM115 - kept by the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", *argv],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        stderr.close()
        self.procs.append(proc)
        return proc

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "batch_runner", *argv],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stderr_of(self, name: str) -> str:
        path = self.root / f"{name}.stderr"
        return path.read_text() if path.exists() else ""

    def results(self) -> list[dict[str, Any]]:
        """This host's JSONL lines."""
        lines: list[dict[str, Any]] = []
        for path in sorted((self.root / "logs" / "batch").glob("batch_*.jsonl")):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line]
        return lines

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Cluster:
    def __init__(self, database: PgDatabase, base: Path) -> None:
        self.database, self.base = database, base
        self.hosts: dict[str, Host] = {}

    @property
    def dsn(self) -> str:
        return self.database.dsn

    def host(
        self,
        name: str,
        jobs: list[dict[str, Any]],
        stale: str | None = TEST_STALE_SECONDS,
        **settings: Any,
    ) -> Host:
        """A host with this config; ``stale=None``: the stale bound users get (10 s)."""
        root = self.base / name
        root.mkdir(parents=True, exist_ok=True)
        host = Host(self, name, root, stale)
        host.write_config(jobs, **settings)
        self.hosts[name] = host
        return host

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params or None)  # type: ignore[call-overload]
            return cursor.fetchall() if cursor.description else []

    def value(self, sql: str, *params: Any) -> Any:
        rows = self.query(sql, *params)
        return rows[0][0] if rows else None

    def status(self, run_id: str) -> Any:
        return self.value("SELECT status FROM batch_runner.runs WHERE run_id = %s", run_id)

    def start_running(self, host: Host, job_name: str, *, started: bool = True) -> str:
        """Queue a run of ``job_name`` from ``host``; with ``started``, wait until a worker
        runs it and its process group is recorded. Its id."""
        from conftest import wait_for

        result = host.run("run-job", job_name, "--queue")
        assert result.returncode == 0, result.stderr
        run_id = result.stdout.strip()
        if started:
            wait_for(
                lambda: self.value(
                    "SELECT pgid FROM batch_runner.runs WHERE run_id = %s AND status = 'running'",
                    run_id,
                ),
                timeout=30,
                interval=0.05,
            )
        return run_id

    def stop_all(self) -> None:
        for host in self.hosts.values():
            host.stop_all()

    def diagnosis(self) -> str:
        """What a failed test shows: the runs, the attempts, every process's stderr."""
        parts = [
            "runs: "
            + repr(
                self.query(
                    "SELECT run_id, job_name, status, attempt, host, pid, beat_at "
                    "FROM batch_runner.runs ORDER BY seq"
                )
            ),
            "attempts: "
            + repr(
                self.query(
                    "SELECT run_id, attempt, status, host FROM batch_runner.attempts ORDER BY seq"
                )
            ),
            "procrastinate jobs: "
            + repr(
                self.query("SELECT id, status, worker_id, args FROM procrastinate_jobs ORDER BY id")
            ),
            "procrastinate workers: "
            + repr(self.query("SELECT id, now() - last_heartbeat FROM procrastinate_workers")),
            "processes: "
            + repr(
                self.query("SELECT host, pid, role, now() - last_seen FROM batch_runner.processes")
            ),
        ]
        for host in self.hosts.values():
            for path in sorted(host.root.glob("*.stderr")):
                parts.append(f"--- {host.name}/{path.name}:\n{path.read_text()[-3000:]}")
        return "\n".join(parts)


@pytest.fixture
def cluster(cluster_database: PgDatabase, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(cluster_database, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()
