"""The ``webhook`` notifier: a JSON POST of the notice; chat webhooks display its ``text``."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from batch_runner import __version__
from batch_runner.net.secrets import expand_env, is_secret_header, redact
from batch_runner.notify import NotifierError, network_reason

# Enough of an error response to explain it (Slack answers "invalid_payload", for one).
ERROR_BODY_CHARS = 200


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the secret headers to wherever it points: treat it as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def send(notifier: Mapping[str, Any], notice: dict[str, Any]) -> None:
    """POST the notice; raise NotifierError (with secrets masked) unless the answer is 2xx."""
    url, secrets = expand_env(notifier["url"], "the webhook URL")
    headers = {"Content-Type": "application/json", "User-Agent": f"batch_runner/{__version__}"}
    for name, raw in (notifier.get("headers") or {}).items():
        value, used = expand_env(raw, f"the webhook header {name}")
        headers[name] = value
        secrets += used
        if is_secret_header(name):
            secrets.append(value)
    request = urllib.request.Request(
        url, data=json.dumps(notice).encode(), headers=headers, method="POST"
    )
    try:
        _post(request, float(notifier.get("timeout", 10)))
    except NotifierError as exc:
        raise NotifierError(redact(str(exc), secrets)) from None


def _post(request: urllib.request.Request, timeout: float) -> None:
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(ERROR_BODY_CHARS)
    except urllib.error.HTTPError as exc:
        hint = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
        raise NotifierError(f"HTTP {exc.code} {exc.reason}{hint}{_body_of(exc)}") from None
    except urllib.error.URLError as exc:
        raise NotifierError(network_reason(exc.reason, timeout)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise NotifierError(network_reason(exc, timeout)) from None


def _body_of(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(ERROR_BODY_CHARS).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return ""
    text = " ".join(text.split())
    return f": {text}" if text else ""
