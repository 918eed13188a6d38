"""Shell completion (issue 17.17): through a real bash, as a user's shell would ask for it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, job, run_cli, write_config

BIN = Path(sys.executable).parent


def bash_complete(root: Path, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) once the script is installed."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = f"""
eval "$(batch_runner completion bash)"
COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}
_python_argcomplete batch_runner {shlex.quote(words[-1])} {shlex.quote(words[-2])}
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "BATCH_RUNNER_ROOT": str(root),
    }
    env.pop("BATCH_RUNNER_CONFIG", None)
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, cwd=root, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return [word.strip() for word in result.stdout.splitlines() if word.strip()]


@pytest.fixture
def jobs(project: Path) -> Path:
    write_config(project, [job("nightly_export", "true"), job("nightly_backup", "true")])
    return project


def test_commands_and_their_subcommands(jobs: Path) -> None:
    assert {"queue", "run-job", "history", "completion"} <= set(
        bash_complete(jobs, "batch_runner ")
    )
    assert bash_complete(jobs, "batch_runner queue sh") == ["show"]


def test_options(jobs: Path) -> None:
    assert "--no-wait" in bash_complete(jobs, "batch_runner run-job --")


def test_job_names(jobs: Path) -> None:
    assert sorted(bash_complete(jobs, "batch_runner run-job nightly_")) == [
        "nightly_backup",
        "nightly_export",
    ]
    assert bash_complete(jobs, "batch_runner disable nightly_e") == ["nightly_export"]


def test_run_ids(jobs: Path) -> None:
    run_id = run_cli(jobs, "queue", "add", "--delay", "1h", "--", "true").stdout.strip()
    assert bash_complete(jobs, f"batch_runner queue show {run_id[:10]}") == [run_id]
    assert run_id in bash_complete(jobs, "batch_runner stop ")


def test_a_project_that_cannot_be_read_completes_nothing_and_prints_nothing(
    tmp_path: Path,
) -> None:
    assert bash_complete(tmp_path, "batch_runner run-job ") == []


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("zsh", "#compdef batch_runner"), ("fish", "complete --command batch_runner")],
)
def test_zsh_and_fish_scripts(jobs: Path, shell: str, marker: str) -> None:
    result = run_cli(jobs, "completion", shell)
    assert result.returncode == 0 and marker in result.stdout


def test_completion_costs_the_cli_nothing_at_start(jobs: Path) -> None:
    def loaded_after(argv: list[str]) -> str:
        code = (
            f"import sys; from batch_runner.cli.main import main; main({argv!r}); "
            "print('argcomplete' in sys.modules, 'batch_runner.cli.completion' in sys.modules, "
            "file=sys.stderr)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "BATCH_RUNNER_ROOT": str(jobs)},
            cwd=jobs,
            timeout=30,
        )
        return result.stderr.strip().splitlines()[-1]

    assert loaded_after(["list"]) == "False True"  # the small module, not the library
    assert loaded_after(["run-job", "nightly_export"]) == "False False"  # the cron line: neither
