"""From parsed options to the paths and the validated config a command works with."""

from __future__ import annotations

import os

from batch_runner.config.spec import ConfigSpec, JobSpec
from batch_runner.errors import NotFound
from batch_runner.paths import resolve_config_path, resolve_root
from batch_runner.runs.context import RunnerContext

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def root_of(args: argparse.Namespace) -> str:
    return resolve_root(getattr(args, "root", None), os.environ, getattr(args, "config", None))


def config_path_of(args: argparse.Namespace) -> str:
    return resolve_config_path(getattr(args, "config", None), root_of(args), os.environ)


def load(args: argparse.Namespace) -> ConfigSpec:
    """The validated config (a cached snapshot when the file has not changed)."""
    from batch_runner.config.loader import load_config

    return load_config(config_path_of(args), root_of(args))


def context(args: argparse.Namespace, *, durable: bool = False) -> RunnerContext:
    return RunnerContext(config=load(args), durable=durable)


def find_job(config: ConfigSpec, name: str) -> JobSpec:
    job = config.job(name)
    if job is None:
        raise NotFound(f"no job named {name!r} in {config.path}{_did_you_mean(config, name)}")
    return job


def _did_you_mean(config: ConfigSpec, name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, [job.name for job in config.jobs], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
