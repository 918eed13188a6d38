"""How values and suggestions are spelt in messages about the config file."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any


def show(value: Any) -> str:
    """A value as it is written in the JSON file, cut short when long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
