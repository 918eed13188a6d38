"""Issue 20 in the config: a startup job takes no schedule_time and no catch_up, every other
type still needs its schedule_time, and the JSON Schema knows cron, startup and disable_after.

Through ``batch_runner validate`` as a user runs it: exit 78, the JSON path, line and column.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from jsonschema import Draft202012Validator

from batch_runner.config.loader import validate_file
from batch_runner.config.schema import json_schema
from batch_runner.errors import EXIT_CONFIG


def startup_job(**changes: Any) -> dict[str, Any]:
    merged = {"name": "boot", "command": "true", "schedule_type": "startup", **changes}
    return {key: value for key, value in merged.items() if value is not ...}


def write(root: Path, *jobs: dict[str, Any]) -> Path:
    path = root / "config" / "batch_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": list(jobs)}, indent=2) + "\n")
    return path


def validate(root: Path) -> tuple[int, str, str]:
    done = run_cli(root, "validate")
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("schedule_time", [..., None, ""], ids=["omitted", "null", "empty"])
def test_a_startup_job_needs_no_schedule_time(project: Path, schedule_time: Any) -> None:
    path = write(project, startup_job(schedule_time=schedule_time))
    code, out, err = validate(project)
    assert (code, err) == (0, ""), err
    assert "valid, 1 job (1 enabled)" in out
    spec = validate_file(path, project).jobs[0]
    assert (spec.schedule_type, spec.schedule_time, spec.catch_up) == ("startup", "", False)


def test_a_startup_job_with_a_time_is_refused(project: Path) -> None:
    write(project, startup_job(schedule_time="02:00"))
    code, _, err = validate(project)
    assert code == EXIT_CONFIG
    assert "jobs[0].schedule_time (line 7, column 24): " in err
    assert '"02:00"' in err and "scheduler starts" in err
    assert "Traceback" not in err


def test_catch_up_on_a_startup_job_is_a_config_error_at_its_key(project: Path) -> None:
    write(project, startup_job(catch_up=True))
    code, _, err = validate(project)
    assert code == EXIT_CONFIG
    [problem] = [line for line in err.splitlines() if "jobs[0]" in line]
    assert "jobs[0].catch_up (line 7, column 19): " in problem
    assert "catch_up has no meaning" in problem and "scheduler starts" in problem
    assert "Traceback" not in err


def test_catch_up_false_on_a_startup_job_is_fine(project: Path) -> None:
    write(project, startup_job(catch_up=False))
    assert validate(project)[0] == 0


@pytest.mark.parametrize("kind", ["interval", "daily", "weekly", "cron"])
def test_other_types_still_need_schedule_time_with_the_same_message(
    project: Path, kind: str
) -> None:
    write(project, startup_job(schedule_type=kind))
    code, _, err = validate(project)
    assert code == EXIT_CONFIG
    assert 'jobs[0].schedule_time (line 3, column 5): required key "schedule_time" is missing' in (
        err
    )


@pytest.mark.parametrize("kind", ["interval", "daily", "weekly", "cron"])
def test_other_types_still_refuse_a_null_schedule_time(project: Path, kind: str) -> None:
    write(project, startup_job(schedule_type=kind, schedule_time=None))
    code, _, err = validate(project)
    assert code == EXIT_CONFIG
    assert "jobs[0].schedule_time (line 7, column 24): found null; expected a string" in err


def test_catch_up_is_fine_on_the_other_types(project: Path) -> None:
    write(project, startup_job(schedule_type="daily", schedule_time="02:00", catch_up=True))
    assert validate(project)[0] == 0


# --- the JSON Schema ------------------------------------------------------------------------


def test_schema_lists_the_new_types_and_disable_after() -> None:
    defs = json_schema()["$defs"]
    for name in ("CommandJob", "HttpJob"):
        properties = defs[name]["properties"]
        assert {"cron", "startup"} <= set(properties["schedule_type"]["enum"])
        assert "disable_after" in properties
        assert "schedule_time" not in defs[name]["required"]  # startup may leave it out
    assert "disable_after" in defs["SettingsModel"]["properties"]


def test_schema_rules_cover_every_schedule_type() -> None:
    defs = json_schema()["$defs"]
    kinds = defs["CommandJob"]["properties"]["schedule_type"]["enum"]
    for job in ("CommandJob", "HttpJob"):
        ruled = [rule["if"]["properties"]["schedule_type"]["const"] for rule in defs[job]["allOf"]]
        assert sorted(ruled) == sorted(kinds)
    for kind in kinds:
        assert f"{kind.title()}Time" in defs


def test_schema_disable_after_is_a_positive_integer_or_null() -> None:
    validator = Draft202012Validator(json_schema())
    good = {"jobs": [startup_job(disable_after=3)], "settings": {"disable_after": None}}
    assert validator.is_valid(good)
    for bad in (0, -1, 1.5, "3", True):
        assert not validator.is_valid({"jobs": [startup_job(disable_after=bad)]})
        assert not validator.is_valid({"jobs": [], "settings": {"disable_after": bad}})


# --- the schema next to validate (as tests/test_schema_corpus.py does for the older types) ---


def corpus_job(**changes: Any) -> dict[str, Any]:
    merged = {"name": "job", "command": "true", "schedule_type": "interval", "schedule_time": 60}
    return {"jobs": [{k: v for k, v in {**merged, **changes}.items() if v is not ...}]}


def cron(expression: Any) -> dict[str, Any]:
    return corpus_job(schedule_type="cron", schedule_time=expression)


BROKEN = {
    "startup at 02:00": startup_job(schedule_time="02:00"),
    "startup 0": startup_job(schedule_time=0),
    "startup false": startup_job(schedule_time=False),
    "startup catch_up": startup_job(catch_up=True),
    "cron without schedule_time": corpus_job(schedule_type="cron", schedule_time=...),
    "cron null": cron(None),
    "cron empty": cron(""),
    "cron number": cron(5),
    "cron four fields": cron("* * * *"),
    "cron six words": cron("0 7 * * 1-5 x"),
    "cron minute 60": cron("60 * * * *"),
    "cron funday": cron("0 7 * * funday"),
    "cron @reboot": cron("@reboot"),
    "cron @daily and more": cron("@daily 5"),
    "interval null": corpus_job(schedule_time=None),
    "interval empty": corpus_job(schedule_time=""),
    "interval catch_up number": corpus_job(catch_up=1),
    "disable_after 0": corpus_job(disable_after=0),
    "disable_after 1.5": corpus_job(disable_after=1.5),
    "disable_after text": corpus_job(disable_after="3"),
    "settings disable_after 0": {"jobs": [], "settings": {"disable_after": 0}},
    "settings disable_after true": {"jobs": [], "settings": {"disable_after": True}},
}
# Looser in the schema, as each field's values are the parser's to judge.
KNOWN_GAPS = {"cron minute 60", "cron funday", "cron @reboot"}
VALID = {
    "startup omitted": {"jobs": [startup_job()]},
    "startup null": {"jobs": [startup_job(schedule_time=None)]},
    "startup empty": {"jobs": [startup_job(schedule_time="")]},
    "startup blank": {"jobs": [startup_job(schedule_time=" \t\u3000")]},
    "startup catch_up false": {"jobs": [startup_job(catch_up=False, jitter=5)]},
    "interval catch_up": corpus_job(catch_up=True),
    "disable_after": corpus_job(disable_after=3),
    "disable_after null": corpus_job(disable_after=None),
    "settings disable_after": {"jobs": [], "settings": {"disable_after": 5}},
    "settings disable_after null": {"jobs": [], "settings": {"disable_after": None}},
    "cron weekdays": cron("30 7 * * 1-5"),
    "cron first of the month": cron("0 0 1 * *"),
    "cron working hours": cron("*/10 9-17 * * *"),
    "cron names": cron("0 9 * jan mon-fri"),
    "cron spaced": cron(" 0  9\t* * * "),
    "cron macro": cron("@daily"),
    "cron macro in capitals": cron(" @HOURLY "),
}


def _validate_accepts(document: dict[str, Any], tmp_path: Path) -> bool:
    from batch_runner.config.validation import validate_document
    from batch_runner.errors import ConfigError

    try:
        validate_document("corpus.json", document, str(tmp_path))
    except ConfigError:
        return False
    return True


@pytest.fixture(scope="module")
def schema_validator() -> Draft202012Validator:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_schema_refuses_what_validate_refuses(
    name: str, schema_validator: Draft202012Validator, tmp_path: Path
) -> None:
    document = BROKEN[name] if "jobs" in BROKEN[name] else {"jobs": [BROKEN[name]]}
    assert not _validate_accepts(document, tmp_path), "not broken"
    assert schema_validator.is_valid(document) == (name in KNOWN_GAPS)


@pytest.mark.parametrize("name", sorted(VALID))
def test_schema_accepts_what_validate_accepts(
    name: str, schema_validator: Draft202012Validator, tmp_path: Path
) -> None:
    document = VALID[name]
    assert _validate_accepts(document, tmp_path)
    assert not [e.message for e in schema_validator.iter_errors(document)]


def _cron_texts(rng: random.Random) -> Iterator[str]:
    good = ["*", "*/5", "0", "7", "1-5", "3,4", "0,30", "9-17/2", "1"]
    bad = ["@daily", "@HOURLY", "@reboot", "@x", "61", "L", "5#2", ",", "", "mon-fri", "JAN"]
    spaces = [" ", "  ", "\t", "\u3000", "\u2028", "\xa0"]
    for _ in range(3000):
        count = rng.choice([1, 4, 5, 5, 5, 5, 5, 6])
        words = [rng.choice(bad if rng.random() < 0.1 else good) for _ in range(count)]
        text = "".join(word + rng.choice(spaces) for word in words)
        yield rng.choice(["", " ", "\n"]) + text.rstrip() + rng.choice(["", " ", "\t"])


def _parses(kind: str, text: str | None) -> bool:
    from batch_runner import schedules

    try:
        schedules.parse_schedule(kind, text)
    except schedules.ScheduleError:
        return False
    return True


def test_cron_and_startup_patterns_never_refuse_what_parse_schedule_accepts() -> None:
    import re

    from batch_runner.config import schema_rules

    accepted = 0
    for text in _cron_texts(random.Random(20)):
        if _parses("cron", text):
            accepted += 1
            assert re.search(schema_rules.cron(), text), text
    assert accepted >= 200  # enough that the check means something
    for text in ["", " ", "\t\n", "\u3000\u2028", "\xa0"]:
        assert _parses("startup", text) and re.search(schema_rules.startup(), text)
    assert not _parses("startup", "x") and not re.search(schema_rules.startup(), " x ")
