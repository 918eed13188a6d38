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
    from batch_runner.runs.request import http_spec

    return http_spec(**request_of(args), timeout=getattr(args, "timeout", None), settings=settings)


def request_of(args: argparse.Namespace) -> dict[str, Any]:
    """The call as ``args`` give it (method, url, headers, params, body), its headers and
    parameters parsed from their command-line form; ``runs.request`` checks the rest (the
    same checks as the service's)."""
    method, url = args.http
    return {
        "method": method,
        "url": url,
        "headers": _pairs(args.http_headers, ":", "--header", "'NAME: VALUE'"),
        "params": _pairs(args.http_params, "=", "--param", "NAME=VALUE"),
        "body": _body(args.http_body, args.http_json_body),
    }


def _pairs(items: list[str], separator: str, option: str, form: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, found, value = item.partition(separator)
        name = name.strip()
        if not found or not name or (separator == ":" and any(c in name for c in " \t")):
            raise UsageError(f"{option} {item!r}: expected {form}")
        if name.lower() in (key.lower() for key in pairs):
            raise UsageError(f"{option} {name!r} is given twice")
        pairs[name] = value.strip() if separator == ":" else value
    return pairs


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
