"""Edits of the config file: everything else kept, refused edits leave the file byte-identical."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from batch_runner.config.edit import (
    add_job,
    default_config_bytes,
    init_config,
    remove_job,
    set_enabled,
)
from batch_runner.config.loader import validate_file
from batch_runner.errors import ConfigError, NotFound, UsageError

REPO = Path(__file__).resolve().parent.parent

# Unknown keys at every level, keys in no particular order, a non-ASCII description.
ORIGINAL = """\
{
  "x-owner": "ops team",
  "settings": {"retention_days": 7},
  "jobs": [
    {"schedule_time": "02:00", "name": "first", "command": "true", "schedule_type": "daily",
     "description": "夜間バッチ"},
    {"name": "second", "schedule_type": "interval", "schedule_time": 60, "command": ["true"],
     "enabled": true, "last_run": null, "last_status": null, "error_count": 0}
  ],
  "zz_trailing": [1, 2, 3]
}
"""

NEW_JOB = {
    "name": "third",
    "command": "echo hi",
    "schedule_type": "weekly",
    "schedule_time": "sunday 03:30",
    "enabled": True,
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "batch_config.json"
    path.parent.mkdir()
    path.write_text(ORIGINAL, encoding="utf-8")
    return path


def loaded(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_untouched(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == ORIGINAL
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def test_add_keeps_other_jobs_unknown_keys_and_order(config: Path, tmp_path: Path) -> None:
    add_job(config, tmp_path, NEW_JOB)
    after = loaded(config)
    before = json.loads(ORIGINAL)
    assert list(after) == ["x-owner", "settings", "jobs", "zz_trailing"]
    assert after["jobs"][:2] == before["jobs"]
    assert list(after["jobs"][0]) == list(before["jobs"][0])
    assert after["jobs"][2] == NEW_JOB
    assert after["x-owner"] == "ops team" and after["zz_trailing"] == [1, 2, 3]
    text = config.read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "x-owner": "ops team",\n' in text
    assert "夜間バッチ" in text
    assert [job.name for job in validate_file(config, tmp_path).jobs] == [
        "first",
        "second",
        "third",
    ]


def test_add_refuses_a_duplicate_name(config: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a job named 'second' already exists"):
        add_job(config, tmp_path, {**NEW_JOB, "name": "second"})
    assert_untouched(config)


def test_add_refuses_an_invalid_job_and_says_why(config: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        add_job(config, tmp_path, {**NEW_JOB, "schedule_type": "daily", "schedule_time": "25:00"})
    assert "adding job 'third' refused; the config would have 1 problem" in str(info.value)
    assert any("jobs[2].schedule_time" in p and '"25:00"' in p for p in info.value.problems)
    assert_untouched(config)


def test_add_to_a_config_without_jobs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"note": 1}\n')
    add_job(path, tmp_path, NEW_JOB)
    assert loaded(path) == {"note": 1, "jobs": [NEW_JOB]}


def test_remove_keeps_everything_else(config: Path, tmp_path: Path) -> None:
    remove_job(config, tmp_path, "first")
    after = loaded(config)
    before = json.loads(ORIGINAL)
    assert after["jobs"] == before["jobs"][1:]
    assert {k: v for k, v in after.items() if k != "jobs"} == {
        k: v for k, v in before.items() if k != "jobs"
    }
    assert list(after) == list(before)


def test_remove_unknown_job_is_not_found_with_a_suggestion(config: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        remove_job(config, tmp_path, "secnod")
    assert str(info.value) == f"no job named 'secnod' in {config}; did you mean 'second'?"
    assert info.value.exit_code == 3
    assert_untouched(config)


def test_disable_and_enable_keep_the_key_in_place(config: Path, tmp_path: Path) -> None:
    set_enabled(config, tmp_path, "second", False)
    job = loaded(config)["jobs"][1]
    assert job["enabled"] is False
    assert list(job) == list(json.loads(ORIGINAL)["jobs"][1])
    set_enabled(config, tmp_path, "first", False)
    assert list(loaded(config)["jobs"][0])[-1] == "enabled"  # absent before: appended
    set_enabled(config, tmp_path, "second", True)
    assert [j.enabled for j in validate_file(config, tmp_path).jobs] == [False, True]


def test_enable_unknown_job(config: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no job named 'nope'"):
        set_enabled(config, tmp_path, "nope", True)
    assert_untouched(config)


def test_edit_of_a_malformed_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"jobs": [}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        add_job(path, tmp_path, NEW_JOB)
    assert path.read_text() == '{"jobs": [}'


def test_edit_of_a_file_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    text = '{"jobs": [], "settings": {"retention_days": 3, "retention_days": 4}}'
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"keys appear twice \(settings.retention_days\)"):
        add_job(path, tmp_path, NEW_JOB)
    assert path.read_text() == text


def test_removing_the_broken_job_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    bad = {**NEW_JOB, "name": "bad", "schedule_time": "funday"}
    path.write_text(json.dumps({"jobs": [NEW_JOB, bad]}))
    with pytest.raises(ConfigError, match="disabling job 'third' refused"):
        set_enabled(path, tmp_path, "third", False)
    remove_job(path, tmp_path, "bad")
    assert [j.name for j in validate_file(path, tmp_path).jobs] == ["third"]


def test_file_mode_is_kept(config: Path, tmp_path: Path) -> None:
    config.chmod(0o640)
    set_enabled(config, tmp_path, "first", False)
    assert stat.S_IMODE(config.stat().st_mode) == 0o640


def test_edit_goes_through_a_symlink(config: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(config)
    remove_job(link, tmp_path, "first")
    assert link.is_symlink()
    assert [j["name"] for j in loaded(config)["jobs"]] == ["second"]


def test_edit_replaces_the_file_atomically(config: Path, tmp_path: Path) -> None:
    before = config.stat().st_ino
    add_job(config, tmp_path, NEW_JOB)
    assert config.stat().st_ino != before  # renamed over, never rewritten in place
    assert sorted(p.name for p in config.parent.iterdir()) == [config.name]


# --- init ----------------------------------------------------------------------------------


def test_init_writes_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config" / "batch_config.json"
    init_config(path)
    assert path.read_bytes() == default_config_bytes()
    assert [j.name for j in validate_file(path, tmp_path).jobs] == [
        "disk_usage",
        "uptime_report",
        "batch_runner_cleanup",
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def test_init_never_overwrites(config: Path) -> None:
    with pytest.raises(UsageError, match="already exists"):
        init_config(config)
    assert_untouched(config)


def test_shipped_config_is_the_default_config() -> None:
    assert (REPO / "config" / "batch_config.json").read_bytes() == default_config_bytes()


def test_shipped_jobs_run_anywhere(tmp_path: Path) -> None:
    jobs = validate_file(REPO / "config" / "batch_config.json", tmp_path).jobs
    kinds = {j.schedule_type for j in jobs}
    assert kinds == {"interval", "daily", "weekly"}
    cleanup = next(j for j in jobs if j.name == "batch_runner_cleanup")
    assert (cleanup.command, cleanup.shell) == ("batch_runner clean", "auto")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_concurrent_adds_all_land(tmp_path: Path) -> None:
    # Separate processes, as eight shells would run them: every add that exits 0 is in the file.
    from conftest import write_config

    config = write_config(tmp_path, [])
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    adds = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_runner",
                "add",
                f"p{i}",
                "true",
                "--type",
                "interval",
                "--time",
                "1h",
            ],
            env=env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for add in adds:
        assert add.wait(timeout=60) == 0, add.stderr.read() if add.stderr else ""
    names = sorted(job["name"] for job in loaded(config)["jobs"])
    assert names == [f"p{i}" for i in range(8)]
    assert sorted(p.name for p in config.parent.iterdir()) == [config.name]
