"""``queue add --http``: the options of an ad-hoc HTTP call and the run spec they make."""

from __future__ import annotations

import argparse
from typing import Any

from batch_runner.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``queue add`` for an HTTP call (``--http`` and what goes with it)."""
    parser.add_argument("--http", action="store_true", help="make an HTTP request instead")


def build_spec(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """The run spec (``{"type": "http", "http": {...}, "timeout": ...}``) for ``args``."""
    raise UsageError("HTTP calls from the queue are not supported by this version yet")
