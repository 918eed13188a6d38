"""``queue add --http``: the options of an ad-hoc HTTP call and the run spec they make.

    batch_runner queue add --http POST https://api.example.com/jobs \\
        --header 'Authorization: Bearer ${API_TOKEN}' --param dry_run=1 \\
        --json-body --body '{"name": "nightly"}' --timeout 30

The spec has the shape of a config HTTP job's (``{"type": "http", "http": {method, url, headers,
params, body}}``); ``queue add`` sets its ``timeout``. ``${VAR}`` references are kept as written
and resolved when the run starts, in the environment of whoever runs it (single quotes keep the
shell from expanding them now, and keep the secret out of the state database).
"""

from __future__ import annotations

import argparse
import json

from batch_runner.cli.render import has_control
from batch_runner.errors import UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``queue add`` for an HTTP call (``--http`` and what goes with it)."""
    group = parser.add_argument_group("HTTP call (instead of a command)")
    group.add_argument(
        "--http",
        nargs=2,
        metavar=("METHOD", "URL"),
        help="make one HTTP request per attempt; 2xx is success",
    )
    group.add_argument(
        "--header",
        dest="http_headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    group.add_argument(
        "--param",
        dest="http_params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a query parameter (repeatable)",
    )
    group.add_argument(
        "--body", dest="http_body", metavar="TEXT", help="the request body, sent as it is"
    )
    group.add_argument(
        "--json-body",
        dest="http_json_body",
        action="store_true",
        help="--body is JSON: sent as JSON with Content-Type: application/json",
    )


def build_spec(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """The run spec (``{"type": "http", "http": {...}, "timeout": ...}``) for ``args``.

    UsageError (exit 2) for a bad method, URL, header, parameter or JSON body, and for a host
    that ``settings.http.allow_hosts`` does not allow (checked again when the run starts).
    """
    method, url = args.http
    http = {
        "method": _method(method),
        "url": _url(url, tuple(settings.http.allow_hosts)),
        "headers": _pairs(args.http_headers, ":", "--header", "'NAME: VALUE'"),
        "params": _pairs(args.http_params, "=", "--param", "NAME=VALUE"),
        "body": _body(args.http_body, args.http_json_body),
    }
    return {
        "type": "http",
        "command": None,
        "shell": "auto",
        "cwd": None,
        "env": {},
        "timeout": getattr(args, "timeout", None) or settings.default_timeout,
        "backoff": "exponential",
        "backoff_seconds": 30.0,
        "notify_after": None,
        "ping_url": None,
        "http": http,
    }


def _method(method: str) -> str:
    from batch_runner.net.urls import HTTP_METHODS

    if method.upper() not in HTTP_METHODS:
        raise UsageError(
            f"--http: {method!r} is not an HTTP method; use one of {', '.join(HTTP_METHODS)}"
        )
    return method.upper()


def _url(url: str, allow_hosts: tuple[str, ...]) -> str:
    from batch_runner.net import envrefs, hosts
    from batch_runner.net.secrets import safe_url
    from batch_runner.net.urls import InvalidUrl, checked_host, host_of

    try:
        host = host_of(url)
        # A host given by a ${VAR} is only known when the run starts; it is checked then.
        if envrefs.references(host):
            return url
        host = checked_host(url)  # a "%" in it is refused now, not when the run starts
    except InvalidUrl as exc:
        raise UsageError(f"--http: {exc}") from None
    if not hosts.host_allowed(host, allow_hosts):
        raise UsageError(f"--http {safe_url(url)}: {hosts.refusal(host)}")
    return url


def _pairs(items: list[str], separator: str, option: str, form: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, found, value = item.partition(separator)
        name = name.strip()
        if not found or not name or (separator == ":" and any(c in name for c in " \t")):
            raise UsageError(f"{option} {item!r}: expected {form}")
        if name.lower() in (key.lower() for key in pairs):
            raise UsageError(f"{option} {name!r} is given twice")
        if separator == ":":
            _check_header(name, value)
        pairs[name] = value.strip() if separator == ":" else value
    return pairs


def _check_header(name: str, value: str) -> None:
    # A line break would smuggle a second header in (the run would be refused when it starts:
    # better now); HTTP allows a tab in a value, no other control character anywhere. The
    # value is left out of the message: it may be a secret.
    if has_control(name) or has_control(value.replace("\t", " ")):
        raise UsageError(
            f"--header {name!r}: a header cannot hold a control character (a line break, an "
            "escape...)"
        )


def _body(text: str | None, as_json: bool) -> Any:
    if not as_json:
        return text
    if text is None:
        raise UsageError("--json-body needs --body JSON")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"--body is not valid JSON ({exc}); drop --json-body to send it as text"
        ) from None
