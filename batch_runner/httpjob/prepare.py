"""From a run spec to the exact request to send, and what may be shown of it (no network).

The spec holds the request as the user wrote it: ``${VAR}`` references unresolved, credentials
perhaps in the URL. ``prepare`` resolves the references, merges ``params`` into the query
string, moves URL credentials into an ``Authorization: Basic`` header (as curl does), encodes
the body and checks the host against ``allow_hosts``: all before any connection is made. The
``shown_*`` fields keep the written form, masked, for the run log and the summary.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from batch_runner import __version__
from batch_runner.httpjob.masking import MASK, mask_headers, mask_names, safe_url
from batch_runner.net import envrefs, hosts

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestProblem(ValueError):
    """The request cannot be sent as written; ``str()`` is the one-line reason."""


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One request, ready for the transport, and its masked, written form for people."""

    method: str
    url: str  # resolved, params merged, no credentials
    headers: dict[str, str]  # resolved, as sent (besides what http.client adds)
    data: bytes | None
    host: str
    port: int
    shown_url: str  # as written, credentials masked
    shown_headers: dict[str, str]  # as written plus the ones we add, masked
    shown_body: str | None
    secrets: list[str] = field(default_factory=list)  # resolved values to scrub from responses


def prepare(
    http: Mapping[str, Any],
    environ: Mapping[str, str],
    allow_hosts: tuple[str, ...],
    mask: tuple[str, ...],
) -> PreparedRequest:
    """The request of ``http`` (a spec's ``"http"`` object); RequestProblem if it cannot go."""
    method = str(http.get("method") or "GET").upper()
    if method not in HTTP_METHODS:
        raise RequestProblem(
            f"unsupported HTTP method {method}; use one of {', '.join(HTTP_METHODS)}"
        )
    url, headers, body = _resolve(http, environ)
    url, host, port, credentials = _split_url(url, allow_hosts)
    added = _added_headers(headers, body, credentials)
    headers.update(added)
    _check_header_values(headers)
    shown_headers = mask_headers({**(http.get("headers") or {}), **added}, mask)
    if "Authorization" in added:  # made from URL credentials: secret whatever the mask says
        shown_headers["Authorization"] = MASK
    return PreparedRequest(
        method=method,
        url=url,
        headers=headers,
        data=_encode(body),
        host=host,
        port=port,
        shown_url=safe_url(
            _with_params(str(http.get("url") or ""), http.get("params") or {}, keep="${}")
        ),
        shown_headers=shown_headers,
        shown_body=_shown_body(http.get("body")),
        secrets=_secrets(headers, added, credentials, mask),
    )


def _resolve(
    http: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[str, dict[str, str], Any]:
    """URL (params merged), headers and body with every ``${VAR}`` replaced."""
    try:
        params = {k: envrefs.expand(str(v), environ) for k, v in (http.get("params") or {}).items()}
        url = _with_params(envrefs.expand(str(http.get("url") or ""), environ), params)
        headers = {
            k: envrefs.expand(str(v), environ) for k, v in (http.get("headers") or {}).items()
        }
        return url, headers, envrefs.expand_json(http.get("body"), environ)
    except envrefs.MissingVariable as exc:
        raise RequestProblem(str(exc)) from None


def _secrets(
    headers: Mapping[str, str],
    added: Mapping[str, str],
    credentials: tuple[str, str] | None,
    mask: tuple[str, ...],
) -> list[str]:
    """The values sent that must not come back in what is kept of the response."""
    masked = mask_names(mask)
    secrets = [value for name, value in headers.items() if name.lower() in masked]
    if credentials:  # URL credentials are secret whatever mask_headers says
        secrets += [credentials[1], added.get("Authorization", "")]
    return [secret for secret in secrets if secret]


def _with_params(url: str, params: Mapping[str, str], keep: str = "") -> str:
    if not params:
        return url
    query = urlencode(params, safe=keep)
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{query}"
    return f"{joined}#{fragment}" if fragment else joined


def _split_url(
    url: str, allow_hosts: tuple[str, ...]
) -> tuple[str, str, int, tuple[str, str] | None]:
    """The URL without credentials, its host and port, and the credentials if it had any."""
    host = host_of(url)
    if not hosts.host_allowed(host, allow_hosts):
        raise RequestProblem(hosts.refusal(host))
    parts = urlsplit(url)
    port = parts.port
    credentials = None
    if parts.username is not None or parts.password is not None:
        credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
    netloc = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return clean, host, port or _DEFAULT_PORTS[parts.scheme], credentials


def host_of(url: str) -> str:
    """The host of an http(s) URL; RequestProblem if it is not one (or its port is bad)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise RequestProblem(f"invalid URL {safe_url(url)}: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise RequestProblem(
            f"invalid URL {safe_url(url)}: expected http:// or https:// and a host"
        )
    return parts.hostname


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def _added_headers(
    headers: Mapping[str, str], body: Any, credentials: tuple[str, str] | None
) -> dict[str, str]:
    """The headers we add when the user did not set them."""
    added = {}
    if not _has(headers, "User-Agent"):
        added["User-Agent"] = f"batch_runner/{__version__}"
    if body is not None and not _has(headers, "Content-Type"):
        text = isinstance(body, str)
        added["Content-Type"] = "text/plain; charset=utf-8" if text else "application/json"
    if credentials is not None and not _has(headers, "Authorization"):
        token = base64.b64encode(":".join(credentials).encode()).decode()
        added["Authorization"] = f"Basic {token}"
    return added


def _check_header_values(headers: Mapping[str, str]) -> None:
    # A variable's value could smuggle a second header in; http.client would refuse it too,
    # but this names the header without showing its value.
    for name, value in headers.items():
        if "\r" in value or "\n" in value or not name or any(c in name for c in ":\r\n "):
            raise RequestProblem(f"invalid header {name!r}: a line break or a bad name")


def _encode(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False).encode()


def _shown_body(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    return json.dumps(body, ensure_ascii=False)
