"""Review of issue 21: a client cannot choose the address its changes are audited from.

``serve`` bound to loopback with no proxy in front trusts ``X-Forwarded-For`` from every
client of 127.0.0.1 — which is every client it has, and any local account besides the
proxy's: the audit's "from where" is what the caller says it is."""

from __future__ import annotations

import json

SPOOFED = "203.0.113.77"


def test_a_direct_client_cannot_forge_its_audited_address(serve_web):
    web = serve_web()
    operator = web.client(web.token("operate", "ops"), headers={"X-Forwarded-For": SPOOFED})
    assert operator.post("/api/v1/queue/pause").status_code == 200
    listed = web.cli("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [e for e in json.loads(listed.stdout) if e["action"] == "pause"]
    assert entry["remote"] != SPOOFED, (
        "the audit says the change came from the address the client put in X-Forwarded-For"
    )
    assert "127.0.0.1" in (entry["remote"] or "")


def test_a_trusted_proxys_forwarded_address_is_audited(serve_web):
    web = serve_web(args=("--trusted-proxy", "127.0.0.1"))
    operator = web.client(web.token("operate", "ops"), headers={"X-Forwarded-For": SPOOFED})
    assert operator.post("/api/v1/queue/pause").status_code == 200
    (entry,) = [e for e in json.loads(web.cli("audit", "--json").stdout) if e["action"] == "pause"]
    assert entry["remote"] == SPOOFED
