"""Lanes (SPEC section 14): named queues, each running up to its width of runs at once.

``settings.lanes`` maps a lane's name to its width; the lane "default" always exists (width 1
unless the file gives another) and a job runs in it unless its ``lane`` says otherwise.

Cheap to import: ``queue add --lane`` checks its lane here on the hot path, so only the
error branch imports what it needs (difflib, json).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from batch_runner.config.spec import Settings

DEFAULT_LANE = "default"
DEFAULT_WIDTH = 1  # the default lane's width when settings.lanes leaves it out
MAX_WIDTH = 64
# Every slot of every lane may run at once: a bound on the processes and lock files.
MAX_TOTAL_WIDTH = 256
# No ".": a slot's lock file is named LANE.K.lock. Matched whole (re.fullmatch).
LANE_NAME_PATTERN = "[A-Za-z0-9_-]{1,64}"


def lane_names(lanes: Iterable[str]) -> list[str]:
    """The configured lanes in order of name, "default" among them whether listed or not."""
    return sorted({DEFAULT_LANE, *lanes})


def unknown_lane(lanes: Iterable[str], name: str) -> str | None:
    """None when ``name`` is a configured lane (a name of ``lanes``, or "default"); else the
    sentence that says so, with the closest configured name if one is close."""
    known = lane_names(lanes)
    if name in known:
        return None
    return (
        f"lane {quoted(name)} is not configured (settings.lanes has: {', '.join(known)})"
        f"{suggestion(name, known)}"
    )


def suggestion(name: str, known: list[str]) -> str:
    """``; did you mean "http"?`` for the closest of ``known``, or nothing when none is close."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def quoted(name: str) -> str:
    """A lane's name as the JSON file spells it."""
    import json

    return json.dumps(name, ensure_ascii=False)


def lane_full(settings: Settings, lane: str) -> str:
    """Why nothing could start at once in ``lane`` (``--no-wait``, ``queue run``): the words
    of before lanes, where none are configured."""
    if not settings.has_lanes:
        return "the executor is busy with another run"
    width = settings.width(lane)
    return f"lane {lane} is full ({width} run{'s' if width != 1 else ''} at once)"
