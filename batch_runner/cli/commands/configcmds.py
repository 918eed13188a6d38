"""``validate``, ``init``, ``schema``: the config file itself."""

from __future__ import annotations

import argparse

from batch_runner.cli import app, render

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("validate", help="check the config; print every problem")
    p.set_defaults(handler=cmd_validate)
    common(p)
    p = sub.add_parser("init", help="write the default config if there is none")
    p.set_defaults(handler=cmd_init)
    common(p)
    p = sub.add_parser("schema", help="print the JSON Schema of the config file")
    p.set_defaults(handler=cmd_schema)
    common(p)


def cmd_validate(args: argparse.Namespace) -> int:
    from batch_runner.config.loader import validate_file

    config = validate_file(app.config_path_of(args), app.root_of(args))
    enabled = sum(job.enabled for job in config.jobs)
    count = len(config.jobs)
    print(f"{config.path}: valid, {count} job{'' if count == 1 else 's'} ({enabled} enabled)")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from batch_runner.config.edit import init_config

    path = app.config_path_of(args)
    init_config(path)
    print(f"wrote the default config to {path}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from batch_runner.config.schema import json_schema

    render.print_json(json_schema())
    return 0
