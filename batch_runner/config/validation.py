"""Full validation of a parsed config: every problem at once, each with its path and position."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import ValidationError

from batch_runner.config import problems as found
from batch_runner.config.httpchecks import http_problems
from batch_runner.config.jsonpos import scan
from batch_runner.config.models import ConfigModel
from batch_runner.config.normalize import normalize
from batch_runner.errors import ConfigError


def validate_document(
    file: str,
    document: dict[str, Any],
    root: str,
    text: str | None = None,
    *,
    check_variables: bool = True,
) -> dict[str, Any]:
    """The normalized dict of ``document``, or ConfigError listing every problem.

    ``text`` is the JSON the document was parsed from; with it, each problem gets a line and
    column, and keys repeated in one object are found (``json.loads`` keeps only the last).
    The ``${VAR}`` references of HTTP jobs are checked against this process's environment
    unless ``check_variables`` is False (the file itself is sound whatever a shell has set).
    """
    problems = [
        *found.misspelt_top_level(document),
        *found.duplicate_names(document),
        *found.unconfigured_lanes(document),
        *http_problems(document, os.environ, check_variables=check_variables),
    ]
    try:
        model = ConfigModel.model_validate(document)
    except ValidationError as exc:
        problems += found.from_pydantic(exc.errors(include_url=False), document)
    repeated = text is not None and _repeats_a_key(text)
    if problems or repeated:
        # Positions cost a pass in Python over the whole text: only when there is a problem.
        positions = scan(text) if text is not None else None
        if positions:
            problems = [*found.duplicate_keys(positions), *problems]
        problems.sort(key=lambda p: p.sort_key(positions))
        lines = list(dict.fromkeys(p.line(file, positions) for p in problems))
        count = f"{len(lines)} problem{'s' if len(lines) > 1 else ''}"
        raise ConfigError(f"{file}: {count} in the config", problems=lines)
    return normalize(model, root)


def _repeats_a_key(text: str) -> bool:
    """Whether any JSON object in ``text`` has a key twice (``json.loads`` keeps the last)."""
    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        result = dict(items)
        repeated = repeated or len(result) != len(items)
        return result

    try:
        json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return False
    return repeated
