"""Issue 16.1: a results file planted as a symbolic link is neither written through nor read.

Whoever can write the results folder could otherwise make the runner append to (or create)
any file the runner may write, or make ``history`` show records from anywhere.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from conftest import job, run_cli, write_config
from fault_helpers import runs


def _plant(project: Path, target: Path) -> list[Path]:
    """Today's and tomorrow's results files as links to ``target`` (a run may cross midnight)."""
    folder = project / "logs" / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for day in (datetime.now(), datetime.now() + timedelta(days=1)):
        link = folder / f"batch_{day:%Y%m%d}.jsonl"
        link.symlink_to(target)
        links.append(link)
    return links


def _one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_results_file_planted_as_a_link_leaves_its_target_untouched(project: Path) -> None:
    write_config(project, [job("quick", "echo quick")])
    victim = project / "victim.txt"
    victim.write_text("precious\n")
    links = _plant(project, victim)
    error = _one_sentence_error(run_cli(project, "run-job", "quick"))
    assert "symbolic link" in error and any(str(link) in error for link in links), error
    assert victim.read_text() == "precious\n"
    # The run itself ended as it ended; only its line could not be written.
    assert list(runs(project).values()) == ["success"]


def test_a_dangling_link_does_not_create_its_target(project: Path) -> None:
    write_config(project, [job("quick", "echo quick")])
    nowhere = project / "created-through-a-link.jsonl"
    _plant(project, nowhere)
    _one_sentence_error(run_cli(project, "run-job", "quick"))
    assert not nowhere.exists()


def test_history_does_not_read_through_a_link(project: Path) -> None:
    write_config(project, [job("quick", "echo quick")])
    elsewhere = project / "elsewhere.jsonl"
    record = {"job_name": "quick", "start_time": datetime.now().astimezone().isoformat()}
    elsewhere.write_text(json.dumps({**record, "status": "success", "run_id": "planted"}) + "\n")
    links = _plant(project, elsewhere)
    shown = run_cli(project, "history", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == []
    assert f"skipped {links[0]}: it is a symbolic link" in shown.stderr
    assert "Traceback" not in shown.stderr
