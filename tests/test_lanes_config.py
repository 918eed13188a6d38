"""Lanes in the config (issue 18, SPEC section 14): ``settings.lanes`` and a job's ``lane``.

Real config files go through ``batch_runner validate`` (in process through ``main``, and as a
user runs it for the exit code); the plain spec objects, ``config.lanes`` and the JSON Schema
are checked directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cli, job, run_cli, write_config
from jsonschema import Draft202012Validator

from batch_runner.config import loader
from batch_runner.config.lanes import LANE_NAME_PATTERN, unknown_lane
from batch_runner.config.schema import json_schema
from batch_runner.config.spec import JobSpec, Settings
from batch_runner.config.words import show
from batch_runner.errors import EXIT_CONFIG


def http_job(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "http",
        "url": "https://example.com/health",
        "schedule_type": "interval",
        "schedule_time": 60,
        **extra,
    }


def validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``batch_runner validate`` in process: its exit code and its stderr."""
    code = cli("validate")
    return code, capsys.readouterr().err


def line_of(path: Path, fragment: str) -> int:
    """The 1-based line of the only line of the file that holds ``fragment``."""
    lines = [n for n, text in enumerate(path.read_text().split("\n"), 1) if fragment in text]
    assert len(lines) == 1, lines
    return lines[0]


# --- settings.lanes ----------------------------------------------------------------------------


def test_widths_are_accepted_and_reach_the_spec(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lanes = {"default": 2, "http": 4, "Big_lane-2": 64, "x": 1}
    jobs = [job("a", "true"), job("b", "true", lane="http"), http_job("c", lane="Big_lane-2")]
    path = write_config(project, jobs, settings={"lanes": lanes})
    assert validate(project, capsys) == (0, "")
    spec = loader.validate_file(path, project)
    assert spec.settings.lanes == lanes
    assert [j.lane for j in spec.jobs] == ["default", "http", "Big_lane-2"]


@pytest.mark.parametrize(
    ("width", "message"),
    [
        (0, "found 0; expected a number of at least 1"),
        (-3, "found -3; expected a number of at least 1"),
        (65, "found 65; expected a number of at most 64"),
        (2.5, "found 2.5; expected an integer"),
        ("4", 'found "4"; expected an integer'),
        (True, "found true; expected an integer"),
        (None, "found null; expected an integer"),
    ],
)
def test_a_bad_width_is_refused_where_it_is(
    project: Path, capsys: pytest.CaptureFixture[str], width: Any, message: str
) -> None:
    path = write_config(project, [job("a", "true")], settings={"lanes": {"http": width}})
    code, err = validate(project, capsys)
    line = line_of(path, '"http":')
    assert code == EXIT_CONFIG
    assert f"settings.lanes.http (line {line}, column 15): {message}\n" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a.b", 'settings.lanes["a.b"]'),
        ("", 'settings.lanes[""]'),
        ("sp ace", 'settings.lanes["sp ace"]'),
        ("x" * 65, "settings.lanes." + "x" * 65),
        ("caf\u00e9", 'settings.lanes["caf\u00e9"]'),
    ],
)
def test_a_bad_lane_name_is_refused_at_its_key(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, shown: str
) -> None:
    write_config(project, [job("a", "true")], settings={"lanes": {"ok": 2, name: 1}})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    quoted = show(name)  # as the file spells it, cut short when long
    assert f"{shown} (line 13, column 7): {quoted} is not a valid lane name" in err
    assert 'letters, digits, "_" or "-"' in err


def test_the_sum_of_the_widths_is_capped(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lanes = {"default": 1, "a": 64, "b": 64, "c": 64, "d": 64}
    path = write_config(project, [job("a", "true")], settings={"lanes": lanes})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    line = line_of(path, '"lanes"')
    assert f"settings.lanes (line {line}, column 14): the lane widths add up to 257" in err
    assert "at most 256" in err


def test_the_implicit_default_lane_counts_toward_the_cap(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lanes = {"a": 64, "b": 64, "c": 64, "d": 64}
    write_config(project, [job("a", "true")], settings={"lanes": lanes})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    assert 'add up to 257 (with 1 for the "default" lane, which is not listed)' in err
    write_config(project, [job("a", "true")], settings={"lanes": {**lanes, "d": 63}})
    assert validate(project, capsys) == (0, "")


def test_the_default_lane_exists_when_not_given(project: Path) -> None:
    path = write_config(project, [job("a", "true")])
    spec = loader.validate_file(path, project)
    assert spec.settings.lanes == {"default": 1}
    assert spec.jobs[0].lane == "default"
    path = write_config(project, [job("a", "true")], settings={"lanes": {"http": 3}})
    assert loader.validate_file(path, project).settings.lanes == {"default": 1, "http": 3}


def test_the_default_lane_takes_its_width_when_given(project: Path) -> None:
    path = write_config(project, [job("a", "true")], settings={"lanes": {"default": 5}})
    settings = loader.validate_file(path, project).settings
    assert settings.lanes == {"default": 5}
    assert settings.width("default") == 5


# --- a job's lane ------------------------------------------------------------------------------


def test_a_misspelt_job_lane_is_a_config_error_at_its_line(project: Path) -> None:
    jobs = [job("a", "true"), job("b", "true", lane="http"), job("c", "true", lane="htpp")]
    path = write_config(project, jobs, settings={"lanes": {"http": 4}})
    result = run_cli(project, "validate")
    assert result.returncode == EXIT_CONFIG
    line = line_of(path, '"htpp"')
    assert (
        f'jobs[2].lane (line {line}, column 15): lane "htpp" is not configured '
        '(settings.lanes has: default, http); did you mean "http"?\n'
    ) in result.stderr
    assert "1 problem in the config" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_unconfigured_lane_is_reported_at_once(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = [
        job("a", "true", lane="nightly"),
        job("b", "true", lane="http"),
        http_job("c", lane="zzzzzz"),
    ]
    write_config(project, jobs, settings={"lanes": {"http": 2, "nightly-batch": 1}})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    assert "2 problems in the config" in err
    assert 'jobs[0].lane (line 8, column 15): lane "nightly" is not configured' in err
    assert 'did you mean "nightly-batch"?' in err
    assert (
        'jobs[2].lane (line 23, column 15): lane "zzzzzz" is not configured '
        "(settings.lanes has: default, http, nightly-batch)\n"
    ) in err


def test_a_job_may_name_the_default_lane_without_settings(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("a", "true", lane="default")])
    assert validate(project, capsys) == (0, "")


@pytest.mark.parametrize("lane", ["a.b", "", 3, None])
def test_a_bad_job_lane_is_reported_once(
    project: Path, capsys: pytest.CaptureFixture[str], lane: Any
) -> None:
    write_config(project, [job("a", "true", lane=lane)])
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    assert "1 problem in the config" in err
    assert "jobs[0].lane (line 8, column 15): " in err
    assert "is not configured" not in err


def test_job_lanes_are_not_checked_against_lanes_that_are_not_an_object(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("a", "true", lane="http")], settings={"lanes": ["http"]})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    assert "1 problem in the config" in err
    assert 'settings.lanes (line 12, column 14): found ["http"]; expected an object' in err


def test_a_misspelt_lanes_key_gets_a_suggestion(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(project, [job("a", "true", lane="http")], settings={"lanse": {"http": 2}})
    code, err = validate(project, capsys)
    assert code == EXIT_CONFIG
    assert 'unknown key "lanse" (did you mean "lanes"?)' in err


# --- the plain spec objects, the snapshot ------------------------------------------------------


def test_settings_width_for_configured_and_unconfigured_lanes() -> None:
    settings = Settings.from_dict({"log_dir": "/tmp/logs", "lanes": {"http": 4, "default": 2}})
    assert settings.width("http") == 4
    assert settings.width("default") == 2
    # A lane taken out of the config: its leftover pending runs drain one at a time.
    assert settings.width("gone") == 1


def test_the_spec_objects_default_to_the_default_lane() -> None:
    assert Settings(log_dir="/tmp/logs").lanes == {"default": 1}
    assert Settings(log_dir="/tmp/logs").width("default") == 1
    # A normalized dict from before lanes (no "lanes", no "lane") still builds.
    old = Settings.from_dict({"log_dir": "/tmp/logs"})
    assert old.lanes == {"default": 1}
    assert Settings.from_dict({"log_dir": "/l", "lanes": {"a": 2}}).lanes == {"default": 1, "a": 2}
    spec = JobSpec.from_dict({"name": "a", "schedule_type": "interval", "schedule_time": "60"})
    assert spec.lane == "default"
    assert JobSpec(name="a", schedule_type="interval", schedule_time="60", lane="x").lane == "x"


def test_a_second_load_goes_through_the_snapshot_and_keeps_the_lanes(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [job("a", "true", lane="http"), http_job("b", lane="slow"), job("c", "true")]
    path = write_config(project, jobs, settings={"lanes": {"http": 4, "slow": 2}})
    first = loader.load_config(path, project)

    def no_validation(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validated again instead of reading the snapshot")

    monkeypatch.setattr("batch_runner.config.validation.validate_document", no_validation)
    second = loader.load_config(path, project)
    assert second == first
    assert second.settings.lanes == {"default": 1, "http": 4, "slow": 2}
    assert second.settings.width("slow") == 2
    assert [j.lane for j in second.jobs] == ["http", "slow", "default"]


# --- config.lanes ------------------------------------------------------------------------------


def test_unknown_lane_is_none_for_a_configured_lane() -> None:
    assert unknown_lane({"default": 1, "http": 4}, "http") is None
    assert unknown_lane(["http"], "default") is None  # "default" always exists
    assert unknown_lane([], "default") is None


def test_unknown_lane_sentences() -> None:
    assert unknown_lane({"default": 1, "http": 4}, "htpp") == (
        'lane "htpp" is not configured (settings.lanes has: default, http); did you mean "http"?'
    )
    assert unknown_lane(["http"], "zzzz") == (
        'lane "zzzz" is not configured (settings.lanes has: default, http)'
    )
    assert unknown_lane([], 'a"b') == (
        'lane "a\\"b" is not configured (settings.lanes has: default)'
    )


def test_the_lane_name_pattern() -> None:
    import re

    for good in ("default", "http", "A-b_9", "x" * 64):
        assert re.fullmatch(LANE_NAME_PATTERN, good)
    for bad in ("a.b", "", "x" * 65, "a b", "caf\u00e9"):
        assert not re.fullmatch(LANE_NAME_PATTERN, bad)


def test_config_lanes_is_cheap_to_import() -> None:
    """It is on ``queue add``'s path: importing it loads nothing but itself."""
    code = (
        "import sys, batch_runner.config; before = set(sys.modules); "
        "import batch_runner.config.lanes; print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "['batch_runner.config.lanes']"


# --- the JSON Schema ---------------------------------------------------------------------------


def test_batch_runner_schema_has_both_keys(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("schema") == 0
    schema = json.loads(capsys.readouterr().out)
    lanes = schema["$defs"]["SettingsModel"]["properties"]["lanes"]
    assert lanes["type"] == "object" and lanes["additionalProperties"] is False
    [(pattern, width)] = lanes["patternProperties"].items()
    assert (width["type"], width["minimum"], width["maximum"]) == ("integer", 1, 64)
    for kind in ("CommandJob", "HttpJob"):
        lane = schema["$defs"][kind]["properties"]["lane"]
        assert (lane["type"], lane["pattern"], lane["default"]) == ("string", pattern, "default")


def _document(lanes: Any = None, lane: Any = None) -> dict[str, Any]:
    extra = {} if lane is None else {"lane": lane}
    document: dict[str, Any] = {"jobs": [job("a", "true", **extra)]}
    if lanes is not None:
        document["settings"] = {"lanes": lanes}
    return document


SCHEMA_AGREES = {
    "no lanes": (_document(), True),
    "widths": (_document({"default": 2, "http": 64, "A_b-9": 1}), True),
    "empty lanes": (_document({}), True),
    "a job in a lane": (_document({"http": 2}, "http"), True),
    "width 0": (_document({"http": 0}), False),
    "width 65": (_document({"http": 65}), False),
    "width 1.5": (_document({"http": 1.5}), False),
    "width as text": (_document({"http": "2"}), False),
    "width true": (_document({"http": True}), False),
    "name with a dot": (_document({"a.b": 1}), False),
    "empty name": (_document({"": 1}), False),
    "name too long": (_document({"x" * 65: 1}), False),
    "name with a newline": (_document({"http\n": 1}), False),
    "lanes a list": (_document(["http"]), False),
    "job lane with a dot": (_document({}, "a.b"), False),
    "job lane a number": (_document({}, 2), False),
    "job lane with a newline": (_document({"a": 1}, "a\n"), False),
}
# Only validate can judge these: they need the whole file.
SCHEMA_GAPS = {
    "sum over 256": _document({f"l{i}": 64 for i in range(4)}),
    "unconfigured job lane": _document({"http": 2}, "htpp"),
}


@pytest.mark.parametrize("name", sorted(SCHEMA_AGREES))
def test_the_schema_agrees_with_validate(tmp_path: Path, name: str) -> None:
    document, valid = SCHEMA_AGREES[name]
    assert _validate_accepts(tmp_path, document) is valid
    assert Draft202012Validator(json_schema()).is_valid(document) is valid


@pytest.mark.parametrize("name", sorted(SCHEMA_GAPS))
def test_what_only_validate_refuses(tmp_path: Path, name: str) -> None:
    document = SCHEMA_GAPS[name]
    assert not _validate_accepts(tmp_path, document)
    assert Draft202012Validator(json_schema()).is_valid(document)


def _validate_accepts(root: Path, document: dict[str, Any]) -> bool:
    path = root / "batch_config.json"
    path.write_text(json.dumps(document))
    return cli("-c", str(path), "--root", str(root), "validate") == 0
