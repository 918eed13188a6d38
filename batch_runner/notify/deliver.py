"""Sending one notice through every configured notifier, each bounded by its own timeout.

The notifiers run side by side in daemon threads, so a hanging one delays the caller by its own
timeout at most, never by the sum of all of them; a failure is a result, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batch_runner.logs import get_logger
from batch_runner.net.secrets import DEFAULT_MASK_HEADERS, describe_url
from batch_runner.notify import Bounded, NotifierError

log = get_logger("batch_runner")

DEFAULT_TIMEOUTS = {"command": 60.0, "webhook": 10.0, "email": 30.0}


@dataclass(frozen=True, slots=True)
class Delivery:
    """How sending a notice through one notifier went; ``reason`` is None when it worked."""

    label: str
    ok: bool
    reason: str | None = None


def describe(notifier: Mapping[str, Any]) -> str:
    """How a notifier is named in output and logs (never with a secret in it)."""
    kind = notifier.get("type")
    if kind == "webhook":
        return f"webhook {describe_url(notifier['url'])}"
    if kind == "email":
        return f"email {notifier['smtp_host']}:{notifier.get('smtp_port', 25)}"
    command = notifier.get("command")
    shown = " ".join(command) if isinstance(command, list) else str(command)
    return f"command {shown if len(shown) <= 60 else shown[:59] + '…'}"


def labels(notifiers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each notifier's name; two that read the same get their place in the list (``#2``)."""
    names = [describe(notifier) for notifier in notifiers]
    return [
        f"{name} #{index}" if names.count(name) > 1 else name for index, name in enumerate(names, 1)
    ]


def deliver_all(
    notifiers: Iterable[Mapping[str, Any]],
    notice: dict[str, Any],
    *,
    cwd: str,
    mask: Sequence[str] = DEFAULT_MASK_HEADERS,
    log_results: bool = True,
) -> list[Delivery]:
    """Send ``notice`` through each notifier at once; wait for each up to its timeout.

    ``mask`` is ``settings.http.mask_headers``: a webhook's headers of those names are secret,
    as an HTTP job's are.
    """
    notifiers = list(notifiers)
    workers = []
    for notifier, label in zip(notifiers, labels(notifiers), strict=True):
        timeout = float(
            notifier.get("timeout") or DEFAULT_TIMEOUTS.get(str(notifier.get("type")), 30)
        )
        worker = Bounded(_sender(notifier, notice, cwd, mask), timeout)
        worker.start()
        workers.append((label, worker))
    deliveries = []
    for label, worker in workers:
        reason = worker.outcome()
        deliveries.append(Delivery(label, reason is None, reason))
        if log_results:
            _log_delivery(deliveries[-1], notice)
    return deliveries


def _log_delivery(delivery: Delivery, notice: dict[str, Any]) -> None:
    if delivery.ok:
        log.info("%s notice sent through %s", notice["kind"], delivery.label)
    else:
        log.error(
            "notifier %s failed to send the %s notice: %s",
            delivery.label,
            notice["kind"],
            delivery.reason,
        )


def _sender(
    notifier: Mapping[str, Any], notice: dict[str, Any], cwd: str, mask: Sequence[str]
) -> Callable[[], None]:
    """The call that sends through ``notifier``; its module is imported only now."""
    kind = notifier.get("type")

    def send() -> None:
        if kind == "command":
            from batch_runner.notify import command

            command.send(notifier, notice, cwd=cwd)
        elif kind == "webhook":
            from batch_runner.notify import webhook

            webhook.send(notifier, notice, mask)
        elif kind == "email":
            from batch_runner.notify import email

            email.send(notifier, notice)
        else:
            raise NotifierError(f"unknown notifier type {kind!r}")

    return send
