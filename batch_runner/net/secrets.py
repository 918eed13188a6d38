"""The one secret-masking policy of every outbound call (SPEC 8, 11).

A secret is any of:

- a value expanded from ``${VAR}`` anywhere (``envrefs.Expander.used``): an HTTP job's URL,
  parameters, header values and body; a webhook's URL and header values;
- the value of a header named in ``settings.http.mask_headers`` (any case), and of its
  response-side twin (``Set-Cookie`` when ``Cookie`` is masked), for HTTP jobs and webhooks alike;
- the password of a URL's credentials (``https://user:pass@host/``);
- an SMTP password named by ``password_env``.

Masked headers show as ``***``; URL credentials show as ``***@``; and one ``Scrubber`` replaces
every secret value by ``***`` in whatever is kept or shown: records, run logs, notices and
failure reasons, since a server may echo a secret back (httpbin's ``/post`` does).
"""

from __future__ import annotations

import re

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

MASK = "***"
DEFAULT_MASK_HEADERS = ("Authorization", "Cookie", "X-Api-Key")
# A masked request header implies masking the header that carries the same secret back.
_TWINS = {"cookie": ("set-cookie",), "authorization": ("proxy-authorization",)}
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
# Shorter values would blank out ordinary words of a response. A part of a value ("dark" of
# "sid=...; theme=dark") must be longer to count: secrets are long, words are short.
_MIN_SECRET = 3
_MIN_FRAGMENT = 8
_FRAGMENT_SPLIT = re.compile(r"[\s;,]+")


def mask_names(names: Iterable[str]) -> frozenset[str]:
    """The lower-case header names to mask, twins included."""
    lowered = {name.strip().lower() for name in names}
    return frozenset(lowered.union(*(_TWINS.get(name, ()) for name in lowered)))


def mask_headers(headers: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``headers`` with the values of the masked ones replaced by ``***``."""
    masked = mask_names(names)
    return {key: MASK if key.lower() in masked else value for key, value in headers.items()}


def masked_values(headers: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """The values of the masked headers among ``headers``: secrets to scrub."""
    masked = mask_names(names)
    return [value for key, value in headers.items() if key.lower() in masked and value]


def url_password(url: str) -> list[str]:
    """The password of ``url``'s credentials, as written and decoded (empty if it has none)."""
    match = _USERINFO.match(url)
    if match is None:
        return []
    from urllib.parse import unquote

    password = match.group(0)[len(match.group(1)) : -1].partition(":")[2]
    return [value for value in dict.fromkeys((password, unquote(password))) if value]


def safe_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", url)


def describe_url(url: str) -> str:
    """Scheme, host and port only: chat webhook and ping URLs carry their token in the path."""
    from urllib.parse import urlsplit

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


class Scrubber:
    """Replaces each secret (and each long enough part of one) by ``***``."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        given = [secret for secret in secrets if secret]
        fragments = {secret for secret in given if len(secret) >= _MIN_SECRET}
        for secret in given:
            # "Bearer abc", "a=1; b=2": the credential may come back without its scheme or name.
            for part in _FRAGMENT_SPLIT.split(secret):
                for fragment in (part, part.partition("=")[2]):
                    if len(fragment) >= _MIN_FRAGMENT:
                        fragments.add(fragment)
        # Longest first, so a fragment inside a longer secret does not leave parts of it.
        self.fragments = sorted(fragments, key=len, reverse=True)

    def text(self, value: str) -> str:
        for fragment in self.fragments:
            value = value.replace(fragment, MASK)
        return value

    def json(self, value: Any) -> Any:
        """A JSON value with secrets scrubbed from every string, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.json(item) for key, item in value.items()}
        return value
