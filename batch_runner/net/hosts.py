"""``settings.http.allow_hosts``: which hosts an HTTP job may call (SPEC 11).

A pattern is a host name or an IP address, matched exactly and case-insensitively, or
``*.example.com``, which matches any name below ``example.com`` (not ``example.com`` itself,
as in TLS certificates). No patterns means any host. Ports are not part of a pattern.
"""

from __future__ import annotations

from collections.abc import Sequence


def normalize_host(host: str) -> str:
    """``Example.COM.`` -> ``example.com``, ``[::1]`` -> ``::1``: the form patterns compare to."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` (as in a URL) matches one of ``patterns``; True when there are none."""
    if not patterns:
        return True
    host = normalize_host(host)
    for pattern in map(normalize_host, patterns):
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def refusal(host: str) -> str:
    """The one-line reason a call to ``host`` is refused."""
    return f"host not allowed: {normalize_host(host)} is not in settings.http.allow_hosts"
