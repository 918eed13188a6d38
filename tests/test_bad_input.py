"""Bad input (SPEC 13): broken configs and bad command lines get one sentence, never a traceback.

A corpus of broken configs (truncations, byte flips, wrong types at every key, deep nesting,
huge numbers, NaN, bytes that are not UTF-8, ...): `validate` exits 78 and names the file.
Hypothesis mutates a valid document at random: the loader raises nothing but ConfigError.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, write_config
from fault_helpers import restore_logging
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_runner.cli.main import main
from batch_runner.config.loader import validate_file
from batch_runner.errors import EXIT_CONFIG, ConfigError

VALID: dict[str, Any] = {
    "jobs": [
        {
            "name": "hourly",
            "description": "d",
            "command": "echo hi",
            "schedule_type": "interval",
            "schedule_time": "1h",
            "enabled": True,
            "timeout": 60,
        },
        {
            "name": "daily",
            "command": ["cat", "/proc/uptime"],
            "schedule_type": "daily",
            "schedule_time": "07:00",
            "timeout": 60,
        },
        {
            "name": "weekly",
            "command": "true",
            "schedule_type": "weekly",
            "schedule_time": "sunday 03:30",
            "enabled": False,
        },
    ],
    "settings": {
        "log_dir": "logs",
        "default_timeout": 1800,
        "notify_after": 3,
        "retention_days": 30,
        "kill_grace": 1,
        "notifiers": [],
    },
}
VALID_TEXT = json.dumps(VALID, indent=2)
WRONG = {"x": [1]}  # an object: the wrong type for every key below


def _with(path: tuple[Any, ...], value: Any) -> str:
    document = copy.deepcopy(VALID)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(document, indent=2)


def corpus() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    data = VALID_TEXT.encode()
    rng = random.Random(1)
    for offset in sorted(rng.sample(range(1, len(data) - 1), 20)):
        cases.append((f"truncated at {offset}", data[:offset]))
    for i in range(10):
        at = rng.randrange(len(data))
        flipped = data[:at] + bytes([rng.choice((0, 0xFF))]) + data[at + 1 :]
        cases.append((f"flip {i} at {at}", flipped))
    for index, item in enumerate(VALID["jobs"][:1]):
        for key in item:
            wrong = _with(("jobs", index, key), WRONG).encode()
            cases.append((f"jobs[{index}].{key} wrong type", wrong))
    for key in VALID["settings"]:
        cases.append((f"settings.{key} wrong type", _with(("settings", key), [[WRONG]]).encode()))
    cases += [
        ("jobs not a list", _with(("jobs",), WRONG).encode()),
        ("settings not an object", _with(("settings",), [1]).encode()),
        ("empty object", b"{}"),
        ("empty file", b""),
        ("only a BOM", b"\xef\xbb\xbf"),
        ("BOM and garbage", b"\xef\xbb\xbf\x00garbage{"),
        ("UTF-16", VALID_TEXT.encode("utf-16")),
        ("latin-1", VALID_TEXT.replace('"d"', '"caf\u00e9"').encode("latin-1")),
        ("deeply nested list", b"[" * 200_000),
        ("deeply nested value", ('{"jobs": ' + "[" * 50_000 + "]" * 50_000 + "}").encode()),
        ("NaN", VALID_TEXT.replace('"timeout": 60', '"timeout": NaN', 1).encode()),
        ("Infinity", VALID_TEXT.replace('"timeout": 60', '"timeout": Infinity', 1).encode()),
        ("1e400", VALID_TEXT.replace('"timeout": 60', '"timeout": 1e400', 1).encode()),
        ("-1e400", VALID_TEXT.replace('"timeout": 60', '"timeout": -1e400', 1).encode()),
        ("10**30", VALID_TEXT.replace('"timeout": 60', f'"timeout": {10**30}', 1).encode()),
        ("10**5000", VALID_TEXT.replace('"timeout": 60', f'"timeout": {"9" * 5000}', 1).encode()),
        ("negative timeout", _with(("jobs", 0, "timeout"), -5).encode()),
        ("zero interval", _with(("jobs", 0, "schedule_time"), "0").encode()),
        ("huge interval", _with(("jobs", 0, "schedule_time"), "9" * 400).encode()),
        ("25:00", _with(("jobs", 1, "schedule_time"), "25:00").encode()),
        ("unknown schedule type", _with(("jobs", 0, "schedule_type"), "hourly").encode()),
        ("empty name", _with(("jobs", 0, "name"), "").encode()),
        ("name with a slash", _with(("jobs", 0, "name"), "a/b").encode()),
        ("duplicate names", _with(("jobs", 1, "name"), "hourly").encode()),
        ("empty command", _with(("jobs", 0, "command"), "").encode()),
        ("empty command list", _with(("jobs", 0, "command"), []).encode()),
        ("unknown key", _with(("jobs", 0, "shedule_time"), "1h").encode()),
        ("top-level list", b"[]"),
        ("top-level number", b"1"),
        ("two documents", (VALID_TEXT + VALID_TEXT).encode()),
        ("trailing garbage", data + b"\x00"),
        ("10,000 null jobs", b'{"jobs": [' + b"null," * 10_000 + b"null]}"),
    ]
    return cases


pytestmark = pytest.mark.usefixtures("restore_logging")
__all__ = ["restore_logging"]
CORPUS = corpus()
CORPUS_PARAMS = [pytest.param(name, data, id=name) for name, data in CORPUS] + [
    pytest.param(
        "NUL in command", _with(("jobs", 0, "command"), "echo \0").encode(), id="NUL in command"
    ),
    pytest.param(
        "NUL in argv", _with(("jobs", 1, "command"), ["cat", "a\0b"]).encode(), id="NUL in argv"
    ),
]


def test_the_corpus_is_big_and_the_valid_document_is_valid(tmp_path: Path) -> None:
    assert len(CORPUS) >= 50
    path = write_config(tmp_path, VALID["jobs"], settings=VALID["settings"])
    validate_file(path, tmp_path)


@pytest.mark.parametrize(("name", "data"), CORPUS_PARAMS)
def test_broken_configs_exit_78_with_the_path_and_no_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> None:
    path = project / "config" / "batch_config.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert main(["-c", str(path), "validate"]) == EXIT_CONFIG, name
    err = capsys.readouterr().err
    assert str(path) in err
    assert "Traceback" not in err
    with pytest.raises(ConfigError):
        validate_file(path, project)


def _mutations() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=10), children, max_size=4),
        ),
        max_leaves=10,
    )


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(VALID)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(PATHS), _mutations(), st.booleans()), min_size=1, max_size=4
    ),
    garble=st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.binary(max_size=4))),
)
def test_fuzzed_documents_raise_nothing_but_config_error(
    tmp_path: Path,
    changes: list[tuple[tuple[Any, ...], Any, bool]],
    garble: tuple[int, bytes] | None,
) -> None:
    document = copy.deepcopy(VALID)
    for path, value, delete in changes:
        target = document
        try:
            for key in path[:-1]:
                target = target[key]
            if delete:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    data = json.dumps(document, indent=2).encode()
    if garble is not None:
        at = garble[0] % (len(data) + 1)
        data = data[:at] + garble[1] + data[at + len(garble[1]) :]
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    try:
        validate_file(path, tmp_path)
    except ConfigError as exc:
        assert str(path) in str(exc) or "config" in str(exc)


# Bad command lines: a non-zero exit, one line on stderr, never a traceback.
BAD_ARGV: list[list[str | bytes]] = [
    ["frobnicate"],
    ["queue", "frobnicate"],
    ["queue", "show", "no-such-run"],
    ["queue", "show", "../../etc/passwd"],
    ["queue", "remove", "x" * 5000],
    ["queue", "stop", ""],
    ["run-job", "no-such-job"],
    ["queue", "add", "--at", "25:99", "--", "true"],
    ["queue", "add", "--at", "yesterday-ish", "--", "true"],
    ["queue", "add", "--at", "9999-99-99T99:99", "--", "true"],
    ["queue", "add", "--delay", "-5", "--", "true"],
    ["queue", "add", "--delay", "1e400", "--", "true"],
    ["queue", "add", "--priority", "NaN", "--", "true"],
    ["queue", "add", "--count", str(10**30), "--", "true"],
    ["queue", "add", "--timeout", "-1", "--", "true"],
    ["queue", "add", "--timeout", "inf", "--", "true"],
    ["queue", "add"],
    ["queue", "add", "--at", "2030-01-01", "10:00", "--", "echo", "x"],
    ["queue", "add", "--", ""],
    ["queue", "add", "echo", "hi"],
    ["queue", "add", "git", "diff", "--", "file"],
    ["queue", "add", "--", " ", "x"],
    ["history", "--limit", "-1"],
    ["history", "no-such-job"],
    ["queue", "clean", "--keep-days", str(10**30)],
    ["run-job", b"caf\xe9"],
    [b"\xff\xfe"],
]


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("badcli")
    write_config(
        root,
        [
            {
                "name": "quick",
                "command": "true",
                "schedule_type": "interval",
                "schedule_time": "3600",
            }
        ],
    )
    return root


BAD_ARGV_PARAMS = [pytest.param(a, id=repr(a)[:60]) for a in BAD_ARGV] + [
    pytest.param(
        ["queue", "add", "--priority", "99999999999999999999", "--", "true"], id="priority 10**20"
    ),
    pytest.param(["queue", "show", b"\xff\xfe"], id="run id not UTF-8"),
    pytest.param(["queue", "add", "--label", b"\xff", "--", "true"], id="label not UTF-8"),
]


@pytest.mark.parametrize("argv", BAD_ARGV_PARAMS)
def test_bad_command_lines_get_one_line_and_no_traceback(
    cli_root: Path, argv: list[str | bytes]
) -> None:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(cli_root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    args = [a if isinstance(a, bytes) else a.encode() for a in argv]
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"batch_runner", *args],
        capture_output=True,
        env=env,
        cwd=cli_root,
        timeout=30,
    )
    err = result.stderr.decode(errors="replace")
    assert result.returncode != 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no message on stderr"
    # argparse prints its usage then one "error:" line; everything else prints one line.
    assert len([line for line in lines if not line.startswith(("usage:", " "))]) == 1, err


def test_a_log_dir_that_is_a_file_gets_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    write_config(
        tmp_path,
        [
            {
                "name": "quick",
                "command": "true",
                "schedule_type": "interval",
                "schedule_time": "3600",
            }
        ],
        settings={"log_dir": "afile"},
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    for argv in (["status"], ["list"], ["history"]):
        result = subprocess.run(
            [sys.executable, "-m", "batch_runner", *argv],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=30,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: cannot use {tmp_path / 'afile'}/"), result.stderr
        assert len(result.stderr.splitlines()) == 1
