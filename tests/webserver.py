"""A real ``batch_runner serve`` for the web tests: its own process on a free port of
127.0.0.1, a config and a log dir in the test's tmp folder, tokens made with the real CLI.

    def test_x(serve_web):                     # the fixture: tests/conftest.py loads this module
        web = serve_web()                      # or serve_web(jobs=[job("a", "true")])
        admin = web.client(web.token("admin"))
        assert admin.get("/api/v1/status").status_code == 200
        web.cli("queue", "list", "--json")     # the CLI on the same config

Every server and client a test started is stopped at its end (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, job, write_config

# Start-up imports FastAPI and uvicorn: seconds on a loaded 2-core machine.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_names = itertools.count(1)


@dataclass
class WebServer:
    """One running ``serve``: ``url`` (no trailing slash), its project ``root`` and
    ``config_path``; ``cli``, ``token`` and ``client`` act on the same config."""

    url: str
    root: Path
    config_path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)
    others: list[subprocess.Popen[str]] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
        """``batch_runner ARGS`` on this server's config and root (text output)."""
        return subprocess.run(
            [*_command(self.config_path, self.root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            cwd=self.root,
            **kwargs,
        )

    def start_cli(self, *args: str) -> subprocess.Popen[str]:
        """``batch_runner ARGS`` in the background (a worker, a scheduler); the caller stops
        it (or leaves it to ``stop``, which ends every process it started)."""
        proc = subprocess.Popen(
            [*_command(self.config_path, self.root), *args],
            env=_env(),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.others.append(proc)
        return proc

    def token(self, scope: str, name: str | None = None) -> str:
        """A new token of ``scope`` (``batch_runner token create``); its secret."""
        name = name or f"{scope}-{next(_names)}"
        done = self.cli("token", "create", name, "--scope", scope)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on ``url``, sending ``token`` as a bearer token if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)
        self.clients.append(client)
        return client

    def log(self) -> str:
        """What the server wrote on stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not end in time; its exit status."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        for proc in [*self.others, self.proc]:
            _end(proc)
        self.others.clear()
        return self.proc.returncode


def start_server(
    root: Path,
    *,
    jobs: list[dict[str, Any]] | None = None,
    args: tuple[str, ...] = (),
    **config: Any,
) -> WebServer:
    """Write a config in ``root`` (``jobs``, default one hourly job ``nightly``; other keyword
    arguments are top-level config keys, e.g. ``settings={...}``), start ``serve`` on a free
    port and wait until it answers."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = write_config(root, [job("nightly", "true")] if jobs is None else jobs, **config)
    for _ in range(3):  # a free port may be taken between our look and the server's bind
        port = _free_port()
        log_path = root / f"serve-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [*_command(config_path, root), "serve", "--bind", f"127.0.0.1:{port}", *args],
                env=_env(),
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the test run is not also its SIGINT
            )
        server = WebServer(f"http://127.0.0.1:{port}", root, config_path, proc, log_path)
        if _wait_until_up(server):
            return server
        if "cannot listen" not in server.log():
            break
    raise AssertionError(f"`batch_runner serve` did not come up:\n{server.log()}")


@pytest.fixture
def serve_web(tmp_path: Path) -> Iterator[Callable[..., WebServer]]:
    """A factory: ``serve_web(jobs=..., args=..., **config)`` starts a server (in
    ``tmp_path/"web"``, or ``root=`` given); all are stopped at the test's end."""
    started: list[WebServer] = []

    def start(root: Path | None = None, **kwargs: Any) -> WebServer:
        where = root or tmp_path / ("web" if not started else f"web{len(started) + 1}")
        server = start_server(where, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _command(config_path: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "batch_runner", "-c", str(config_path), "--root", str(root)]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    env.pop("BATCH_RUNNER_ROOT", None)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(server: WebServer) -> bool:
    """True once the server answers HTTP; False if it exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        try:
            httpx.get(server.url + "/api/v1/openapi.json", timeout=5)
            return True
        except httpx.TransportError:
            time.sleep(0.05)
    _end(server.proc)
    raise AssertionError(f"`batch_runner serve` did not answer in {START_TIMEOUT:g} s")


def _end(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
