"""What an HTTP attempt leaves behind: record fields, a summary line, the run log (SPEC 7, 11).

Everything here is built from the masked, written form of the request and from a response
scrubbed of the secrets that were sent, so nothing secret reaches a record or a log.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from batch_runner.execution.capture import RunLog
from batch_runner.httpjob.prepare import PreparedRequest
from batch_runner.httpjob.transport import Response
from batch_runner.net.secrets import Scrubber, mask_headers

# How much of an error response's body follows the reason in ``error``, like a stderr tail.
ERROR_BODY_CHARS = 500
_JSON_TYPE = re.compile(r"^application/([\w.+-]*\+)?json$")
_CHARSET = re.compile(r";\s*charset=\"?([\w.:-]+)", re.IGNORECASE)


def status_line(response: Response) -> str:
    """``HTTP 500 Internal Server Error``; the standard phrase when the server sent none."""
    reason = response.reason.strip()
    if not reason:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
    return f"HTTP {response.status} {reason}".rstrip()


class ResponseView:
    """A response as it may be kept: headers masked, body decoded, secrets scrubbed.

    ``url`` is where it came from after redirects, scrubbed too: it is the resolved URL.
    """

    def __init__(self, response: Response, mask: tuple[str, ...], scrubber: Scrubber) -> None:
        self.response = response
        self.url = scrubber.text(response.url)
        joined: dict[str, str] = {}
        for name, value in response.headers:  # repeated headers joined, as RFC 9110 allows
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self.headers = {k: scrubber.text(v) for k, v in mask_headers(joined, mask).items()}
        self.content_type = joined.get("content-type", "").split(";")[0].strip().lower()
        self.text = scrubber.text(_decode(response.body, joined.get("content-type", "")))
        self.body = self._parsed(scrubber)

    def _parsed(self, scrubber: Scrubber) -> Any:
        """The body as JSON when it says it is JSON and is whole; else as text."""
        if self.response.truncated or not _JSON_TYPE.match(self.content_type):
            return self.text
        try:
            return scrubber.json(json.loads(self.response.body))
        except ValueError:
            return self.text

    def fields(self) -> dict[str, Any]:
        return {
            "response_status": self.response.status,
            "response_headers": self.headers,
            "response_body": self.body,
        }


def empty_fields() -> dict[str, Any]:
    """The record fields of an attempt that got no response."""
    return {"response_status": None, "response_headers": None, "response_body": None}


def _decode(body: bytes, content_type: str) -> str:
    match = _CHARSET.search(content_type)
    try:
        return body.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def summary(request: PreparedRequest, view: ResponseView | None, failure: str | None) -> str:
    """The ``output`` of an attempt: one line saying what was asked and what came back."""
    asked = f"{request.method} {request.shown_url}"
    if view is None:
        return f"{asked} -> {failure}"
    response = view.response
    size = f"{len(response.body)} bytes"
    if response.truncated:
        size += f" (cut at {len(response.body)}: the server sent more)"
    kind = f" of {view.content_type}" if view.content_type else ""
    moved = ""
    if response.redirects:
        hops = "redirect" if response.redirects == 1 else "redirects"
        moved = f" after {response.redirects} {hops} to {view.url}"
    return f"{asked} -> {status_line(response)}{moved}: {size}{kind}"


def error_text(view: ResponseView) -> str | None:
    """``error`` for a response: None for 2xx; else the status line and the body's start."""
    if 200 <= view.response.status < 300:
        return None
    head = view.text.strip()[:ERROR_BODY_CHARS]
    return f"{status_line(view.response)}\n{head}" if head else status_line(view.response)


def write_run_log(
    path: str,
    max_bytes: int,
    request: PreparedRequest | None,
    written: str,
    view: ResponseView | None,
    failure: str | None,
) -> bool:
    """The request and the response (or the failure) in the run log; True if it was cut."""
    run_log = RunLog(path, max_bytes)
    try:
        run_log.write(_request_text(request, written).encode())
        if view is not None:
            run_log.write(_response_text(view).encode())
        if failure is not None:
            run_log.write(f"! {failure}\n".encode())
    finally:
        run_log.close()
    return run_log.cut > 0


def _request_text(request: PreparedRequest | None, written: str) -> str:
    if request is None:  # it could not even be prepared
        return f"> {written}\n"
    lines = [f"> {request.method} {request.shown_url}"]
    lines += [f"> {name}: {value}" for name, value in request.shown_headers.items()]
    lines.append(">")
    if request.shown_body is not None:
        lines.append(request.shown_body)
    return "\n".join(lines) + "\n\n"


def _response_text(view: ResponseView) -> str:
    response = view.response
    lines = [f"< {status_line(response)}"]
    if response.redirects:
        lines[0] += f" (from {view.url} after {response.redirects} redirects)"
    lines += [f"< {name}: {value}" for name, value in view.headers.items()]
    lines += ["<", view.text]
    if response.truncated:
        lines.append(f"[batch_runner: response body cut at {len(response.body)} bytes]")
    return "\n".join(lines) + "\n"
