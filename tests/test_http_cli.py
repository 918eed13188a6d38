"""HTTP jobs end to end: ``run-job`` of a config job, retries, ``queue add --http``, masking."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, read_results, run_cli, write_config
from http_servers import PROXY_VARIABLES, Server
from margins import PROMPT, SLOW

from batch_runner.cli.commands import queue_http
from batch_runner.config.spec import HttpSettings, Settings
from batch_runner.errors import UsageError

SECRETS = {"API_TOKEN": "env-token-8d1f2a", "SESSION": "cookie-4b7c9e"}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 go straight there, whatever proxy the machine is set up with."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def http_job(name: str, url: str, **extra: Any) -> dict:
    return {
        "name": name,
        "type": "http",
        "url": url,
        "schedule_type": "interval",
        "schedule_time": "3600",
        **extra,
    }


def assert_no_secret(text: str) -> None:
    for secret in [*SECRETS.values(), "key-literal-31c5", "url-pass-77e0"]:
        assert secret not in text


def test_config_http_job_through_run_job(project: Path, server: Server) -> None:
    url = server.url("/echo").replace("://", "://bob:url-pass-77e0@")
    write_config(
        project,
        [
            http_job(
                "notify_api",
                url,
                method="POST",
                params={"source": "batch"},
                headers={
                    "Authorization": "Bearer ${API_TOKEN}",
                    "X-Api-Key": "key-literal-31c5",
                    "Cookie": "session=${SESSION}",
                },
                body={"event": "nightly", "ok": True},
                timeout=10,
            )
        ],
    )
    result = run_cli(project, "run-job", "notify_api", env=SECRETS)
    assert result.returncode == 0, result.stderr
    [seen] = server.seen
    assert seen.method == "POST" and seen.query == {"source": ["batch"]}
    assert seen.headers["Authorization"] == "Bearer env-token-8d1f2a"
    assert seen.headers["Cookie"] == "session=cookie-4b7c9e"
    assert json.loads(seen.body) == {"event": "nightly", "ok": True}

    [record] = read_results(project)
    assert record["status"] == "success" and record["exit_code"] is None
    assert record["response_status"] == 200
    assert record["response_body"]["body"] == '{"event": "nightly", "ok": true}'
    assert record["response_headers"]["set-cookie"] == "***"
    log_text = Path(record["log_file"]).read_text()
    assert "> X-Api-Key: ***" in log_text and "> Cookie: ***" in log_text
    history = run_cli(project, "history", "--json")
    assert json.loads(history.stdout)[0]["response_status"] == 200
    jsonl = "".join(p.read_text() for p in (project / "logs" / "batch").glob("*.jsonl"))
    for text in (jsonl, log_text, history.stdout, result.stdout, result.stderr):
        assert_no_secret(text)


def test_failed_call_is_retried(project: Path, server: Server) -> None:
    write_config(
        project,
        [
            http_job(
                "flaky", server.url("/flaky"), max_attempts=2, backoff="fixed", backoff_seconds=0
            )
        ],
    )
    result = run_cli(project, "run-job", "flaky")
    assert result.returncode == 0, result.stderr
    first, second = read_results(project)
    assert (first["status"], first["error"]) == (
        "error",
        "HTTP 503 Service Unavailable\ntry again later",
    )
    assert (second["status"], second["trigger"], second["attempt"]) == ("success", "retry", 2)
    assert server.hits["/flaky"] == 2


def test_failed_call_exits_1_and_counts_as_a_failure(project: Path, server: Server) -> None:
    write_config(project, [http_job("down", server.url("/fail"))])
    assert run_cli(project, "run-job", "down").returncode == 1
    [row] = json.loads(run_cli(project, "list", "--json").stdout)
    assert (row["last_status"], row["error_count"]) == ("error", 1)


def test_stop_ends_a_slow_call(project: Path, server: Server) -> None:
    write_config(project, [http_job("slow", server.url(f"/slow?s={SLOW:g}"), timeout=2 * SLOW)])
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    running = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "run-job", "slow"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not server.hits and time.monotonic() < deadline:
            time.sleep(0.05)
        began = time.monotonic()
        assert run_cli(project, "stop", "slow").returncode == 0
        assert running.wait(timeout=2 * SLOW) == 1
        assert time.monotonic() - began < PROMPT  # the stop ended it, not the answer at SLOW s
    finally:
        running.kill()
        running.communicate()
    [record] = read_results(project)
    assert (record["status"], record["error"]) == ("stopped", "stopped by request")


def test_queue_add_http_runs_and_shows_masked(project: Path, server: Server) -> None:
    write_config(project, [])
    url = server.url("/echo").replace("://", "://bob:url-pass-77e0@")
    added = run_cli(
        project,
        "queue",
        "add",
        "--timeout",
        "10",
        "--http",
        "post",
        url,
        "--header",
        "Authorization: Bearer ${API_TOKEN}",
        "--header",
        "X-Api-Key: key-literal-31c5",
        "--param",
        "n=1",
        "--json-body",
        "--body",
        '{"hello": "world"}',
    )
    assert added.returncode == 0, added.stderr
    run_id = added.stdout.strip()
    worker = run_cli(project, "queue", "worker", env=SECRETS)
    assert worker.returncode == 0, worker.stderr
    [seen] = server.seen
    assert seen.headers["Authorization"] == "Bearer env-token-8d1f2a"
    assert seen.query == {"n": ["1"]} and json.loads(seen.body) == {"hello": "world"}
    [record] = read_results(project)
    assert record["status"] == "success" and record["response_status"] == 200
    shown = [run_cli(project, "queue", "show", run_id, *flag).stdout for flag in ([], ["--json"])]
    assert json.loads(shown[1])["status"] == "success"
    listing = run_cli(project, "queue", "list", "--all").stdout
    for text in (*shown, listing, Path(record["log_file"]).read_text(), json.dumps(record)):
        assert_no_secret(text)


# --- queue add --http options ---------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    queue_http.add_arguments(parser)
    return parser.parse_args(list(argv))


SETTINGS = Settings(log_dir="/tmp", http=HttpSettings(allow_hosts=("*.example.com",)))


def test_build_spec_has_the_shape_of_a_config_job() -> None:
    args = parse(
        "--http",
        "patch",
        "https://api.example.com/x",
        "--header",
        "A: b: c",
        "--param",
        "q=x=y",
        "--body",
        "raw text",
    )
    spec = queue_http.build_spec(args, SETTINGS)
    assert spec["type"] == "http" and spec["command"] is None
    assert spec["http"] == {
        "method": "PATCH",
        "url": "https://api.example.com/x",
        "headers": {"A": "b: c"},
        "params": {"q": "x=y"},
        "body": "raw text",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--http", "FETCH", "https://api.example.com/"], "not an HTTP method"),
        (["--http", "GET", "ftp://api.example.com/"], "http:// or https://"),
        (["--http", "GET", "https://other.org/"], "other.org is not in settings.http.allow_hosts"),
        (["--http", "GET", "https://api.example.com/", "--header", "no colon"], "'NAME: VALUE'"),
        (["--http", "GET", "https://api.example.com/", "--param", "novalue"], "NAME=VALUE"),
        (
            ["--http", "GET", "https://api.example.com/", "--header", "A: 1", "--header", "a: 2"],
            "given twice",
        ),
        (
            ["--http", "GET", "https://api.example.com/", "--json-body", "--body", "{oops"],
            "not valid JSON",
        ),
        (["--http", "GET", "https://api.example.com/", "--json-body"], "needs --body"),
    ],
)
def test_build_spec_refuses_bad_options(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        queue_http.build_spec(parse(*argv), SETTINGS)
