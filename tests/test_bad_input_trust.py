"""Trust: whoever can write the config runs commands as the runner's user; private state files.

As root (these tests run as root in CI) a config, or its directory, writable by group or others
is refused like cron and jobber refuse it (exit 78, why and how to fix); as any other user it
is a warning. The state database, run logs and results are the owner's alone (0600 and 0700).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config

from batch_runner.config import trust
from batch_runner.errors import EXIT_CONFIG, ConfigError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="refusal applies when run as root")


@pytest.fixture
def trusted(project: Path) -> Path:
    path = write_config(project, [job("quick", "echo quick")])
    path.chmod(0o644)
    path.parent.chmod(0o755)
    return path


@root_only
@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646])
def test_root_refuses_a_config_others_can_write(trusted: Path, mode: int) -> None:
    trusted.chmod(mode)
    for argv in (("validate",), ("run-job", "quick")):
        result = run_cli(trusted.parent.parent, *argv)
        assert result.returncode == EXIT_CONFIG, result.stderr
        assert "chmod go-w" in result.stderr and str(trusted) in result.stderr
        assert "runs commands" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (trusted.parent.parent / "logs" / "batch").exists()  # nothing ran


@root_only
def test_root_refuses_a_config_directory_others_can_write(trusted: Path) -> None:
    trusted.parent.chmod(0o777)
    result = run_cli(trusted.parent.parent, "validate")
    assert result.returncode == EXIT_CONFIG
    assert f"chmod go-w {trusted.parent}" in result.stderr


def test_a_private_config_is_fine(trusted: Path) -> None:
    result = run_cli(trusted.parent.parent, "run-job", "quick")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_a_sticky_directory_like_tmp_is_fine_for_a_file_we_own(trusted: Path) -> None:
    trusted.parent.chmod(0o1777)
    trust.check_config_trust(trusted)


def test_not_root_warns_once(
    trusted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted.chmod(0o666)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(trust, "_warned", set())
    trust.check_config_trust(trusted)
    trust.check_config_trust(trusted)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "chmod go-w" in err


def test_root_refusal_is_a_config_error(trusted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trusted.chmod(0o622)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ConfigError, match="writable by group and others") as info:
        trust.check_config_trust(trusted)
    assert info.value.exit_code == EXIT_CONFIG


def test_tmp_path_used_by_the_suite_is_private(tmp_path: Path) -> None:
    # Every other test writes its config under tmp_path: the refusal must not touch them.
    assert not stat.S_IMODE(tmp_path.stat().st_mode) & 0o022


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_logs_and_results_are_the_owners_alone(trusted: Path) -> None:
    root = trusted.parent.parent
    old = os.umask(0o022)  # an ordinary umask: the product, not the umask, must make them private
    try:
        assert run_cli(root, "run-job", "quick").returncode == 0
        assert run_cli(root, "queue", "add", "--", "true").returncode == 0
        assert run_cli(root, "queue", "worker").returncode == 0
    finally:
        os.umask(old)
    logs = root / "logs"
    files = [
        logs / "state" / "batch_runner.sqlite3",
        *logs.glob("batch/*.jsonl"),
        *logs.glob("runs/*/*.log"),
    ]
    assert len(files) >= 4
    assert {str(f): oct(_mode(f)) for f in files if _mode(f) & 0o077} == {}
    dirs = [logs / "state", logs / "batch", *logs.glob("runs/*")]
    assert {str(d): oct(_mode(d)) for d in dirs if _mode(d) & 0o077} == {}


def test_the_database_init_lock_is_private_too(trusted: Path) -> None:
    root = trusted.parent.parent
    old = os.umask(0o022)
    try:
        assert run_cli(root, "run-job", "quick").returncode == 0
    finally:
        os.umask(old)
    extra = [p for p in (root / "logs" / "state").iterdir() if _mode(p) & 0o077]
    assert extra == []


@root_only
def test_a_config_refused_as_root_is_not_worked_around_with_the_last_good_one(
    trusted: Path,
) -> None:
    """The review saw "refusing to run as root ...; working from the last config" and a run."""
    root = trusted.parent.parent
    assert run_cli(root, "list").returncode == 0  # a snapshot exists
    trusted.chmod(0o666)
    for argv in (("list",), ("queue", "run"), ("status",)):
        result = run_cli(root, *argv)
        assert result.returncode == EXIT_CONFIG, (argv, result.stderr)
        assert "last config" not in result.stderr


@root_only
@pytest.mark.parametrize("owned", ["file", "directory"])
def test_root_refuses_a_config_another_account_owns(trusted: Path, owned: str) -> None:
    """The second review: a 0644 config owned by nobody was run as root (cron refuses a file
    in /etc/cron.d that root does not own the same way)."""
    target = trusted if owned == "file" else trusted.parent
    os.chown(target, 65534, -1)
    result = run_cli(trusted.parent.parent, "run-job", "quick")
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert f"{target} belongs to nobody" in result.stderr and "chown root" in result.stderr
