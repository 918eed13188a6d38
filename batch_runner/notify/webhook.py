"""The ``webhook`` notifier: a JSON POST of the notice; chat webhooks display its ``text``.

``${NAME}`` in the URL and header values is expanded as in HTTP jobs (``net.envrefs``), and the
same secret policy applies (``net.secrets``): every expanded value, the values of headers named
in ``settings.http.mask_headers`` and URL credentials are scrubbed from the failure reason.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from batch_runner.net import envrefs
from batch_runner.net.reasons import network_reason
from batch_runner.net.secrets import DEFAULT_MASK_HEADERS, Scrubber, masked_values, url_password
from batch_runner.net.urls import endpoint
from batch_runner.notify import NotifierError
from batch_runner.version import __version__

# Enough of an error response to explain it (Slack answers "invalid_payload", for one).
ERROR_BODY_CHARS = 200


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the secret headers to wherever it points: treat it as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def send(
    notifier: Mapping[str, Any],
    notice: dict[str, Any],
    mask: Sequence[str] = DEFAULT_MASK_HEADERS,
) -> None:
    """POST the notice; raise NotifierError (with secrets masked) unless the answer is 2xx.

    ``mask`` is ``settings.http.mask_headers``: the headers whose values are secret.
    """
    expander = envrefs.Expander(os.environ)
    headers = {"Content-Type": "application/json", "User-Agent": f"batch_runner/{__version__}"}
    try:
        url = expander.text(notifier["url"], "the webhook URL")
        for name, raw in (notifier.get("headers") or {}).items():
            headers[name] = expander.text(raw, f"the webhook header {name}")
    except envrefs.MissingVariable as exc:
        raise NotifierError(str(exc)) from None
    scrubber = Scrubber([*expander.used, *masked_values(headers, mask), *url_password(url)])
    try:
        request = urllib.request.Request(
            url, data=json.dumps(notice).encode(), headers=headers, method="POST"
        )
        _post(request, url, float(notifier.get("timeout", 10)))
    except Exception as exc:  # whatever it says may quote the URL or what the server echoed
        text = str(exc) if isinstance(exc, NotifierError) else f"{type(exc).__name__}: {exc}"
        raise NotifierError(scrubber.text(text)) from None


def _post(request: urllib.request.Request, url: str, timeout: float) -> None:
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(ERROR_BODY_CHARS)
    except urllib.error.HTTPError as exc:
        hint = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
        raise NotifierError(f"HTTP {exc.code} {exc.reason}{hint}{_body_of(exc)}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise NotifierError(network_reason(exc, *endpoint(url), timeout)) from None


def _body_of(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(ERROR_BODY_CHARS).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return ""
    text = " ".join(text.split())
    return f": {text}" if text else ""
