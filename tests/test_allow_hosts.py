"""``settings.http.allow_hosts``: the host checked is the host connected to, parsed once.

Against real HTTP servers on 127.0.0.1 and ::1 (``http_servers``). Name resolution is this
file's own small DNS, which records every name asked for: ``api.allowed.example`` is
127.0.0.1, the loopback names are themselves, nothing else resolves. So "asked nothing" means
no connection was even tried, and the names asked are what the connection went to.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, write_config
from http_servers import PROXY_VARIABLES, Handler, Server
from test_http_attempt import attempt

from batch_runner.httpjob.prepare import PreparedRequest
from batch_runner.httpjob.transport import Exchange, Failure
from batch_runner.net.hosts import host_allowed

ALLOW = ["*.allowed.example"]
NAMES = {"api.allowed.example": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1"}
# The two hosts of the report: the check saw them encoded, urllib connected to them decoded.
SMUGGLED = ["[::1%25.allowed.example]", "evil.com%23.allowed.example"]
NO_PERCENT = 'the host may not hold "%" (percent-encoding or an IPv6 zone)'


@pytest.fixture(autouse=True)
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name resolved during the test, in order."""
    real, names = socket.getaddrinfo, []

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(host)
        if host not in NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(NAMES[host], *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for name in (*PROXY_VARIABLES, "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return names


class _Ipv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


@pytest.fixture
def server6() -> Iterator[Server]:
    """The test HTTP server of ``http_servers``, on ::1."""
    httpd = _Ipv6Server(("::1", 0), Handler)
    state = Server(httpd)
    httpd.state = state  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    state.close()


def http_job(url: str) -> dict[str, Any]:
    return {
        "name": "api",
        "type": "http",
        "url": url,
        "schedule_type": "interval",
        "schedule_time": "3600",
    }


# --- the reported hosts are refused, everywhere ------------------------------------------------


@pytest.mark.parametrize("host", SMUGGLED)
def test_a_smuggled_host_does_not_match_a_wildcard(host: str) -> None:
    assert host_allowed(host.strip("[]"), ALLOW) is False


@pytest.mark.parametrize("host", SMUGGLED)
def test_validate_refuses_a_static_url_with_a_smuggled_host(project: Path, host: str) -> None:
    url = f"http://{host}/x"
    write_config(project, [http_job(url)], settings={"http": {"allow_hosts": ALLOW}})
    result = run_cli(project, "validate")
    assert result.returncode == 78, result.stdout
    assert f"jobs[0].url (line 6, column 14): invalid URL {url}: {NO_PERCENT}\n" in result.stderr


def test_validate_refuses_a_percent_in_a_host_without_allow_hosts_too(project: Path) -> None:
    write_config(project, [http_job("http://evil.com%23.allowed.example/x")])
    result = run_cli(project, "validate")
    assert result.returncode == 78 and NO_PERCENT in result.stderr


@pytest.mark.parametrize("host", SMUGGLED)
def test_a_smuggled_host_is_refused_at_run_time_before_any_connection(
    tmp_path: Path, server6: Server, asked: list[str], host: str
) -> None:
    url = f"http://{host}:{server6.port}/json"
    outcome = attempt(tmp_path, url, allow_hosts=ALLOW)
    assert (outcome.status, outcome.error) == ("error", f"invalid URL {url}: {NO_PERCENT}")
    assert asked == [] and server6.seen == []


@pytest.mark.parametrize("host", SMUGGLED)
def test_a_smuggled_host_from_a_variable_is_refused_at_run_time(
    tmp_path: Path, asked: list[str], host: str
) -> None:
    environ = {"TARGET": host}
    outcome = attempt(tmp_path, "http://${TARGET}/json", environ=environ, allow_hosts=ALLOW)
    assert (outcome.status, outcome.error) == (
        "error",
        f"invalid URL http://***/json: {NO_PERCENT}",
    )
    assert asked == []


def test_a_redirect_to_a_smuggled_host_is_refused(
    tmp_path: Path, asked: list[str], server: Server
) -> None:
    target = f"http://evil.com%2523.allowed.example:{server.port}/json"  # %25: the query's own
    outcome = attempt(
        tmp_path, server.url(f"/redirect?to={target}"), allow_hosts=[*ALLOW, "127.0.0.1"]
    )
    assert outcome.status == "error"
    assert outcome.error == (
        f"redirect refused: invalid URL {target.replace('%25', '%')}: {NO_PERCENT}"
    )
    assert asked == ["127.0.0.1"] and server.hits == {"/redirect": 1}


def test_queue_add_refuses_a_smuggled_host(project: Path) -> None:
    write_config(project, [], settings={"http": {"allow_hosts": ALLOW}})
    url = "http://evil.com%23.allowed.example/x"
    result = run_cli(project, "queue", "add", "--http", "GET", url)
    assert result.returncode == 2, result.stdout
    assert 'the host may not hold "%"' in result.stderr


def test_queue_add_refuses_a_percent_in_a_host_without_an_allow_list(project: Path) -> None:
    """Refused when queued, as validate refuses it, not only when the run starts."""
    write_config(project, [])
    result = run_cli(project, "queue", "add", "--http", "GET", "http://loc%61lhost/x")
    assert result.returncode == 2 and 'the host may not hold "%"' in result.stderr
    assert run_cli(project, "queue", "list", "--json").stdout.strip() == "[]"


# --- what is allowed still works, and goes where it was checked --------------------------------


def test_an_allowed_name_reaches_the_server_under_that_name(
    tmp_path: Path, asked: list[str], server: Server
) -> None:
    outcome = attempt(tmp_path, server.url("/echo", host="api.allowed.example"), allow_hosts=ALLOW)
    assert outcome.status == "success", outcome.error
    assert asked == ["api.allowed.example"]
    assert server.seen[0].headers["Host"] == f"api.allowed.example:{server.port}"


def test_the_name_connected_to_is_the_name_checked_however_written(
    tmp_path: Path, asked: list[str], server: Server
) -> None:
    url = server.url("/echo", host="API.Allowed.EXAMPLE.")
    outcome = attempt(tmp_path, url, allow_hosts=ALLOW)
    assert outcome.status == "success", outcome.error
    assert asked == ["api.allowed.example"]
    assert server.seen[0].headers["Host"] == f"api.allowed.example:{server.port}"


@pytest.mark.parametrize(
    ("written", "pattern"),
    [("[::1]", "::1"), ("[::1]", "[::1]"), ("[0:0:0:0:0:0:0:1]", "::1"), ("[::1]", "0::1")],
)
def test_an_allowed_ipv6_literal_works(
    tmp_path: Path, asked: list[str], server6: Server, written: str, pattern: str
) -> None:
    outcome = attempt(tmp_path, server6.url("/echo", host=written), allow_hosts=[pattern])
    assert outcome.status == "success", outcome.error
    assert asked == ["::1"]
    assert server6.seen[0].headers["Host"] == f"[::1]:{server6.port}"


def test_through_a_proxy_the_name_sent_is_the_name_checked(
    tmp_path: Path, asked: list[str], server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", server.url(""))
    outcome = attempt(tmp_path, "http://API.allowed.example./json", allow_hosts=ALLOW)
    assert outcome.status == "success", outcome.error
    assert asked == ["127.0.0.1"]  # only the proxy: it resolves the name itself
    [seen] = server.seen
    assert seen.headers["Host"] == "api.allowed.example" and seen.path == "/json"


def test_through_an_https_proxy_connect_names_the_checked_host(
    tmp_path: Path, asked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def proxy() -> None:  # reads the CONNECT line, then refuses to tunnel
            connection, _ = listener.accept()
            with connection:
                lines.append(connection.makefile("rb").readline())
                connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=proxy, daemon=True)
        thread.start()
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listener.getsockname()[1]}")
        outcome = attempt(tmp_path, "https://API.allowed.example./json", allow_hosts=ALLOW)
        thread.join(10)
    assert outcome.status == "error"
    assert [line.split()[:2] for line in lines] == [[b"CONNECT", b"api.allowed.example:443"]]
    assert asked == ["127.0.0.1"]


def test_the_transport_refuses_a_url_that_leads_elsewhere_than_the_checked_host(
    asked: list[str], server: Server
) -> None:
    """urllib decodes the host (``loc%61lhost`` is ``localhost``): the check must see that."""
    request = PreparedRequest(
        method="GET",
        url=f"http://loc%61lhost:{server.port}/json",
        headers={},
        data=None,
        host="127.0.0.1",
        port=server.port,
        shown_url="",
        shown_headers={},
        shown_body=None,
    )
    exchange = Exchange(request, allow_hosts=(), mask=(), max_body=1000, timeout=5)
    with pytest.raises(Failure, match=r"^refused: the connection would go to localhost, not to"):
        exchange.run()
    assert asked == [] and server.seen == []


# --- IP addresses and names are told apart ------------------------------------------------------


def test_a_wildcard_never_matches_an_ip_address(tmp_path: Path, server: Server) -> None:
    outcome = attempt(tmp_path, server.url("/json"), allow_hosts=["*.0.0.1"])
    assert outcome.status == "error" and server.seen == []


def test_an_ipv4_address_in_another_form_is_refused(
    tmp_path: Path, asked: list[str], server: Server
) -> None:
    url = server.url("/json", host="127.1")
    outcome = attempt(tmp_path, url, allow_hosts=["127.0.0.1"])
    assert outcome.error == (
        f'invalid URL {url}: the host "127.1" is an IPv4 address in a non-standard form; '
        "write it as 127.0.0.1"
    )
    assert asked == [] and server.seen == []


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (
            "*.127.0.0.1",
            "a wildcard applies to DNS names, never to an IP address such as 127.0.0.1",
        ),
        ("ex%61mple.com", NO_PERCENT),
        ("*", 'the host "*" is neither a DNS name nor an IP address'),
    ],
)
def test_validate_refuses_a_pattern_that_could_never_match(
    project: Path, pattern: str, reason: str
) -> None:
    write_config(project, [], settings={"http": {"allow_hosts": ["ok.example", pattern]}})
    result = run_cli(project, "validate")
    assert result.returncode == 78, result.stdout
    assert "settings.http.allow_hosts[1]" in result.stderr
    assert f'"{pattern}" is not a host pattern: {reason}' in result.stderr


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("API.Example.COM.", "api.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_parse_host_gives_one_form_that_parses_to_itself(host: str, canonical: str) -> None:
    from batch_runner.net.hosts import parse_host

    assert parse_host(host) == canonical
    assert parse_host(canonical) == canonical


@pytest.mark.parametrize(
    "host", ["a b.example", "a\\.example", "évil\u200b.example" * 20, "2130706433", "0x7f.1", ""]
)
def test_parse_host_refuses_what_could_be_read_two_ways(host: str) -> None:
    from batch_runner.net.hosts import BadHost, parse_host

    with pytest.raises(BadHost):
        parse_host(host)
