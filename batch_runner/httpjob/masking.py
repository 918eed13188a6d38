"""What may be shown of an HTTP job's run spec: masked headers, URLs without credentials.

The run spec in the state database keeps the request as given, so every place that shows a spec
(``queue show``, the run log's first line) must go through ``masked_spec`` or ``describe``.
The policy itself (which values are secret, how they show) is ``net.secrets``.
"""

from __future__ import annotations

import copy

from batch_runner.net.secrets import DEFAULT_MASK_HEADERS, mask_headers, safe_url

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def settings_mask(settings: Any) -> tuple[str, ...]:
    """``mask_headers`` of ``settings`` (a ``Settings`` or ``HttpSettings``), or the default."""
    http = getattr(settings, "http", settings)
    names = getattr(http, "mask_headers", None)
    return tuple(names) if names is not None else DEFAULT_MASK_HEADERS


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
