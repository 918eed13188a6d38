"""Text a job, a server or the database wrote reaches the terminal with its control
characters as escapes: no escape sequence acts on the terminal, no line break forges a line.
The --json outputs are JSON's business (it escapes them itself)."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from http_servers import PROXY_VARIABLES

SETTLE = 20.0
# What a terminal acts on: ESC (CSI, OSC), BEL, a carriage return.
ACTING = re.compile("[\x1b\x07\r\x9b]")
FORGED_PROGRESS = "step \x1b[2J\x1b]0;TITLE\x07"
SHOWN_PROGRESS = "step \\x1b[2J\\x1b]0;TITLE\\x07"


def queue_id(root: Path, *argv: str) -> str:
    result = run_cli(root, "queue", "add", *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def show_fields(text: str, keys: set[str]) -> list[str]:
    """The lines of ``queue show`` before its output section, each checked to be one field."""
    fields = text.split("\n\noutput (last")[0].rstrip("\n").split("\n")
    for line in fields:
        assert line.split("  ")[0].strip() in keys, f"not a field: {line!r}"
    return fields


def test_status_and_show_write_a_progress_message_as_escapes(project: Path) -> None:
    gate = project / "gate"
    script = (
        f"{sys.executable} -m batch_runner progress \"$(printf 'step \\033[2J\\033]0;TITLE\\007')\""
        f" && while [ ! -e {gate} ]; do sleep 0.05; done"
    )
    write_config(project, [job("quick", ["true"])])
    run_id = queue_id(project, "--", "sh", "-c", script)
    worker = start_cli(project, "queue", "worker")
    try:

        def reported() -> bool:
            shown = run_cli(project, "queue", "show", run_id, "--json")
            return json.loads(shown.stdout)["progress_message"] == FORGED_PROGRESS

        wait_for(reported, SETTLE)
        status = run_cli(project, "status")
        assert status.returncode == 0, status.stderr
        assert not ACTING.search(status.stdout), status.stdout
        assert SHOWN_PROGRESS in status.stdout
        shown = run_cli(project, "queue", "show", run_id)
        assert not ACTING.search(shown.stdout), shown.stdout
        assert f"progress_message  {SHOWN_PROGRESS}" in shown.stdout
    finally:
        gate.touch()
        worker.communicate(timeout=SETTLE)


def test_show_cannot_be_made_to_print_a_forged_field_by_a_command(project: Path) -> None:
    write_config(project, [job("quick", ["true"])])
    run_id = queue_id(project, "--", "printf", "\x1b]0;T\x07\x1b[2Jcmd\nstatus            success")
    shown = run_cli(project, "queue", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert not ACTING.search(shown.stdout), shown.stdout
    keys = set(json.loads(run_cli(project, "queue", "show", run_id, "--json").stdout))
    fields = show_fields(shown.stdout, keys)
    assert [line.split()[1] for line in fields if line.startswith("status ")] == ["pending"]
    assert "\\x1b[2Jcmd\\nstatus" in shown.stdout


def test_show_keeps_a_multi_line_error_on_its_field_line(project: Path) -> None:
    write_config(project, [job("quick", ["true"])])
    lines = "printf 'first\\nbad\\033[31mred\\n'"
    script = f"{lines}; {lines} >&2; exit 1"  # the output section shows stdout, error stderr
    run_id = queue_id(project, "--", "sh", "-c", script)
    assert run_cli(project, "queue", "run").returncode in (0, 1)
    view = json.loads(run_cli(project, "queue", "show", run_id, "--json").stdout)
    assert "\n" in view["error"] and "\x1b[31m" in view["error"]  # as the store holds it
    shown = run_cli(project, "queue", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert not ACTING.search(shown.stdout), shown.stdout
    (error,) = [line for line in show_fields(shown.stdout, set(view)) if line.startswith("error")]
    assert error.endswith("\\nfirst\\nbad\\x1b[31mred"), error
    # The output section keeps its lines, but not what would act on the terminal.
    assert "bad\\x1b[31mred\n" in shown.stdout.split("\n\noutput (last")[1]


@pytest.fixture
def raw_server() -> Iterator[str]:
    """A server on 127.0.0.1 answering every request with a status line that holds escape
    sequences, as a hostile or broken server may; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                if stop.is_set():
                    return
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 500 Bad\x1b[31mRED\x1b]0;TITLE\x07\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/x"
    stop.set()
    # Closing the socket does not wake a thread blocked in accept(): a last connection does.
    socket.create_connection(listener.getsockname(), timeout=SETTLE).close()
    thread.join(timeout=SETTLE)
    listener.close()


def test_run_job_writes_a_servers_reason_as_escapes(
    project: Path, raw_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    http = {**job("api", None), "type": "http", "url": raw_server, "timeout": 10}
    del http["command"]
    write_config(project, [http])
    result = run_cli(project, "run-job", "api")
    assert result.returncode == 1, result.stderr
    assert read_results(project)[0]["error"].startswith("HTTP 500 Bad\x1b[31mRED")
    assert not ACTING.search(result.stdout + result.stderr), result.stderr
    assert "HTTP 500 Bad\\x1b[31mRED\\x1b]0;TITLE\\x07" in result.stderr


def test_logs_headers_write_a_log_folder_as_escapes(project: Path) -> None:
    """The header names the file: a log folder whose name holds an escape acts on nothing."""
    logs = project / "logs\x1b[2J"
    write_config(
        project,
        [job("flaky", ["false"], max_attempts=2, backoff="fixed", backoff_seconds=0)],
        settings={"log_dir": str(logs)},
    )
    assert run_cli(project, "run-job", "flaky").returncode == 1
    run_id = run_cli(project, "history", "--json").stdout
    run_id = json.loads(run_id)[0]["run_id"]
    result = run_cli(project, "logs", run_id)
    assert result.returncode == 0, result.stderr
    assert "=== attempt 2: " in result.stdout
    assert not ACTING.search(result.stdout), result.stdout
    assert "logs\\x1b[2J" in result.stdout
