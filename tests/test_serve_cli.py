"""``serve`` as a command: where it may listen, what it says without its extra, its systemd
unit, and that nothing of the web stack reaches the other commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, job, run_cli, write_config

WEB_MODULES = {"fastapi", "starlette", "uvicorn", "jinja2", "pydantic", "prometheus_client"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_open_bind_is_refused_while_no_token_exists(project: Path) -> None:
    write_config(project, [job("t", "true")])
    done = run_cli(project, "serve", "--bind", f"0.0.0.0:{_free_port()}")
    assert done.returncode == 2
    assert "while no token exists" in done.stderr
    assert "token create" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_open_ipv6_bind_is_named_as_written(project: Path) -> None:
    write_config(project, [job("t", "true")])
    port = _free_port()
    done = run_cli(project, "serve", "--bind", f"[::]:{port}")
    assert done.returncode == 2
    assert f"listen on [::]:{port} while no token exists" in done.stderr


def test_a_bind_that_is_not_host_and_port_is_a_usage_error(project: Path) -> None:
    write_config(project, [job("t", "true")])
    done = run_cli(project, "serve", "--bind", "localhost:http")
    assert done.returncode == 2
    assert "is not HOST:PORT" in done.stderr


def test_a_port_in_use_is_one_sentence(project: Path) -> None:
    write_config(project, [job("t", "true")])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli(project, "serve", "--bind", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_extra_serve_says_how_to_install_it(project: Path) -> None:
    write_config(project, [job("t", "true")])
    # As if the [web] extra were not installed: importing fastapi fails.
    probe = (
        "import sys; sys.modules['fastapi'] = None; sys.argv = ['batch_runner', 'serve'];"
        "from batch_runner.__main__ import run; run()"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "pip install 'batch-runner[web]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [["run-job", "t"], ["queue", "add", "--", "true"], ["list"], ["status"], ["history"]],
    ids=" ".join,
)
def test_no_other_command_imports_the_web_stack(project: Path, argv: list[str]) -> None:
    write_config(project, [job("t", "true")])
    assert run_cli(project, "validate").returncode == 0
    probe = (
        "import sys; from batch_runner.cli.main import main; code = main(sys.argv[1:]);"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    loaded = {name.split(".")[0] for name in done.stderr.split()}
    assert not loaded & (WEB_MODULES - {"pydantic"})
    assert not {name for name in done.stderr.split() if name.startswith("batch_runner.web")}


def test_systemd_serve_prints_the_web_services_unit(project: Path) -> None:
    write_config(project, [job("t", "true")])
    done = run_cli(project, "systemd", "--serve")
    assert done.returncode == 0, done.stderr
    unit = done.stdout
    assert "[Service]" in unit and "[Install]" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith("serve --bind 127.0.0.1:8080")
    assert f"{sys.executable} -m batch_runner" in exec_start
    assert "Restart=on-failure" in unit
    other = run_cli(project, "systemd", "--serve", "0.0.0.0:9000").stdout
    assert "serve --bind 0.0.0.0:9000" in other


def test_systemd_takes_timer_or_serve_not_both(project: Path) -> None:
    write_config(project, [job("t", "true")])
    done = run_cli(project, "systemd", "--serve", "--timer", "t")
    assert done.returncode == 2
    assert "not both" in done.stderr


def test_serve_says_where_it_listens(project: Path) -> None:
    write_config(project, [job("t", "true")])
    port = _free_port()
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        first = server.stderr.readline()  # blocks until serve has said it (or died)
        assert f"serving on http://127.0.0.1:{port}/" in first, first
        assert "/ui/" in first and "/api/v1/" in first
    finally:
        server.terminate()
        server.wait(timeout=30)
