"""From a run spec to the exact request to send, and what may be shown of it (no network).

The spec holds the request as the user wrote it: ``${VAR}`` references unresolved, credentials
perhaps in the URL. ``prepare`` resolves the references, merges ``params`` into the query
string, moves URL credentials into an ``Authorization: Basic`` header (as curl does), encodes
the body and checks the host against ``allow_hosts``: all before any connection is made. The
host is parsed once (``net.hosts``) and the URL sent names it in that form. The
``shown_*`` fields keep the written form, masked, for the run log and the summary; ``secrets``
lists what ``net.secrets`` counts as secret, for scrubbing whatever comes back.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from batch_runner.net import envrefs, hosts
from batch_runner.net.secrets import MASK, Scrubber, mask_headers, masked_values, safe_url
from batch_runner.net.urls import DEFAULT_PORTS, HTTP_METHODS, InvalidUrl, checked_host, with_host
from batch_runner.version import __version__


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
    secrets: list[str] = field(default_factory=list)  # values to scrub from all that is kept


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
    expander = envrefs.Expander(environ)
    url, headers, body = _resolve(http, expander)
    try:
        url, host, port, credentials = _split_url(url, allow_hosts)
    except RequestProblem as problem:  # it names the URL or its host, perhaps from ${VAR}
        raise RequestProblem(Scrubber(expander.used).text(str(problem))) from None
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
        secrets=[*expander.used, *_secrets(headers, added, credentials, mask)],
    )


def _resolve(
    http: Mapping[str, Any], expander: envrefs.Expander
) -> tuple[str, dict[str, str], Any]:
    """URL (params merged), headers and body with every ``${VAR}`` replaced."""
    try:
        url = expander.text(str(http.get("url") or ""), "the URL")
        params = {
            k: expander.text(str(v), f"the parameter {k}")
            for k, v in (http.get("params") or {}).items()
        }
        headers = {
            k: expander.text(str(v), f"the header {k}")
            for k, v in (http.get("headers") or {}).items()
        }
        return _with_params(url, params), headers, expander.json(http.get("body"), "the body")
    except envrefs.MissingVariable as exc:
        raise RequestProblem(str(exc)) from None


def _secrets(
    headers: Mapping[str, str],
    added: Mapping[str, str],
    credentials: tuple[str, str] | None,
    mask: tuple[str, ...],
) -> list[str]:
    """The values of masked headers and URL credentials: secrets besides ``${VAR}`` values."""
    secrets = masked_values(headers, mask)
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
    """The URL without credentials, its host and port, and the credentials if it had any.

    The URL returned names its host as it was checked (``checked_host``), so the connection
    goes to that very host.
    """
    try:
        host = checked_host(url)
    except InvalidUrl as exc:
        raise RequestProblem(str(exc)) from None
    if not hosts.host_allowed(host, allow_hosts):
        raise RequestProblem(hosts.refusal(host))
    parts = urlsplit(url)
    credentials = None
    if parts.username is not None or parts.password is not None:
        credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return with_host(clean, host), host, parts.port or DEFAULT_PORTS[parts.scheme], credentials


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
