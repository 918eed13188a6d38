"""What every outbound call knows of URLs and methods: the config, the queue and the jobs agree.

``HTTP_METHODS``, ``host_of`` and ``checked_host`` are used by config validation, ``queue add
--http`` and the HTTP attempt, so a URL the config accepts is one the attempt can send.
``checked_host`` and ``with_host`` are how a host is checked and then connected to as one
value (``net.hosts``). Imports are deferred: the config model imports ``HTTP_METHODS`` and
must not pay for urllib to get a tuple.
"""

from __future__ import annotations

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidUrl(ValueError):
    """Not an http(s) URL with a host and a numeric port; ``str()`` is the one-line reason."""


def host_of(url: str) -> str:
    """The host of an http(s) URL; InvalidUrl if it is not one (or its port is bad)."""
    from urllib.parse import urlsplit

    from batch_runner.net.secrets import safe_url

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidUrl(f"invalid URL {safe_url(url)}: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidUrl(f"invalid URL {safe_url(url)}: expected http:// or https:// and a host")
    return parts.hostname


def checked_host(url: str) -> str:
    """The host of an http(s) URL in the one form that is checked and connected to
    (``net.hosts.parse_host``); InvalidUrl if there is none."""
    from batch_runner.net.hosts import BadHost, parse_host
    from batch_runner.net.secrets import safe_url

    host = host_of(url)
    try:
        return parse_host(host)
    except BadHost as exc:
        raise InvalidUrl(f"invalid URL {safe_url(url)}: {exc}") from None


def with_host(url: str, host: str) -> str:
    """``url`` with ``host`` (from ``checked_host``) as its host, its port kept, no credentials.

    urllib decodes the host it finds in a URL before connecting; written this way there is
    nothing left to decode, so it connects to ``host`` itself.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def endpoint(url: str) -> tuple[str, int | None]:
    """Host and port a URL leads to, for naming it in a reason; ``("?", None)`` if unparsable."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
    except ValueError:
        return "?", None
    try:
        return host, parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number, or out of range
        return host, None
