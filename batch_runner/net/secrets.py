"""Keeping secrets out of results, logs and notices; reading them from the environment.

Secrets come from environment variables, never from the file (SPEC 8): ``${NAME}`` in a webhook's
URL or header values is replaced at send time, and an SMTP password is named by ``password_env``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from batch_runner.notify import NotifierError

# Header names that carry credentials: Authorization, Proxy-Authorization, Cookie, X-Api-Key,
# X-Auth-Token, X-Hook-Secret, Signature headers...
_SECRET_HEADER_WORDS = ("auth", "cookie", "token", "secret", "key", "password", "signature")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"
# Shorter values are not masked inside reasons: masking "a" would garble every message.
_MIN_SECRET_LENGTH = 3


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def expand_env(text: str, where: str) -> tuple[str, list[str]]:
    """``text`` with each ``${NAME}`` replaced from the environment, and the values used.

    The values are returned so the caller can mask them: anything read from the environment
    for a notifier is treated as a secret.
    """
    used: list[str] = []

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            raise NotifierError(f"environment variable {name} (used in {where}) is not set")
        used.append(value)
        return value

    return _ENV_REF.sub(value_of, text), used


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text


def describe_url(url: str) -> str:
    """Scheme, host and port only: chat webhook and ping URLs carry their token in the path."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return shown + ("/…" if parts.path not in ("", "/") or parts.query else "")
