"""What may be shown of an HTTP request: masked headers, URLs without credentials (SPEC 11).

Headers named in ``settings.http.mask_headers`` (any case) show as ``***``; so do their
response-side twins (``Set-Cookie`` when ``Cookie`` is masked). Credentials in a URL
(``https://user:pass@host/``) show as ``***@``. The run spec in the state database keeps the
request as given, so every place that shows a spec must go through ``masked_spec``.

A server may echo a secret back (httpbin's ``/post`` returns the request headers), so what is
kept of a response is also scrubbed of the secret values actually sent (``Scrubber``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# A masked request header implies masking the header that carries the same secret back.
_TWINS = {"cookie": ("set-cookie",), "authorization": ("proxy-authorization",)}
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
# Shorter values would blank out ordinary words of a response. A part of a value ("dark" of
# "sid=...; theme=dark") must be longer to count: secrets are long, words are short.
_MIN_SECRET = 4
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


def safe_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    return _USERINFO.sub(rf"\g<1>{MASK}@", url)


def settings_mask(settings: Any) -> tuple[str, ...]:
    """``mask_headers`` of ``settings`` (a ``Settings`` or ``HttpSettings``), or the default."""
    http = getattr(settings, "http", settings)
    names = getattr(http, "mask_headers", None)
    return tuple(names) if names is not None else ("Authorization", "Cookie", "X-Api-Key")


def masked_spec(spec: Mapping[str, Any], settings: Any) -> dict[str, Any]:
    """A copy of a run spec that is safe to show: masked headers, no URL credentials.

    ``settings`` is the config's ``Settings``. Specs of other kinds of runs come back as
    copies, unchanged.
    """
    shown = copy.deepcopy(dict(spec))
    http = shown.get("http")
    if isinstance(http, dict):
        http["headers"] = mask_headers(http.get("headers") or {}, settings_mask(settings))
        if isinstance(http.get("url"), str):
            http["url"] = safe_url(http["url"])
    return shown


def describe(spec: Mapping[str, Any]) -> str:
    """``POST https://api.example.com/x``: one line naming an HTTP run, safe to show."""
    http = spec.get("http") or {}
    return f"{http.get('method') or 'GET'} {safe_url(str(http.get('url') or ''))}"


class Scrubber:
    """Replaces the secret values actually sent (masked headers, URL password) by ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        fragments = {secret for secret in secrets if len(secret) >= _MIN_SECRET}
        for secret in secrets:
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
