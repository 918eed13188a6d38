"""Second outside review of issue 21 (after 609a7a9): ``serve --trusted-proxy ADDR``.

uvicorn turns every value it cannot parse as an address or a network into a literal that never
equals a client's address: a typo, a host name, or the comma-separated list uvicorn's own
``--forwarded-allow-ips`` takes, each silently trusts nobody. The audit then says every change
came from the proxy, and behind a TLS proxy the session cookie loses its ``Secure`` flag
(``pages._over_https`` believes X-Forwarded-Proto only from a trusted proxy), with no word
from ``serve``. Checked and found sound: an IPv6 address (``::1``), a CIDR network
(``127.0.0.0/8``) and ``*`` are believed as documented."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from webserver import _command, _env, _free_port

SPOOFED = "203.0.113.77"
# serve imports FastAPI and uvicorn before it looks at its arguments' values.
START_SECONDS = 30.0


def _serve_until_it_answers_or_ends(web: Any, value: str) -> tuple[int | None, str]:
    """``serve --trusted-proxy VALUE``: (its exit status, its output) if it ends; (None,
    output) once it says it is serving (then stopped)."""
    port = _free_port()
    command = [*_command(web.config_path, web.root), "serve", "--bind", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*command, "--trusted-proxy", value],
        env=_env(),
        cwd=web.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = ""
    deadline = time.monotonic() + START_SECONDS
    try:
        for line in proc.stdout:  # ends when the process does
            output += line
            if "serving on" in line or time.monotonic() > deadline:
                return None, output
        return proc.wait(10), output
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def test_a_trusted_proxy_that_is_no_address_is_one_sentence(serve_web: Any) -> None:
    web = serve_web()
    web.stop()  # its config and root only
    for value in ("10.0.0.256", "localhost", "proxy.example.com"):
        code, output = _serve_until_it_answers_or_ends(web, value)
        assert code == 2, f"--trusted-proxy {value!r} was taken (it trusts nobody): {output}"
        lines = output.strip().splitlines()
        assert len(lines) == 1 and value in lines[0], output


def test_a_comma_separated_list_of_proxies_is_believed(serve_web: Any) -> None:
    """uvicorn's own --forwarded-allow-ips is written 10.0.0.9,127.0.0.1."""
    web = serve_web(args=("--trusted-proxy", "10.0.0.9,127.0.0.1"))
    operator = web.client(web.token("operate", "ops"), headers={"X-Forwarded-For": SPOOFED})
    assert operator.post("/api/v1/queue/pause").status_code == 200
    audited = json.loads(web.cli("audit", "--json").stdout)
    (entry,) = [e for e in audited if e["action"] == "pause"]
    assert entry["remote"] == SPOOFED, f"the listed proxy was not believed: {entry}"
