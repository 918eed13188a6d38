"""Config validation: each bad input names its JSON path, its position and what is allowed."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from batch_runner.config.loader import validate_file
from batch_runner.config.schema import json_schema
from batch_runner.config.spec import JobSpec, Settings
from batch_runner.errors import EXIT_CONFIG, ConfigError

REPO = Path(__file__).resolve().parent.parent
GOOD_JOB = {"name": "j", "command": "true", "schedule_type": "daily", "schedule_time": "02:00"}


def job(**changes: Any) -> dict[str, Any]:
    """GOOD_JOB with changes; a value of ... removes the key."""
    merged = {**GOOD_JOB, **changes}
    return {k: v for k, v in merged.items() if v is not ...}


def config(*jobs: dict[str, Any], **top: Any) -> str:
    return json.dumps({"jobs": list(jobs) or [GOOD_JOB], **top}, indent=2)


def http_job(**changes: Any) -> dict[str, Any]:
    return job(**{"command": ..., "type": "http", "url": "https://example.com/x", **changes})


def notifier(**item: Any) -> str:
    return config(settings={"notifiers": [item]})


def check(tmp_path: Path, text: str | bytes) -> ConfigError:
    path = tmp_path / "batch_config.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        validate_file(path, tmp_path)
    assert info.value.exit_code == EXIT_CONFIG
    return info.value


# Whole-file problems: one sentence, no JSON path to show.
FILE_CASES = [
    ("empty", "", "the config file is empty"),
    ("whitespace only", " \n\t\n", "the config file is empty"),
    ("malformed", '{"jobs": [}', "line 1, column 11: the config file is not valid JSON"),
    (
        "trailing comma",
        '{\n  "jobs": [],\n}',
        "line 2, column 13: the config file is not valid JSON: a trailing comma",
    ),
    ("single quotes", "{'jobs': []}", "line 1, column 2: the config file is not valid JSON"),
    ("top level list", "[]", "the top level is a list; expected a JSON object"),
    ("top level string", '"jobs"', "the top level is a string"),
    ("top level null", "null", "the top level is null"),
    ("NaN", '{"jobs": [], "settings": {"kill_grace": NaN}}', "NaN is not valid JSON"),
    ("not UTF-8", b'{"jobs": [],\n "x": "\xff"}', "line 2, column 8: the config file is not UTF-8"),
    ("huge integer", '{"jobs": [], "x": ' + "9" * 5000 + "}", "cannot be read as JSON"),
    ("deep nesting", "[" * 100000 + "]" * 100000, "nested too deeply"),
    ("BOM then garbage", "\ufeff{", "line 1, column 2: the config file is not valid JSON"),
]


@pytest.mark.parametrize(
    ("text", "fragment"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
def test_file_level_problems(tmp_path: Path, text: str | bytes, fragment: str) -> None:
    error = check(tmp_path, text)
    assert fragment in str(error)
    assert str(tmp_path / "batch_config.json") in str(error)


# (id, config text, JSON path, words the problem line must contain)
CASES = [
    ("jobs missing", "{}", "jobs", 'required key "jobs" is missing'),
    ("jobs not a list", '{"jobs": {}}', "jobs", "expected a list"),
    ("job not an object", '{"jobs": [5]}', "jobs[0]", "found 5; expected an object"),
    (
        "misspelt key",
        config(job(schedule_time=..., schedul_time="02:00")),
        "jobs[0].schedul_time",
        'unknown key "schedul_time" (did you mean "schedule_time"?)',
    ),
    ("unknown key", config(job(zzz=1)), "jobs[0].zzz", "allowed keys: name, schedule_type"),
    (
        "misspelt value",
        config(job(schedule_type="dayly")),
        "jobs[0].schedule_type",
        'found "dayly"; expected one of "interval", "daily", "weekly", "cron", "startup" '
        '(did you mean "daily"?)',
    ),
    ("hour 25", config(job(schedule_time="25:00")), "jobs[0].schedule_time", '"25:00"'),
    ("minute 60", config(job(schedule_time="2:60")), "jobs[0].schedule_time", "HH:MM"),
    ("noon", config(job(schedule_time="noon")), "jobs[0].schedule_time", '"noon"'),
    ("daily number", config(job(schedule_time=200)), "jobs[0].schedule_time", "not a string"),
    (
        "funday",
        config(job(schedule_type="weekly", schedule_time="funday")),
        "jobs[0].schedule_time",
        'did you mean "sunday"?',
    ),
    (
        "weekly bad time",
        config(job(schedule_type="weekly", schedule_time="mon 25:00")),
        "jobs[0].schedule_time",
        '"25:00"',
    ),
    (
        "interval 0",
        config(job(schedule_type="interval", schedule_time=0)),
        "jobs[0].schedule_time",
        "more than 0 seconds",
    ),
    (
        "interval -5",
        config(job(schedule_type="interval", schedule_time="-5")),
        "jobs[0].schedule_time",
        '"-5"',
    ),
    (
        "interval abc",
        config(job(schedule_type="interval", schedule_time="abc")),
        "jobs[0].schedule_time",
        '"abc"',
    ),
    (
        "interval 5x",
        config(job(schedule_type="interval", schedule_time="5x")),
        "jobs[0].schedule_time",
        '"15m"',
    ),
    (
        "interval bool",
        config(job(schedule_type="interval", schedule_time=True)),
        "jobs[0].schedule_time",
        "found true",
    ),
    (
        "duplicate names",
        config(job(), job(command="false")),
        "jobs[1].name",
        'the job name "j" is already used by jobs[0]',
    ),
    (
        "duplicate key in a job",
        '{"jobs": [{"name": "j", "name": "k", "command": "true", '
        '"schedule_type": "daily", "schedule_time": "02:00"}]}',
        "jobs[0].name",
        "more than once",
    ),
    ("duplicate top-level key", '{"jobs": [], "jobs": []}', "jobs", "more than once"),
    ("bad name chars", config(job(name="a b")), "jobs[0].name", '"a b" is not a valid job name'),
    ("name too long", config(job(name="x" * 65)), "jobs[0].name", "1 to 64"),
    ("name empty", config(job(name="")), "jobs[0].name", "is not a valid job name"),
    (
        "name like an option",
        config(job(name="--help")),
        "jobs[0].name",
        '"--help" is not a valid job name: it must not start with "-", which run-job would take '
        'for an option (did you mean "help"?)',
    ),
    ("name only dashes", config(job(name="--")), "jobs[0].name", "is not a valid job name"),
    ("name number", config(job(name=5)), "jobs[0].name", "found 5; expected a string"),
    ("name missing", config(job(name=...)), "jobs[0].name", 'required key "name" is missing'),
    (
        "schedule_type missing",
        config(job(schedule_type=...)),
        "jobs[0].schedule_type",
        "is missing",
    ),
    ("command missing", config(job(command=...)), "jobs[0].command", "is missing"),
    ("command empty", config(job(command=" ")), "jobs[0].command", "expected a command line"),
    ("command empty list", config(job(command=[])), "jobs[0].command", "non-empty list"),
    ("command list of int", config(job(command=[1])), "jobs[0].command", "found [1]"),
    ("command object", config(job(command={"a": 1})), "jobs[0].command", "found {"),
    (
        "timeout 0",
        config(job(timeout=0)),
        "jobs[0].timeout",
        "found 0; expected a number greater than 0",
    ),
    ("timeout negative", config(job(timeout=-1)), "jobs[0].timeout", "found -1"),
    ("timeout bool", config(job(timeout=True)), "jobs[0].timeout", "found true; expected a number"),
    ("timeout string", config(job(timeout="30")), "jobs[0].timeout", 'found "30"'),
    (
        "timeout huge",
        '{"jobs": [{"name": "j", "command": "true", "schedule_type": "daily", '
        '"schedule_time": "02:00", "timeout": 1e999}]}',
        "jobs[0].timeout",
        "finite",
    ),
    (
        "enabled string",
        config(job(enabled="yes")),
        "jobs[0].enabled",
        'found "yes"; expected true or false',
    ),
    ("tags string", config(job(tags="a")), "jobs[0].tags", "expected a list"),
    ("env value int", config(job(env={"A": 1})), "jobs[0].env.A", "expected a string"),
    ("env bad name", config(job(env={"A=B": "1"})), "jobs[0].env", "environment variable"),
    (
        "unknown time zone",
        config(job(timezone="Mars/Olympus")),
        "jobs[0].timezone",
        '"Mars/Olympus" is not a known IANA time zone',
    ),
    (
        "misspelt time zone",
        config(job(timezone="Europe/Berln")),
        "jobs[0].timezone",
        'did you mean "Europe/Berlin"?',
    ),
    ("shell misspelt", config(job(shell="atuo")), "jobs[0].shell", 'did you mean "auto"?'),
    ("max_attempts 0", config(job(max_attempts=0)), "jobs[0].max_attempts", "at least 1"),
    ("max_attempts float", config(job(max_attempts=1.5)), "jobs[0].max_attempts", "an integer"),
    (
        "backoff misspelt",
        config(job(backoff="exponental")),
        "jobs[0].backoff",
        'did you mean "exponential"?',
    ),
    ("priority string", config(job(priority="high")), "jobs[0].priority", "an integer"),
    ("jitter negative", config(job(jitter=-1)), "jobs[0].jitter", "at least 0"),
    ("notify_after 0", config(job(notify_after=0)), "jobs[0].notify_after", "at least 1"),
    ("error_count negative", config(job(error_count=-1)), "jobs[0].error_count", "at least 0"),
    ("cwd empty", config(job(cwd="")), "jobs[0].cwd", "a non-empty string"),
    (
        "ping_url not a URL",
        config(job(ping_url="hc-ping.com/x")),
        "jobs[0].ping_url",
        "is not an http:// or https:// URL",
    ),
    ("type misspelt", config(job(type="htp")), "jobs[0].type", 'did you mean "http"?'),
    ("http job without url", config(http_job(url=...)), "jobs[0].url", "is missing"),
    (
        "http job with command",
        config(http_job(command="true")),
        "jobs[0].command",
        'does not apply to a job of type "http"',
    ),
    (
        "command job with url",
        config(job(url="https://x")),
        "jobs[0].url",
        'does not apply to a job of type "command"',
    ),
    ("http bad method", config(http_job(method="GOT")), "jobs[0].method", 'did you mean "GET"?'),
    ("http ftp url", config(http_job(url="ftp://x")), "jobs[0].url", "http:// or https://"),
    ("http params int", config(http_job(params={"a": 1})), "jobs[0].params.a", "a string"),
    ("settings not an object", config(settings=[]), "settings", "expected an object"),
    (
        "unknown settings key",
        config(settings={"log_dri": "x"}),
        "settings.log_dri",
        'did you mean "log_dir"?',
    ),
    (
        "default_timeout 0",
        config(settings={"default_timeout": 0}),
        "settings.default_timeout",
        "greater than 0",
    ),
    ("kill_grace bool", config(settings={"kill_grace": True}), "settings.kill_grace", "found true"),
    (
        "retention_days float",
        config(settings={"retention_days": 1.5}),
        "settings.retention_days",
        "an integer",
    ),
    (
        "notifiers not a list",
        config(settings={"notifiers": {}}),
        "settings.notifiers",
        "expected a list",
    ),
    (
        "notifier bad type",
        notifier(type="slack"),
        "settings.notifiers[0].type",
        'found "slack"; expected one of "command", "webhook", "email"',
    ),
    (
        "notifier misspelt type",
        notifier(type="webhok", url="https://x"),
        "settings.notifiers[0].type",
        'did you mean "webhook"?',
    ),
    (
        "notifier without type",
        notifier(url="https://x"),
        "settings.notifiers[0].type",
        'required key "type" is missing',
    ),
    (
        "email without to",
        notifier(type="email", smtp_host="h", **{"from": "a@b"}),
        "settings.notifiers[0].to",
        "is missing",
    ),
    (
        "email empty to",
        notifier(type="email", smtp_host="h", to=[], **{"from": "a@b"}),
        "settings.notifiers[0].to",
        "at least 1 item",
    ),
    (
        "email port",
        notifier(type="email", smtp_host="h", to=["x"], smtp_port=0, **{"from": "a"}),
        "settings.notifiers[0].smtp_port",
        "at least 1",
    ),
    ("webhook without url", notifier(type="webhook"), "settings.notifiers[0].url", "missing"),
    (
        "webhook misspelt key",
        notifier(type="webhook", url="https://x", timout=5),
        "settings.notifiers[0].timout",
        'did you mean "timeout"?',
    ),
    (
        "max_response_bytes 0",
        config(settings={"http": {"max_response_bytes": 0}}),
        "settings.http.max_response_bytes",
        "greater than 0",
    ),
    (
        "allow_hosts string",
        config(settings={"http": {"allow_hosts": "x"}}),
        "settings.http.allow_hosts",
        "expected a list",
    ),
    ("misspelt top level", config(setings={}), "setings", 'did you mean "settings"?'),
    (
        "last_run not a time",
        config(job(last_run="yesterday")),
        "jobs[0].last_run",
        'found "yesterday"; expected an ISO 8601 date and time',
    ),
    (
        "last_run before year 1",
        config(job(last_run="0001-01-01T00:00:00+01:00")),
        "jobs[0].last_run",
        "expected an ISO 8601 date and time",
    ),
    (
        "misspelt last_status",
        config(job(last_status="sucess")),
        "jobs[0].last_status",
        'did you mean "success"?',
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_config_names_path_and_problem(
    tmp_path: Path, text: str, path: str, fragment: str
) -> None:
    error = check(tmp_path, text)
    file = str(tmp_path / "batch_config.json")
    assert str(error).startswith(f"{file}: ") and "in the config" in str(error)
    lines = [p for p in error.problems if p.startswith(f"{file}: {path} (line ")]
    assert lines, error.render()
    assert any(fragment in line for line in lines), error.render()


def test_there_are_many_distinct_invalid_configs() -> None:
    assert len({c[1] for c in CASES}) + len(FILE_CASES) >= 35


POSITIONED = """\
{
  "jobs": [
    {"name": "a", "command": "true", "schedule_type": "daily", "schedule_time": "01:00"},
    {
      "name": "b",
      "command": "true",
      "schedule_type": "daily",
      "schedule_time": "25:00",
      "timeout": 0,
      "schedul_type": 1
    }
  ],
  "settings": {"notifiers": [{"type": "slack"}]}
}
"""


def test_every_problem_is_reported_at_once_with_line_and_column(tmp_path: Path) -> None:
    error = check(tmp_path, POSITIONED)
    file = str(tmp_path / "batch_config.json")
    assert str(error) == f"{file}: 4 problems in the config"
    assert [p.split(": ", 2)[1] for p in error.problems] == [
        "jobs[1].schedule_time (line 8, column 24)",
        "jobs[1].timeout (line 9, column 18)",
        "jobs[1].schedul_type (line 10, column 7)",
        "settings.notifiers[0].type (line 13, column 39)",
    ]
    assert error.problems[0] == (
        f'{file}: jobs[1].schedule_time (line 8, column 24): daily schedule_time "25:00" is not '
        'a time of day; use "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59)'
    )
    assert 'did you mean "schedule_type"?' in error.problems[2]
    assert error.render().count("\n") == 4


def test_three_problems_list_three(tmp_path: Path) -> None:
    text = config(
        job(timeout=0, enabled="no"), job(name="k", schedule_type="weekly", schedule_time="funday")
    )
    error = check(tmp_path, text)
    assert len(error.problems) == 3
    assert str(error).endswith(": 3 problems in the config")


def test_missing_key_points_at_its_object(tmp_path: Path) -> None:
    error = check(tmp_path, '{"jobs": [\n  {"name": "x"}\n]}')
    assert any("jobs[0].command (line 2, column 3)" in p for p in error.problems)


def test_missing_file_names_path_and_init(tmp_path: Path) -> None:
    path = tmp_path / "config" / "batch_config.json"
    with pytest.raises(ConfigError) as info:
        validate_file(path, tmp_path)
    assert str(path) in str(info.value)
    assert "batch_runner init" in str(info.value)
    assert info.value.exit_code == EXIT_CONFIG


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        validate_file(tmp_path, tmp_path)


# --- valid configs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["examples/original.json", "examples/full.json", "batch_config.json"]
)
def test_shipped_configs_validate(tmp_path: Path, name: str) -> None:
    config_spec = validate_file(REPO / "config" / name, tmp_path)
    assert config_spec.jobs


def test_original_format_loads_unchanged(tmp_path: Path) -> None:
    path = REPO / "config" / "examples" / "original.json"
    before = path.read_bytes()
    spec = validate_file(path, tmp_path)
    assert path.read_bytes() == before
    hourly, daily = spec.jobs
    assert (hourly.name, hourly.schedule_type, hourly.schedule_time) == (
        "hourly_detection",
        "interval",
        "3600",
    )
    assert hourly.command == "python main.py --mode single"
    assert (daily.schedule_time, daily.timeout, daily.error_count) == ("02:00", 1800.0, 0)


def test_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + config().encode())
    assert validate_file(path, tmp_path).jobs[0].name == "j"


def test_unknown_top_level_keys_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(config(_comment="kept", version=2))
    assert len(validate_file(path, tmp_path).jobs) == 1


def test_normalized_keys_are_exactly_the_spec_fields(tmp_path: Path) -> None:
    from batch_runner.config.validation import validate_document

    document = json.loads((REPO / "config" / "examples" / "full.json").read_text())
    normalized = validate_document("full.json", document, tmp_path)
    assert set(normalized) == {"settings", "jobs"}
    assert set(normalized["settings"]) == set(Settings._fields)
    for item in normalized["jobs"]:
        assert set(item) == set(JobSpec._fields)
    http = normalized["jobs"][-1]["http"]
    assert http == {
        "method": "POST",
        "url": "https://example.com/api/health",
        "headers": {"X-Request-Source": "batch_runner"},
        "params": {"verbose": "1"},
        "body": {"check": "all"},
    }
    assert json.loads(json.dumps(normalized)) == normalized


def test_job_defaults_come_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    settings = {
        "default_timeout": 60,
        "timezone": "Asia/Tokyo",
        "notify_after": 5,
        "ping_url": "https://hc.example/p",
        "log_dir": "var/logs",
    }
    path.write_text(
        config(
            job(),
            job(
                name="own",
                timeout=5.5,
                timezone="UTC",
                notify_after=1,
                ping_url="https://hc.example/own",
                cwd="work",
            ),
            settings=settings,
        )
    )
    inherited, own = validate_file(path, tmp_path).jobs
    assert (inherited.timeout, inherited.timezone, inherited.notify_after, inherited.ping_url) == (
        60.0,
        "Asia/Tokyo",
        5,
        "https://hc.example/p",
    )
    assert (own.timeout, own.timezone, own.notify_after, own.ping_url) == (
        5.5,
        "UTC",
        1,
        "https://hc.example/own",
    )
    assert own.cwd == str(tmp_path / "work") and inherited.cwd is None


def test_relative_log_dir_resolves_against_root_and_absolute_stays(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(config(settings={"log_dir": "var/logs"}))
    assert validate_file(path, tmp_path / "root").settings.log_dir == str(
        tmp_path / "root" / "var" / "logs"
    )
    path.write_text(config(settings={"log_dir": str(tmp_path / "abs")}))
    assert validate_file(path, tmp_path / "root").settings.log_dir == str(tmp_path / "abs")


@pytest.mark.parametrize(
    ("value", "text"),
    [(3600, "3600"), ("90s", "90s"), (1.5, "1.5"), (1e-05, "0.00001"), ("3600", "3600")],
)
def test_interval_may_be_number_or_string(tmp_path: Path, value: Any, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(config(job(schedule_type="interval", schedule_time=value)))
    assert validate_file(path, tmp_path).jobs[0].schedule_time == text


def test_json_int_is_fine_for_a_float_field(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(config(job(timeout=30, backoff_seconds=1, jitter=2)))
    spec = validate_file(path, tmp_path).jobs[0]
    assert (spec.timeout, spec.backoff_seconds, spec.jitter) == (30.0, 1.0, 2.0)
    assert isinstance(spec.timeout, float)


def test_json_schema(tmp_path: Path) -> None:
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] == "batch_runner config"
    assert schema["required"] == ["jobs"]
    assert schema["$defs"]["CommandJob"]["additionalProperties"] is False
    assert schema["$defs"]["CommandJob"]["properties"]["name"]["pattern"]
    assert "from" in schema["$defs"]["EmailNotifier"]["properties"]
    json.dumps(schema)


def test_original_last_run_without_offset_is_local_time(tmp_path: Path) -> None:
    # The original tool wrote datetime.now().isoformat(): local time, no offset.
    path = tmp_path / "c.json"
    path.write_text(config(job(last_run="2025-07-29T02:05:30.123456", last_status="timeout")))
    seeded = validate_file(path, tmp_path).jobs[0]
    expected = datetime(2025, 7, 29, 2, 5, 30, 123456).astimezone()
    assert datetime.fromisoformat(seeded.last_run) == expected
    assert datetime.fromisoformat(seeded.last_run).utcoffset() is not None
    assert seeded.last_status == "timeout"
