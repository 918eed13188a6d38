"""Shared fixtures: a project root in tmp_path with a config, and a way to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from batch_runner.cli.main import main

REPO = Path(__file__).resolve().parent.parent

# Shared fixtures: the HTTP test server (``server``) for the HTTP tests, a real
# ``batch_runner serve`` (``serve_web``) for the service's, a real PostgreSQL (``pg_server``,
# ``pg_database``) for the cluster's.
pytest_plugins = ["http_servers", "webserver", "pg_server", "cluster_hosts"]


def write_config(root: Path, jobs: list[dict[str, Any]], **top: Any) -> Path:
    path = root / "config" / "batch_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": jobs, **top}, indent=2) + "\n")
    return path


def job(name: str, command: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "command": command,
        "schedule_type": "interval",
        "schedule_time": "3600",
        **extra,
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root; the CLI resolves everything against it."""
    monkeypatch.setenv("BATCH_RUNNER_ROOT", str(tmp_path))
    monkeypatch.delenv("BATCH_RUNNER_CONFIG", raising=False)
    return tmp_path


def cli(*argv: str) -> int:
    """The CLI in-process through ``main(argv)``."""
    return main(list(argv))


def run_cli(
    root: Path, *argv: str, timeout: float = 30, **kwargs: Any
) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: ``python -m batch_runner`` in a subprocess."""
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "batch_runner", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=root,
        **kwargs,
    )


def start_cli(root: Path, *argv: str) -> subprocess.Popen:
    """The CLI as a background process (a worker, a scheduler, a waiting run-job)."""
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "batch_runner", *argv],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def daemons() -> Iterator[list[Any]]:
    """Schedulers a test starts (``test_scheduler.Daemon``), killed at its end if still up."""
    started: list[Any] = []
    yield started
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)


def process_running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie has finished (some inits, in containers, never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def read_results(root: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((root / "logs" / "batch").glob("batch_*.jsonl")):
        # "\n" only: splitlines() would also split on U+2028 and U+0085 inside a record.
        records += [json.loads(line) for line in path.read_text().split("\n") if line]
    return records


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the long fault-injection variants (1,000 kills, 1 GB of output)",
    )


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    """True under ``--soak``: the fault tests run their long variants."""
    return bool(request.config.getoption("--soak"))


@contextmanager
def small_tmpfs(folder: Path, size: str = "2m") -> Iterator[None]:
    """``folder`` (a log dir, or its results folder) a small tmpfs while the block runs: a disk
    that fills up. Skips the test where it cannot be mounted (not root, no mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], capture_output=True, timeout=10)
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


def fill_up(path: Path) -> None:
    """Write ``path`` until its disk is full (a small tmpfs: ``small_tmpfs``)."""
    with open(path, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
