"""Loading: the snapshot fast path (no pydantic), and when the snapshot must not be trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batch_runner.config import loader
from batch_runner.config.loader import load_config, validate_file
from batch_runner.errors import ConfigError
from batch_runner.state.layout import LogLayout

REPO = Path(__file__).resolve().parent.parent


def write(root: Path, jobs: list[dict], **top: object) -> Path:
    path = root / "config" / "batch_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": jobs, **top}, indent=2) + "\n")
    return path


def daily(name: str = "j", at: str = "02:00", **extra: object) -> dict:
    return {"name": name, "command": "true", "schedule_type": "daily", "schedule_time": at, **extra}


def snapshot_of(root: Path) -> Path:
    return Path(LogLayout(root / "logs").config_snapshot)


def python(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=True,
    )
    return done.stdout


LOAD_IN_CHILD = """
import json, sys
from pathlib import Path
from batch_runner.config.loader import load_config
config = load_config(Path({path!r}), Path({root!r}))
print(json.dumps({{"pydantic": "pydantic" in sys.modules,
                  "jobs": [[j.name, j.schedule_time] for j in config.jobs]}}))
"""


def load_in_child(path: Path, root: Path) -> dict:
    return json.loads(python(LOAD_IN_CHILD.format(path=str(path), root=str(root)), root))


def test_importing_the_loader_does_not_import_pydantic(tmp_path: Path) -> None:
    out = python(
        "import sys, batch_runner.config.loader; print('pydantic' in sys.modules)", tmp_path
    )
    assert out.strip() == "False"


def test_fast_path_does_not_import_pydantic(tmp_path: Path) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)  # validates and writes the snapshot
    assert snapshot_of(tmp_path).exists()
    assert load_in_child(path, tmp_path) == {"pydantic": False, "jobs": [["j", "02:00"]]}


def test_first_load_validates_and_records_what_it_depends_on(tmp_path: Path) -> None:
    import hashlib

    from batch_runner import __version__
    from batch_runner.config.spec import SNAPSHOT_FORMAT

    path = write(tmp_path, [daily()])
    assert load_in_child(path, tmp_path)["pydantic"] is True
    snapshot = json.loads(snapshot_of(tmp_path).read_text())
    assert snapshot["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (snapshot["format"], snapshot["version"]) == (SNAPSHOT_FORMAT, __version__)
    assert (snapshot["config_path"], snapshot["root"]) == (str(path), str(tmp_path))


def test_fast_and_full_paths_give_the_same_config(tmp_path: Path) -> None:
    full = REPO / "config" / "examples" / "full.json"
    path = tmp_path / "config" / "batch_config.json"
    path.parent.mkdir()
    path.write_bytes(full.read_bytes())
    slow = load_config(path, tmp_path)
    fast = load_config(path, tmp_path)
    assert fast == slow == validate_file(path, tmp_path)


def test_snapshot_is_invalidated_when_the_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path, [daily(at="02:00")])
    assert load_config(path, tmp_path).jobs[0].schedule_time == "02:00"
    write(tmp_path, [daily(at="03:00")])
    assert load_in_child(path, tmp_path) == {"pydantic": True, "jobs": [["j", "03:00"]]}
    assert load_config(path, tmp_path).jobs[0].schedule_time == "03:00"


def test_an_invalid_edit_is_reported_even_with_a_snapshot(tmp_path: Path) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)
    write(tmp_path, [daily(at="25:00")])
    with pytest.raises(ConfigError, match="1 problem"):
        load_config(path, tmp_path)


@pytest.mark.parametrize("field", ["version", "format", "config_path", "root", "sha256"])
def test_snapshot_with_another_key_is_not_trusted(tmp_path: Path, field: str) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)
    snapshot = json.loads(snapshot_of(tmp_path).read_text())
    snapshot[field] = "other"
    snapshot["config"]["jobs"][0]["schedule_time"] = "09:09"
    snapshot_of(tmp_path).write_text(json.dumps(snapshot))
    assert load_config(path, tmp_path).jobs[0].schedule_time == "02:00"


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"config": 5}'])
def test_damaged_snapshot_means_validating_again(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)
    snapshot = json.loads(snapshot_of(tmp_path).read_text())
    if content == '{"config": 5}':
        snapshot["config"] = 5
        content = json.dumps(snapshot)
    snapshot_of(tmp_path).write_text(content)
    assert load_config(path, tmp_path).jobs[0].name == "j"
    assert json.loads(snapshot_of(tmp_path).read_text())["config"]["jobs"][0]["name"] == "j"


def test_validate_file_never_reads_the_snapshot(tmp_path: Path) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)
    snapshot = json.loads(snapshot_of(tmp_path).read_text())
    snapshot["config"]["jobs"][0]["schedule_time"] = "09:09"  # same key, other content
    snapshot_of(tmp_path).write_text(json.dumps(snapshot))
    assert load_config(path, tmp_path).jobs[0].schedule_time == "09:09"
    assert validate_file(path, tmp_path).jobs[0].schedule_time == "02:00"


def test_snapshot_lives_in_the_configured_log_dir(tmp_path: Path) -> None:
    path = write(tmp_path, [daily()], settings={"log_dir": "var/log"})
    assert load_config(path, tmp_path).settings.log_dir == str(tmp_path / "var" / "log")
    assert Path(LogLayout(tmp_path / "var" / "log").config_snapshot).exists()
    assert load_in_child(path, tmp_path)["pydantic"] is False


def test_unwritable_log_dir_skips_caching(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the log dir should be")
    path = write(tmp_path, [daily()], settings={"log_dir": "blocker"})
    assert load_config(path, tmp_path).jobs[0].name == "j"
    assert load_config(path, tmp_path).jobs[0].name == "j"


def test_another_root_gets_its_own_paths(tmp_path: Path) -> None:
    shared_logs = tmp_path / "shared-logs"
    path = write(tmp_path, [daily(cwd="work")], settings={"log_dir": str(shared_logs)})
    first = load_config(path, tmp_path / "a")
    second = load_config(path, tmp_path / "b")
    assert first.jobs[0].cwd == str(tmp_path / "a" / "work")
    assert second.jobs[0].cwd == str(tmp_path / "b" / "work")
    assert second.root == str(tmp_path / "b")


def test_no_temp_files_are_left_in_the_state_dir(tmp_path: Path) -> None:
    path = write(tmp_path, [daily()])
    load_config(path, tmp_path)
    assert [p.name for p in snapshot_of(tmp_path).parent.iterdir()] == ["config_snapshot.json"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; run `batch_runner init`"):
        load_config(tmp_path / "nope.json", tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, [daily()])

    def refuse(file: str, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(file))

    # chmod 0 does not stop root: the loader's open() refuses instead.
    monkeypatch.setattr(loader, "open", refuse, raising=False)
    with pytest.raises(ConfigError, match=r"cannot read the config file .*: Permission denied"):
        load_config(path, tmp_path)


def test_a_command_run_inside_a_project_folder_points_at_its_root(tmp_path: Path) -> None:
    from conftest import REPO, job, write_config

    write_config(tmp_path, [job("a", "true")])
    env = {
        k: v for k, v in os.environ.items() if k not in ("BATCH_RUNNER_ROOT", "BATCH_RUNNER_CONFIG")
    }
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "batch_runner", "list"],
        env=env,
        cwd=tmp_path / "config",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    assert f"give --root {tmp_path}" in result.stderr and "Traceback" not in result.stderr
