"""When notices are sent (SPEC 8): one at ``notify_after`` failures, one on recovery, none else."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, job, read_results, run_cli, write_config
from margins import PROMPT
from notify_servers import HttpServer

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.notify.notice import build_notice, build_test_notice, notice_subject
from batch_runner.runs.notices import notice_due


@pytest.fixture
def http() -> Any:
    with HttpServer() as server:
        yield server


def posted(server: HttpServer) -> list[dict[str, Any]]:
    return [json.loads(seen.body) for seen in server.requests if seen.method == "POST"]


@pytest.mark.parametrize(
    ("status", "state", "after", "kind"),
    [
        ("error", {"error_count": 2, "notified": 0}, 3, None),
        ("error", {"error_count": 3, "notified": 0}, 3, "failure"),
        ("timeout", {"error_count": 3, "notified": 0}, 3, "failure"),
        ("error", {"error_count": 4, "notified": 0}, 3, "failure"),  # threshold lowered meanwhile
        ("error", {"error_count": 4, "notified": 1}, 3, None),
        ("success", {"error_count": 0, "notified": 1}, 3, "recovery"),
        ("success", {"error_count": 0, "notified": 0}, 3, None),
        ("success", {"error_count": 0}, 1, None),  # a job seen for the first time
        ("error", {"error_count": 1}, 1, "failure"),
        ("stopped", {"error_count": 5, "notified": 0}, 3, None),
        ("interrupted", {"error_count": 5, "notified": 1}, 3, None),
    ],
)
def test_notice_due(status: str, state: dict, after: int, kind: str | None) -> None:
    assert notice_due(status, state, after) == kind


def test_one_failure_notice_then_one_recovery_notice(project: Path, http: HttpServer) -> None:
    flag, sink = project / "ok", project / "notices.jsonl"
    write_config(
        project,
        [job("nightly", f"test -e {flag}", notify_after=2)],
        settings={
            "notifiers": [
                {"type": "webhook", "url": f"{http.url}/hook"},
                {"type": "command", "command": f"cat >> {sink}"},  # one notice per line
            ]
        },
    )
    runs = []
    for expected_notices in (0, 1, 1):
        runs.append(run_cli(project, "run-job", "nightly"))
        assert runs[-1].returncode == 1  # a notice never changes the outcome
        assert len(posted(http)) == expected_notices
    flag.touch()
    for _ in range(2):
        assert run_cli(project, "run-job", "nightly").returncode == 0
        assert len(posted(http)) == 2
    failure, recovery = posted(http)
    records = read_results(project)
    assert failure["kind"] == "failure" and recovery["kind"] == "recovery"
    _check_matches_record(failure, records[1], error_count=2)
    _check_matches_record(recovery, records[3], error_count=0)
    assert "nightly" in failure["text"] and "2 runs in a row" in failure["text"]
    assert "recovered" in recovery["text"]
    # The notice went to the log too, as a warning, only for the run that sent it.
    assert "ERROR notice: " + failure["text"] in runs[1].stderr
    assert "notice" not in runs[0].stderr and "notice" not in runs[2].stderr
    # The command notifier got the very same notices on its stdin.
    assert [json.loads(line) for line in sink.read_text().splitlines()] == [failure, recovery]


def _check_matches_record(notice: dict, record: dict, *, error_count: int) -> None:
    assert notice["job_name"] == record["job_name"]
    assert notice["error_count"] == error_count
    for key in (
        "status",
        "error",
        "run_id",
        "start_time",
        "end_time",
        "host",
        "log_file",
        "exit_code",
        "attempt",
        "max_attempts",
    ):
        assert notice[key] == record[key], key
    assert notice["notify_after"] == 2


def test_the_notice_is_about_the_whole_run(project: Path, http: HttpServer) -> None:
    write_config(
        project,
        [
            job(
                "retried",
                "false",
                notify_after=1,
                max_attempts=2,
                backoff="fixed",
                backoff_seconds=0,
            )
        ],
        settings={"notifiers": [{"type": "webhook", "url": f"{http.url}/hook"}]},
    )
    assert run_cli(project, "run-job", "retried").returncode == 1
    [notice] = posted(http)  # one notice per failed run, not per failed attempt
    assert notice["attempt"] == 2 and notice["max_attempts"] == 2
    assert notice["error_count"] == 1


def test_failing_notifiers_never_change_the_outcome(project: Path, http: HttpServer) -> None:
    flag, smtp_port = project / "ok", _closed_port()
    write_config(
        project,
        [job("j", f"test -e {flag}", notify_after=1)],
        settings={
            "notifiers": [
                {"type": "webhook", "url": f"{http.url}/500"},
                {"type": "webhook", "url": f"{http.url}/hang", "timeout": 0.5},
                {"type": "command", "command": "exit 7"},
                {
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp_port,
                    "from": "a@example.org",
                    "to": ["b@example.org"],
                    "timeout": 1,
                },
            ]
        },
    )
    started = time.monotonic()
    failed = run_cli(project, "run-job", "j")
    assert time.monotonic() - started < PROMPT  # not held by the server's SLOW s hang
    assert failed.returncode == 1
    assert "HTTP 500" in failed.stderr
    assert "timed out after 0.5 s" in failed.stderr
    assert "exit code 7" in failed.stderr
    assert f"connection refused: 127.0.0.1:{smtp_port}" in failed.stderr
    assert "Traceback" not in failed.stderr
    flag.touch()
    recovered = run_cli(project, "run-job", "j")
    assert recovered.returncode == 0, recovered.stderr
    assert [r["status"] for r in read_results(project)] == ["error", "success"]


def test_no_notifiers_still_logs_the_notice(project: Path) -> None:
    write_config(project, [job("j", "false", notify_after=1)])
    result = run_cli(project, "run-job", "j")
    assert result.returncode == 1
    assert "ERROR notice: batch_runner on " in result.stderr
    assert "job j failed" in result.stderr


def test_secrets_never_reach_results_logs_or_notices(
    project: Path, http: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, api_key, password = "tok-9f8e7d6c", "key-1a2b3c4d", "pw-5e6f7a8b"
    write_config(
        project,
        [job("j", "false", notify_after=1)],
        settings={
            "notifiers": [
                {
                    "type": "webhook",
                    "url": f"{http.url}/500",
                    "headers": {"Authorization": "Bearer ${HOOK_TOKEN}", "X-Api-Key": api_key},
                },
                {
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": _closed_port(),
                    "starttls": True,  # a login goes over TLS or not at all
                    "from": "a@example.org",
                    "to": ["b@example.org"],
                    "username_env": "SMTP_USER",
                    "password_env": "SMTP_PASSWORD",
                    "timeout": 1,
                },
            ]
        },
    )
    env = {"HOOK_TOKEN": token, "SMTP_USER": "me", "SMTP_PASSWORD": password}
    result = run_cli(project, "--log-level", "debug", "run-job", "j", env=env)
    assert result.returncode == 1
    [seen] = http.requests
    assert seen.headers["Authorization"] == f"Bearer {token}"  # it was sent...
    assert seen.headers["X-Api-Key"] == api_key
    tested = run_cli(project, "--log-level", "debug", "notify-test", env=env)
    everything = (result.stdout + result.stderr + tested.stdout + tested.stderr).encode()
    # Every file batch_runner wrote: results, run logs, the state database and its WAL; not
    # the config snapshot, a cached copy of the config file that holds the literal value.
    everything += b"".join(
        p.read_bytes()
        for p in (project / "logs").rglob("*")
        if p.is_file() and p.name != "config_snapshot.json"
    )
    everything += seen.body
    for secret in (token, api_key, password):  # ...and nowhere else
        assert secret.encode() not in everything


def test_a_failure_notice_follows_the_one_secret_policy(project: Path, http: HttpServer) -> None:
    """A webhook's masked headers (``settings.http.mask_headers``) and ``${VAR}`` values are
    secret in the runner's log as in records: an error response that echoes them is redacted."""
    write_config(
        project,
        [job("j", "false", notify_after=1)],
        settings={
            "http": {"mask_headers": ["X-Hook-Secret"]},
            "notifiers": [
                {
                    "type": "webhook",
                    "url": f"{http.url}/echo",
                    "headers": {
                        "X-Hook-Secret": "literal-hook-5b6a",
                        "X-Token": "${HOOK_TOKEN}",
                        "X-Api-Key": "k-visible",
                    },
                }
            ],
        },
    )
    result = run_cli(project, "run-job", "j", env={"HOOK_TOKEN": "tok-9f8e7d6c"})
    assert result.returncode == 1
    assert (
        f"notifier webhook {http.url}/… failed to send the failure notice: HTTP 500 Internal "
        "Server Error: path=/echo X-Hook-Secret=*** X-Token=*** X-Api-Key=k-visible"
    ) in result.stderr
    assert "literal-hook-5b6a" not in result.stderr and "tok-9f8e7d6c" not in result.stderr


def test_notices_are_not_imported_on_the_hot_path(project: Path) -> None:
    write_config(project, [job("plain", "true")])
    # The first run validates the file (pydantic pulls in email) and caches the snapshot.
    assert run_cli(project, "run-job", "plain").returncode == 0
    script = (
        "import sys; from batch_runner.cli.main import main; code = main(['run-job', "
        "'plain']); print(sorted(m for m in sys.modules if m.startswith("
        "('batch_runner.notify', 'smtplib', 'email.'))), code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO), "BATCH_RUNNER_ROOT": str(project)},
    )
    assert result.stdout.splitlines()[-1] == "[] 0", result.stderr


def test_notice_shapes() -> None:
    outcome = AttemptOutcome(
        status="timeout",
        exit_code=None,
        error="timed out after 5 s\nx" * 999,
        output="",
        output_truncated=False,
        started_at=100.0,
        ended_at=105.0,
        pid=1,
    )
    run = {
        "job_name": "backup",
        "run_id": "r1",
        "attempt": 1,
        "max_attempts": 1,
        "log_file": "/l/r1.log",
        "spec": {"notify_after": 3},
    }
    notice = build_notice("failure", run, outcome, {"error_count": 3}, "db1")
    assert len(notice["error"]) <= 2001
    assert notice["text"].startswith("batch_runner on db1: job backup failed (3 runs in a row)")
    assert notice["text"].count("\n") == 0 and "timed out after 5 s" in notice["text"]
    assert notice_subject(notice) == "[batch_runner] backup failed 3 times in a row on db1"
    test = build_test_notice("db1", "/etc/c.json", 100.0)
    assert test["kind"] == "test" and test["job_name"] is None
    assert set(test) >= set(notice)
    json.dumps(test)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
