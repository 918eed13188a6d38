"""One HTTP attempt against real servers on 127.0.0.1: outcomes, records, limits, redirects."""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_servers import PROXY_VARIABLES, Server, start
from margins import PROMPT, SLOW

from batch_runner.config.spec import HttpSettings
from batch_runner.execution.executor import AttemptOutcome, AttemptRequest
from batch_runner.httpjob.attempt import run_attempt

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches beyond this machine: other names do not resolve (as without network)."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def attempt(
    tmp_path: Path,
    url: str,
    *,
    timeout: float = 5,
    environ: dict[str, str] | None = None,
    cancel: Any = None,
    stop_requested: Any = None,
    run_log_max_bytes: int = 10 * 1024 * 1024,
    **http: Any,
) -> AttemptOutcome:
    """One attempt of ``{"url": url, **http}``; settings.http keys go in ``http`` too."""
    keys = ("max_response_bytes", "mask_headers", "allow_hosts")
    settings = {k: (tuple(v) if isinstance(v, list) else v) for k, v in http.items() if k in keys}
    request_http = {
        "method": "GET",
        "url": url,
        "headers": {},
        "params": {},
        "body": None,
        **{k: v for k, v in http.items() if k not in keys},
    }
    run = {
        "run_id": "r1",
        "job_name": "j",
        "attempt": 1,
        "spec": {"type": "http", "http": request_http, "timeout": timeout},
    }
    request = AttemptRequest(
        run_id="r1",
        job_name="j",
        attempt=1,
        argv=[],
        cwd=str(tmp_path),
        env={},
        timeout=timeout,
        kill_grace=1,
        log_path=tmp_path / "logs" / "runs" / "r1.log",
        run_log_max_bytes=run_log_max_bytes,
        output_max_bytes=65536,
    )
    return run_attempt(
        run,
        request,
        settings=HttpSettings(**settings),
        stop_requested=stop_requested or (lambda: False),
        cancel=cancel,
        environ=environ or {},
    )


def run_log(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "runs" / "r1.log").read_text()


# --- outcomes -------------------------------------------------------------------------------


def test_200_json_is_success_with_the_parsed_body(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/json"))
    assert outcome.status == "success"
    assert outcome.error is None and outcome.exit_code is None
    assert outcome.extra["response_status"] == 200
    assert outcome.extra["response_body"] == {"ok": True, "items": [1, 2]}
    assert outcome.extra["response_headers"]["content-type"] == "application/json"
    assert outcome.output_truncated is False
    assert outcome.output.startswith(f"GET {server.url('/json')} -> HTTP 200 OK")
    log = run_log(tmp_path)
    assert f"> GET {server.url('/json')}" in log and "< HTTP 200 OK" in log
    assert '{"ok": true, "items": [1, 2]}' in log


def test_200_text_is_decoded_with_its_charset(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/text"))
    assert outcome.status == "success"
    assert outcome.extra["response_body"] == "héllo wörld\n"


def test_500_is_an_error_with_the_status_line_and_the_body(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/fail"))
    assert outcome.status == "error"
    assert outcome.error.splitlines()[0] == "HTTP 500 Internal Server Error"
    assert "database down" in outcome.error
    assert outcome.extra["response_status"] == 500
    assert outcome.extra["response_body"] == {"detail": "database down"}


def test_404_is_an_error(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/nowhere"))
    assert (outcome.status, outcome.error.splitlines()[0]) == ("error", "HTTP 404 Not Found")


def test_slow_server_times_out_at_the_run_timeout(tmp_path: Path, server: Server) -> None:
    began = time.monotonic()
    outcome = attempt(tmp_path, server.url(f"/slow?s={SLOW:g}"), timeout=0.5)
    assert time.monotonic() - began < PROMPT
    assert outcome.status == "error"
    assert outcome.error == "timed out after 0.5 s"
    assert outcome.extra["response_status"] is None
    assert "! timed out after 0.5 s" in run_log(tmp_path)


def test_the_timeout_bounds_a_hanging_name_lookup_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> Any:
        released.wait(SLOW)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    began = time.monotonic()
    try:
        outcome = attempt(tmp_path, "http://slow-dns.invalid/", timeout=0.5)
    finally:
        released.set()
    assert time.monotonic() - began < PROMPT
    assert outcome.error == "timed out after 0.5 s"


def test_refused_connection_names_host_and_port(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = attempt(tmp_path, f"http://127.0.0.1:{port}/")
    assert outcome.status == "error"
    assert outcome.error == f"connection refused: 127.0.0.1:{port}"


def test_unknown_host_is_a_dns_error(tmp_path: Path) -> None:
    outcome = attempt(tmp_path, "http://nope.invalid/x")
    assert outcome.status == "error"
    assert outcome.error == "cannot resolve host: nope.invalid"


def test_untrusted_certificate_is_a_tls_error(tmp_path: Path, tls_server: Server) -> None:
    outcome = attempt(tmp_path, tls_server.url("/json"))
    assert outcome.status == "error"
    assert outcome.error.startswith("TLS error: ")
    assert "certificate" in outcome.error and f"127.0.0.1:{tls_server.port}" in outcome.error


def test_a_stop_request_in_the_store_ends_the_attempt(tmp_path: Path, server: Server) -> None:
    """``stop RUN_ID`` writes to the store; the attempt asks ``stop_requested()`` once a second."""
    began = time.monotonic()
    asked: list[float] = []

    def stop_requested() -> bool:
        asked.append(time.monotonic() - began)
        return time.monotonic() - began > 0.3

    outcome = attempt(
        tmp_path, server.url(f"/slow?s={SLOW:g}"), timeout=2 * SLOW, stop_requested=stop_requested
    )
    assert time.monotonic() - began < PROMPT
    assert (outcome.status, outcome.error) == ("stopped", "stopped by request")
    assert len(asked) <= 3  # not at every poll: it is a database query


def test_a_stop_request_ends_the_attempt_at_once(tmp_path: Path, server: Server) -> None:
    began = time.monotonic()
    outcome = attempt(
        tmp_path,
        server.url(f"/slow?s={SLOW:g}"),
        timeout=2 * SLOW,
        cancel=lambda: "stopped" if time.monotonic() - began > 0.3 else None,
    )
    assert time.monotonic() - began < PROMPT
    assert (outcome.status, outcome.error) == ("stopped", "stopped by request")


# --- what is sent ---------------------------------------------------------------------------


def test_method_params_headers_and_json_body_are_sent(tmp_path: Path, server: Server) -> None:
    outcome = attempt(
        tmp_path,
        server.url("/echo?fixed=1"),
        method="POST",
        params={"q": "a b", "n": "2"},
        headers={"X-Trace": "t-1"},
        body={"name": "nightly", "n": 3},
    )
    assert outcome.status == "success"
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.query == {"fixed": ["1"], "q": ["a b"], "n": ["2"]}
    assert seen.headers["X-Trace"] == "t-1"
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"name": "nightly", "n": 3}


def test_a_string_body_is_sent_as_it_is(tmp_path: Path, server: Server) -> None:
    attempt(
        tmp_path,
        server.url("/echo"),
        method="PUT",
        body="a=1&b=2",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    [seen] = server.seen
    assert seen.body == b"a=1&b=2"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_variables_are_resolved_when_the_attempt_starts(tmp_path: Path, server: Server) -> None:
    outcome = attempt(
        tmp_path,
        server.url("/echo"),
        method="POST",
        environ={"API_TOKEN": "tok-123456", "WHO": "ops"},
        headers={"Authorization": "Bearer ${API_TOKEN}"},
        params={"who": "${WHO}"},
        body={"note": "by ${WHO}, $${LITERAL}"},
    )
    assert outcome.status == "success"
    [seen] = server.seen
    assert seen.headers["Authorization"] == "Bearer tok-123456"
    assert seen.query == {"who": ["ops"]}
    assert json.loads(seen.body) == {"note": "by ops, ${LITERAL}"}
    log = run_log(tmp_path)
    assert "tok-123456" not in log and "?who=${WHO}" in log


def test_a_missing_variable_fails_the_attempt_before_connecting(
    tmp_path: Path, server: Server
) -> None:
    outcome = attempt(tmp_path, server.url("/echo"), headers={"X-Api-Key": "${NOT_SET}"})
    assert outcome.status == "error"
    assert (
        outcome.error
        == "the environment variable NOT_SET is not set (used in the header X-Api-Key)"
    )
    assert server.seen == []


@pytest.mark.parametrize(
    ("where", "http", "named"),
    [
        ("url", {}, "the URL"),
        ("params", {"params": {"k": "${NOT_SET}"}}, "the parameter k"),
        ("body", {"body": {"deep": ["${NOT_SET}"]}}, "the body"),
    ],
)
def test_a_missing_variable_is_named_with_where_it_is_used(
    tmp_path: Path, server: Server, where: str, http: dict[str, Any], named: str
) -> None:
    url = server.url("/echo/${NOT_SET}" if where == "url" else "/echo")
    outcome = attempt(tmp_path, url, **http)
    assert outcome.error == f"the environment variable NOT_SET is not set (used in {named})"
    assert server.seen == []


# --- limits ---------------------------------------------------------------------------------


def test_endless_body_is_cut_at_the_cap_and_memory_stays_bounded(
    tmp_path: Path, server: Server
) -> None:
    cap = 256 * 1024
    tracemalloc.start()
    try:
        outcome = attempt(tmp_path, server.url("/endless"), max_response_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status == "success"
    assert outcome.output_truncated is True
    body = outcome.extra["response_body"]
    assert isinstance(body, str) and body.startswith("[1,1,") and len(body) == cap
    assert peak < 8 * cap  # the body, its text and the log line: never what the server sent
    time.sleep(0.2)
    assert server.streamed < 64 * 1024 * 1024  # we hung up; the server did not send it all
    assert f"response body cut at {cap} bytes" in run_log(tmp_path)


def test_the_run_log_is_bounded(tmp_path: Path, server: Server) -> None:
    outcome = attempt(
        tmp_path, server.url("/endless"), max_response_bytes=200_000, run_log_max_bytes=10_000
    )
    assert outcome.output_truncated is True
    log = run_log(tmp_path)
    assert len(log) < 11_000 and "bytes cut here" in log


# --- allow_hosts and redirects --------------------------------------------------------------


def test_a_host_not_allowed_is_refused_before_any_connection(
    tmp_path: Path, server: Server
) -> None:
    outcome = attempt(tmp_path, server.url("/json"), allow_hosts=["api.example.com"])
    assert outcome.status == "error"
    assert outcome.error == ("host not allowed: 127.0.0.1 is not in settings.http.allow_hosts")
    assert server.seen == []


def test_redirect_to_an_allowed_host_is_followed(tmp_path: Path, server: Server) -> None:
    target = server.url("/json")
    outcome = attempt(tmp_path, server.url(f"/redirect?to={target}"), allow_hosts=["127.0.0.1"])
    assert outcome.status == "success"
    assert outcome.extra["response_body"] == {"ok": True, "items": [1, 2]}
    assert f"after 1 redirect to {target}" in outcome.output


def test_redirect_to_a_host_not_allowed_is_refused(tmp_path: Path, server: Server) -> None:
    target = server.url("/json", host="localhost")
    outcome = attempt(tmp_path, server.url(f"/redirect?to={target}"), allow_hosts=["127.0.0.1"])
    assert outcome.status == "error"
    assert outcome.error == (
        "redirect refused: host not allowed: localhost is not in settings.http.allow_hosts"
    )
    assert server.hits == {"/redirect": 1}


def test_credentials_do_not_follow_a_redirect_to_another_origin(
    tmp_path: Path, server: Server
) -> None:
    target = server.url("/echo", host="localhost")
    outcome = attempt(
        tmp_path,
        server.url(f"/redirect?to={target}"),
        headers={"Authorization": "Bearer secret-token", "X-Trace": "t"},
    )
    assert outcome.status == "success"
    first, second = server.seen
    assert first.headers["Authorization"] == "Bearer secret-token"
    assert "Authorization" not in second.headers and second.headers["X-Trace"] == "t"


def test_redirect_loops_end(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/loop"))
    assert outcome.error == "too many redirects (more than 5)"
    assert server.hits == {"/loop": 6}


# --- masking --------------------------------------------------------------------------------


def test_secrets_are_masked_in_the_record_and_the_run_log(tmp_path: Path, server: Server) -> None:
    outcome = attempt(
        tmp_path,
        server.url("/echo").replace("://", "://alice:url-pass-999@"),
        method="POST",
        environ={"API_TOKEN": "env-token-777"},
        headers={
            "authorization": "Bearer ${API_TOKEN}",
            "X-API-KEY": "key-literal-555",
            "Cookie": "sid=cookie-value-333",
            "X-Visible": "plain",
        },
    )
    assert outcome.status == "success"
    seen = server.seen[0].headers
    assert seen["Authorization"] == "Bearer env-token-777"  # the server got the real thing
    kept = json.dumps(outcome.extra) + outcome.output + (outcome.error or "") + run_log(tmp_path)
    for secret in (
        "env-token-777",
        "key-literal-555",
        "cookie-value-333",
        "url-pass-999",
        "server-secret-cookie",
    ):
        assert secret not in kept
    echoed = outcome.extra["response_body"]["headers"]
    assert echoed["Authorization"] == "***" and echoed["X-Visible"] == "plain"
    assert outcome.extra["response_headers"]["set-cookie"] == "***"
    assert "> authorization: ***" in run_log(tmp_path)
    assert "://***@127.0.0.1" in outcome.output


def test_every_expanded_value_is_scrubbed_from_what_is_kept(tmp_path: Path, server: Server) -> None:
    """A ``${VAR}`` value is a secret wherever it is used: URL path, parameter, header, body."""
    secrets = {
        "PATH_SECRET": "path-secret-4242",
        "QUERY_SECRET": "query-secret-5353",
        "HEADER_SECRET": "header-secret-6464",  # in a header mask_headers does not name
        "BODY_SECRET": "body-secret-7575",
    }
    outcome = attempt(
        tmp_path,
        server.url("/echo/${PATH_SECRET}"),
        method="POST",
        environ=secrets,
        params={"q": "${QUERY_SECRET}"},
        headers={"X-Plain": "${HEADER_SECRET}"},
        body={"note": "${BODY_SECRET}"},
    )
    assert outcome.status == "success"
    [seen] = server.seen
    assert seen.path == "/echo/path-secret-4242" and seen.query == {"q": ["query-secret-5353"]}
    assert json.loads(seen.body) == {"note": "body-secret-7575"}  # the server got them all
    echoed = outcome.extra["response_body"]
    assert echoed["path"] == "/echo/***"
    assert echoed["query"] == {"q": ["***"]}
    assert echoed["headers"]["X-Plain"] == "***"
    assert echoed["body"] == '{"note": "***"}'
    kept = json.dumps(outcome.extra) + outcome.output + (outcome.error or "") + run_log(tmp_path)
    for secret in secrets.values():
        assert secret not in kept
    # What is shown of the request is the request as written.
    assert outcome.output.startswith(
        f"POST {server.url('/echo/${PATH_SECRET}')}?q=${{QUERY_SECRET}} -> HTTP 200 OK"
    )
    assert "> X-Plain: ${HEADER_SECRET}" in run_log(tmp_path)


def test_an_expanded_value_is_scrubbed_from_a_failure_reason(tmp_path: Path) -> None:
    outcome = attempt(
        tmp_path, "http://${API_HOST}/x", environ={"API_HOST": "internal-host.invalid"}
    )
    assert (outcome.status, outcome.error) == ("error", "cannot resolve host: ***")
    assert "internal-host.invalid" not in outcome.output + run_log(tmp_path)
    assert outcome.output == "GET http://${API_HOST}/x -> cannot resolve host: ***"


def test_an_expanded_value_is_scrubbed_from_a_refusal(tmp_path: Path) -> None:
    outcome = attempt(
        tmp_path,
        "http://${API_HOST}/x",
        environ={"API_HOST": "internal-host.example.org"},
        allow_hosts=["api.example.com"],
    )
    assert outcome.error == "host not allowed: *** is not in settings.http.allow_hosts"
    bad_port = attempt(
        tmp_path, "http://h.example.com:${PORT_TOKEN}/x", environ={"PORT_TOKEN": "tok-8a9b"}
    )
    assert bad_port.error.startswith("invalid URL http://h.example.com:***/x: ")
    assert "tok-8a9b" not in bad_port.error


def test_url_credentials_become_basic_auth(tmp_path: Path, server: Server) -> None:
    attempt(tmp_path, server.url("/echo").replace("://", "://al%40ice:p%3Ass@"))
    assert server.seen[0].headers["Authorization"] == "Basic YWxAaWNlOnA6c3M="


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Server]:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = start(tls=context)
    yield srv
    srv.close()
