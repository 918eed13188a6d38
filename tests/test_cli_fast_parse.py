"""The argparse-free parse of the cron line gives exactly what the parser gives, or nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, job, run_cli, write_config

from batch_runner.cli.main import parse_run_job_line
from batch_runner.cli.parser import build_parser

FAST = [
    ["run-job", "backup"],
    ["run-job", "backup", "--no-wait"],
    ["run-job", "backup", "--queue"],
    ["run-job", "backup", "--queue", "--no-wait"],
    ["run-job", ""],
    ["run-job", "run-job"],
    ["-c", "/etc/br/config.json", "run-job", "backup"],
    ["--config", "c.json", "--root", "/srv", "run-job", "backup", "--no-wait"],
    ["--root", "/a", "--root", "/b", "run-job", "x"],
    ["-l", "DEBUG", "run-job", "x"],
    ["-l", "error", "--log-level", "Info", "run-job", "x"],
    ["--log-level", "info", "-c", "x.json", "run-job", "x"],
]

TO_ARGPARSE = [
    [],
    ["run-job"],
    ["run-job", "--no-wait"],
    ["run-job", "--no-wait", "backup"],
    ["run-job", "backup", "--help"],
    ["run-job", "backup", "--no-w"],
    ["run-job", "backup", "extra"],
    ["run-job", "backup", "-c", "x.json"],
    ["run-job", "--", "-dash"],
    ["--config=x.json", "run-job", "backup"],
    ["-c", "run-job", "backup"],
    ["-c", "-x", "run-job", "backup"],
    ["-l", "loud", "run-job", "x"],
    ["-l", "loud", "-l", "info", "run-job", "x"],
    ["--verbose", "run-job", "x"],
    ["list"],
    ["queue", "add", "--", "run-job", "x"],
]


@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_the_cron_line_parses_as_argparse_would(argv: list[str]) -> None:
    quick = parse_run_job_line(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser(argv).parse_args(argv))


@pytest.mark.parametrize("argv", TO_ARGPARSE, ids=lambda a: " ".join(a) or "nothing")
def test_every_other_shape_is_left_to_argparse(argv: list[str]) -> None:
    assert parse_run_job_line(argv) is None


def test_run_job_loads_neither_argparse_nor_the_config_validator(project: Path) -> None:
    write_config(project, [job("t", "true")])
    assert run_cli(project, "run-job", "t").returncode == 0  # validates, writes the snapshot
    probe = (
        "import sys; from batch_runner.cli.main import main; code = main(['run-job', 't']);"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(done.stderr.split())
    assert not loaded & {"argparse", "gettext", "pydantic", "rich", "logging", "typing"}


QUEUE_LINES = [
    ["queue", "add", "--", "echo", "hi"],
    ["queue", "add", "--priority", "5", "--label", "list", "--", "true"],
    ["queue", "list", "--all", "--json"],
    ["queue", "show", "20261123-000000-abcdef"],
    ["--root", "/srv", "queue", "worker", "--forever"],
    ["-c", "queue", "queue", "pause"],
    ["--conf", "list", "queue", "list"],
    ["--ro", "/srv", "queue", "show", "x"],
    ["queue", "clean", "--keep-days", "3"],
]


@pytest.mark.parametrize("argv", QUEUE_LINES, ids=" ".join)
def test_a_queue_parser_built_for_one_subcommand_parses_as_the_whole_one(argv: list[str]) -> None:
    whole = build_parser().parse_args(argv)  # no argv: every subcommand registered
    assert vars(build_parser(argv).parse_args(argv)) == vars(whole)


def test_queue_help_lists_every_subcommand_whatever_follows(capsys: pytest.CaptureFixture) -> None:
    for argv in (["queue", "--help"], ["queue", "--help", "add"], ["queue", "-h", "list"]):
        with pytest.raises(SystemExit):
            build_parser(argv).parse_args(argv)
        shown = capsys.readouterr().out
        assert all(name in shown for name in ("add", "list", "show", "worker", "clean")), argv
