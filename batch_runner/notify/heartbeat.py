"""Heartbeats: a run's ``ping_url`` called in the healthchecks.io convention (SPEC 8).

``<url>/start`` when an attempt starts, ``<url>`` when the run succeeds, ``<url>/fail`` when it
fails. A ping that fails or hangs is logged and forgotten: it never changes a run's outcome.
The reason is worded by ``net.reasons``, as for every outbound call, and shows no credentials.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from batch_runner.logs import get_logger
from batch_runner.net.reasons import network_reason
from batch_runner.net.secrets import Scrubber, describe_url, url_password
from batch_runner.net.urls import endpoint
from batch_runner.notify import Bounded, NotifierError
from batch_runner.version import __version__

log = get_logger("batch_runner")

PING_TIMEOUT = 10.0
Signal = Literal["start", "success", "fail"]


def signal_url(url: str, signal: Signal) -> str:
    """``url`` with ``/start`` or ``/fail`` appended to its path (the query string is kept)."""
    if signal == "success":
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + signal))


def ping(url: str, signal: Signal, *, timeout: float | None = None) -> bool:
    """Call the ping URL for ``signal``; False (and a warning in the log) if it failed."""
    timeout = PING_TIMEOUT if timeout is None else timeout
    target = signal_url(url, signal)
    worker = Bounded(lambda: _get(target, timeout), timeout)
    worker.start()
    reason = worker.outcome(margin=0.2)
    if reason is None:
        log.debug("heartbeat %s: %s ok", signal, describe_url(url))
        return True
    reason = Scrubber(url_password(url)).text(reason)
    log.warning("heartbeat %s to %s failed: %s", signal, describe_url(url), reason)
    return False


def _get(url: str, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": f"batch_runner/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)  # healthchecks.io answers "OK"; nothing more is wanted
    except urllib.error.HTTPError as exc:
        raise NotifierError(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise NotifierError(network_reason(exc, *endpoint(url), timeout)) from None
