"""Hosts as they are checked and connected to, and ``settings.http.allow_hosts`` (SPEC 11).

A URL's host is parsed once, by ``parse_host``, into the one form that is both compared to
the patterns and handed to the connection: an IP address in its standard form, or a DNS name
in lower case (IDNA for non-ASCII) without its final dot. What the check and the connection
could read differently is refused rather than guessed at: a ``%`` (urllib decodes
``evil.com%23.allowed.example`` into ``evil.com#.allowed.example`` before connecting, and an
IPv6 zone hides a name the same way), characters no DNS name has, and the IPv4 forms that
``ipaddress`` refuses but the resolver accepts (``127.1``, ``0x7f.0.0.1``, ``2130706433``).

A pattern is a host, matched exactly (an IPv6 address may be written in brackets), or
``*.example.com``, which matches any DNS name below ``example.com`` (not ``example.com``
itself, as in TLS certificates) and never an IP address. No patterns means any host. Ports
are not part of a pattern.
"""

from __future__ import annotations

from collections.abc import Sequence

_LABEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class BadHost(ValueError):
    """Neither a DNS name nor an IP address in a form that reads the same everywhere."""


def parse_host(host: str) -> str:
    """The one form of ``host`` (a URL's host, without brackets) that is checked and connected
    to; BadHost if there is none. Parsing the result again gives it back unchanged."""
    import ipaddress

    if "%" in host:
        raise BadHost('the host may not hold "%" (percent-encoding or an IPv6 zone)')
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = _dns_name(host)
    _refuse_other_ipv4_forms(name)
    return name


def _dns_name(host: str) -> str:
    name = host[:-1] if host.endswith(".") else host
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise BadHost(f'the host "{host}" is not a valid international domain name') from None
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(0 < len(part) <= 63 and set(part) <= _LABEL for part in labels):
        raise BadHost(f'the host "{host}" is neither a DNS name nor an IP address')
    return name


def _refuse_other_ipv4_forms(name: str) -> None:
    # The resolver reads these as addresses (inet_aton), which no pattern of names may match.
    import socket

    try:
        packed = socket.inet_aton(name)
    except OSError:
        return
    raise BadHost(
        f'the host "{name}" is an IPv4 address in a non-standard form; '
        f"write it as {socket.inet_ntoa(packed)}"
    )


def parse_pattern(pattern: str) -> tuple[str, bool]:
    """(the host or the domain below which, whether it is a wildcard); BadHost if it is not
    a host, an IPv6 address in brackets, or ``*.`` and a DNS name."""
    text = pattern.strip()
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    elif text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    host = parse_host(text)
    if wildcard and _is_ip(host):
        raise BadHost(f"a wildcard applies to DNS names, never to an IP address such as {host}")
    return host, wildcard


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` (a URL's host) matches one of ``patterns``; True when there are none.

    A host or a pattern that ``parse_host`` refuses matches nothing.
    """
    if not patterns:
        return True
    try:
        host = parse_host(host.strip("[]"))
    except BadHost:
        return False
    is_name = not _is_ip(host)
    for pattern in patterns:
        try:
            allowed, wildcard = parse_pattern(pattern)
        except BadHost:
            continue
        matched = (is_name and host.endswith("." + allowed)) if wildcard else host == allowed
        if matched:
            return True
    return False


def refusal(host: str) -> str:
    """The one-line reason a call to ``host`` is refused."""
    try:
        host = parse_host(host.strip("[]"))
    except BadHost:
        pass  # named as it was written
    return f"host not allowed: {host} is not in settings.http.allow_hosts"
