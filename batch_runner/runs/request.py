"""A new run as a caller asks for it (``queue add``, the service's ``POST /runs`` and seed 001's
``POST /jobs``): its options checked and its spec built by one path, so that a value the CLI
refuses is refused by the API in the same sentence.

Each check names the value as the caller wrote it: ``names`` maps a field to that name
(``CLI_NAMES``, the default, spells the options of ``queue add``; the API passes its own field
names). Every refusal is a ``UsageError`` (exit 2; 400 from the service).
"""

from __future__ import annotations

import time

from batch_runner.errors import UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

PRIORITY_LIMIT = 2**31 - 1
MAX_ATTEMPTS_LIMIT = 1000
# Beyond any sensible run and any clock: 10 years.
SECONDS_LIMIT = 10 * 365 * 86400
TAGS_LIMIT = 20
TAG_LENGTH_LIMIT = 64
BACKOFFS = ("exponential", "fixed")

CLI_NAMES: dict[str, str] = {
    "priority": "--priority",
    "max_attempts": "--max-attempts",
    "label": "--label",
    "timeout": "--timeout",
    "delay": "--delay",
    "at": "--at",
    "http": "--http",
    "header": "--header",
    "param": "--param",
    "tags": "--tag",
    "backoff": "--backoff",
    "backoff_seconds": "--backoff-seconds",
}

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: what the
# CLI's renderer writes as an escape, so what must not be in a name that every log line shows.
_CONTROL = frozenset((*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029))


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character or a Unicode line separator."""
    return any(ord(c) in _CONTROL for c in text)


def checked_priority(priority: int, names: Mapping[str, str] = CLI_NAMES) -> int:
    if abs(priority) > PRIORITY_LIMIT:
        raise UsageError(
            f"{names['priority']} must be between {-PRIORITY_LIMIT} and {PRIORITY_LIMIT}"
        )
    return priority


def checked_max_attempts(count: int, names: Mapping[str, str] = CLI_NAMES) -> int:
    if count < 1 or count > MAX_ATTEMPTS_LIMIT:
        raise UsageError(
            f"{names['max_attempts']} must be between 1 and {MAX_ATTEMPTS_LIMIT}, not {count}"
        )
    return count


def checked_lane(lanes: Iterable[str], lane: str) -> str:
    """``lane`` if it is configured (``settings.lanes``, or "default")."""
    if lane == "default" or lane in lanes:
        return lane  # the usual case, without loading the module that words a refusal
    from batch_runner.config.lanes import unknown_lane

    problem = unknown_lane(lanes, lane)
    if problem is not None:
        raise UsageError(problem)
    return lane


def checked_label(label: str | None, names: Mapping[str, str] = CLI_NAMES) -> str | None:
    # The label names the run in every log line (as a job's name does, which the config
    # checks): a line break in it would write a forged line, an escape would act on a terminal.
    if label is not None and has_control(label):
        raise UsageError(
            f"{names['label']} {label!r} holds a control character (a line break, a tab, an "
            "escape...); give a label of printable characters"
        )
    return label


def checked_seconds(
    value: float | None, field: str, names: Mapping[str, str] = CLI_NAMES, *, zero: bool = False
) -> float | None:
    """``value`` if it is a positive number of seconds (or 0 with ``zero``), below 10 years."""
    if value is None:
        return None
    if (value >= 0 if zero else value > 0) and value < SECONDS_LIMIT:  # NaN passes neither
        return value
    kind = "0 or more seconds" if zero else "a positive number of seconds"
    raise UsageError(f"{names[field]} must be {kind}, not {value:g}")


def checked_tags(tags: list[str] | None, names: Mapping[str, str] = CLI_NAMES) -> list[str] | None:
    """At most 20 tags, each 1 to 64 printable characters; a repeated tag is kept once."""
    if not tags:
        return None
    if len(tags) > TAGS_LIMIT:
        raise UsageError(f"{names['tags']}: at most {TAGS_LIMIT} tags, not {len(tags)}")
    for tag in tags:
        if not 0 < len(tag) <= TAG_LENGTH_LIMIT or has_control(tag):
            raise UsageError(
                f"{names['tags']} {tag!r}: a tag is 1 to {TAG_LENGTH_LIMIT} printable characters"
            )
    return list(dict.fromkeys(tags))


def parse_delay(text: str, names: Mapping[str, str] = CLI_NAMES) -> float:
    """Seconds from ``30``, ``90s``, ``15m``, ``2h``, ``1d``; 0 means now."""
    import re

    from batch_runner.schedules import ScheduleError, parse_schedule

    if re.fullmatch(r"0+(\.0*)?[smhd]?", text.strip(), re.IGNORECASE):
        return 0.0  # an interval cannot be 0, a delay can: a script may compute it
    try:
        return parse_schedule("interval", text).seconds  # type: ignore[union-attr]
    except ScheduleError:
        raise UsageError(
            f"{names['delay']} {text!r} is not a duration; use seconds or 90s, 15m, 2h, 1d"
        ) from None


def parse_at(text: str, now: float, names: Mapping[str, str] = CLI_NAMES) -> float:
    """``HH:MM[:SS]`` (the next such local time) or an ISO 8601 date-time (local time
    without an offset)."""
    from datetime import datetime, timedelta

    current = datetime.fromtimestamp(now).astimezone()
    try:
        if ":" in text and "-" not in text and "T" not in text:
            parts = [int(p) for p in text.split(":")]
            wanted = current.replace(
                hour=parts[0],
                minute=parts[1],
                second=parts[2] if len(parts) > 2 else 0,
                microsecond=0,
            )
            if wanted.timestamp() <= now:
                wanted += timedelta(days=1)
            return wanted.timestamp()
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.astimezone()).timestamp()
    except (ValueError, IndexError, OverflowError):
        raise UsageError(
            f"{names['at']} {text!r} is not a time; use HH:MM or YYYY-MM-DDTHH:MM"
        ) from None


def due_at(
    delay: str | float | None, at: str | None, names: Mapping[str, str] = CLI_NAMES
) -> float | None:
    """When the run may start: ``delay`` from now (seconds, or ``15m``), or ``at``; None
    means now."""
    if delay is not None and at is not None:
        raise UsageError(f"give {names['delay']} or {names['at']}, not both")
    now = time.time()
    if isinstance(delay, str):
        return now + parse_delay(delay, names)
    if delay is not None:
        if not 0 <= delay < SECONDS_LIMIT:  # NaN too
            raise UsageError(f"{names['delay']} must be 0 or more seconds, not {delay:g}")
        return now + delay
    if at is not None:
        return parse_at(at, now, names)
    return None


def checked_command(command: str | list[str], names: Mapping[str, str] = CLI_NAMES) -> list[str]:
    """The command's words (one word may hold shell syntax; several are argv)."""
    words = [command] if isinstance(command, str) else list(command)
    if not words or not words[0].strip():
        raise UsageError(f"{names.get('command', 'the command')} is empty")
    if any("\0" in word for word in words):
        raise UsageError(f"{names.get('command', 'the command')} holds a NUL character")
    return words


def with_backoff(
    spec: dict[str, Any],
    backoff: str | None,
    seconds: float | None,
    names: Mapping[str, str] = CLI_NAMES,
) -> dict[str, Any]:
    """``spec`` with its retries' backoff (SPEC 8) where given."""
    if backoff is not None:
        if backoff not in BACKOFFS:
            raise UsageError(
                f"{names['backoff']} must be one of {', '.join(BACKOFFS)}, not {backoff!r}"
            )
        spec["backoff"] = backoff
    if checked_seconds(seconds, "backoff_seconds", names, zero=True) is not None:
        spec["backoff_seconds"] = float(seconds)  # type: ignore[arg-type]
    return spec


def new_run(
    settings: Any,
    *,
    command: str | list[str] | None = None,
    http: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    priority: int = 0,
    delay: str | float | None = None,
    at: str | None = None,
    max_attempts: int = 1,
    label: str | None = None,
    lane: str = "default",
    tags: list[str] | None = None,
    backoff: str | None = None,
    backoff_seconds: float | None = None,
    names: Mapping[str, str] = CLI_NAMES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec of a command (``command``) or an HTTP call (``http``: method, url, headers,
    params, body) and the options of ``runs.queue.add`` for it, every value checked. The
    caller has made sure exactly one of ``command`` and ``http`` is given."""
    from batch_runner.runs.queue import adhoc_spec

    timeout = checked_seconds(timeout, "timeout", names) or settings.default_timeout
    options: dict[str, Any] = {
        "priority": checked_priority(priority, names),
        "max_attempts": checked_max_attempts(max_attempts, names),
        "lane": checked_lane(settings.lanes, lane),
    }
    if http is not None:
        spec = http_spec(**http, timeout=timeout, settings=settings, names=names)
    else:
        spec = adhoc_spec(checked_command(command or [], names), timeout)
    spec["timeout"] = timeout
    with_backoff(spec, backoff, backoff_seconds, names)
    options["due_at"] = due_at(delay, at, names)
    options["label"] = checked_label(label, names)
    options["tags"] = checked_tags(tags, names)
    return spec, options


def http_spec(
    method: str,
    url: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    body: Any,
    timeout: float | None,
    settings: Any,
    names: Mapping[str, str] = CLI_NAMES,
) -> dict[str, Any]:
    """The run spec of an HTTP call (``{"type": "http", "http": {...}, "timeout": ...}``),
    the shape of a config HTTP job's.

    UsageError for a bad method, URL, header or parameter, and for a host that
    ``settings.http.allow_hosts`` does not allow (checked again when the run starts). A body
    that is a string is sent as it is; any other JSON value as JSON.
    """
    http = {
        "method": _method(method, names),
        "url": _url(url, tuple(settings.http.allow_hosts), names),
        "headers": _headers(headers, names),
        "params": _params(params, names),
        "body": body,
    }
    return {
        "type": "http",
        "command": None,
        "shell": "auto",
        "cwd": None,
        "env": {},
        "timeout": timeout or settings.default_timeout,
        "backoff": "exponential",
        "backoff_seconds": 30.0,
        "notify_after": None,
        "ping_url": None,
        "http": http,
    }


def _method(method: str, names: Mapping[str, str]) -> str:
    from batch_runner.net.urls import HTTP_METHODS

    if method.upper() not in HTTP_METHODS:
        raise UsageError(
            f"{names['http']}: {method!r} is not an HTTP method; use one of "
            f"{', '.join(HTTP_METHODS)}"
        )
    return method.upper()


def _url(url: str, allow_hosts: tuple[str, ...], names: Mapping[str, str]) -> str:
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
        raise UsageError(f"{names['http']}: {exc}") from None
    if not hosts.host_allowed(host, allow_hosts):
        raise UsageError(f"{names['http']} {safe_url(url)}: {hosts.refusal(host)}")
    return url


def _headers(headers: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not name or any(c in name for c in " \t:"):
            raise UsageError(f"{names['header']} {name!r}: not a header name")
        # A line break would smuggle a second header in (the run would be refused when it
        # starts: better now); HTTP allows a tab in a value, no other control character
        # anywhere. The value is left out of the message: it may be a secret.
        if has_control(name) or has_control(value.replace("\t", " ")):
            raise UsageError(
                f"{names['header']} {name!r}: a header cannot hold a control character (a line "
                "break, an escape...)"
            )
        if name.lower() in seen:
            raise UsageError(f"{names['header']} {name!r} is given twice")
        seen.add(name.lower())
        checked[name] = value.strip()
    return checked


def _params(params: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    for name in params:
        if not name:
            raise UsageError(f"{names['param']}: a parameter needs a name")
    return dict(params)
