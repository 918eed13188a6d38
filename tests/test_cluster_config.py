"""``settings.backend`` in the config (issue 22, SPEC section 14): the cluster's PostgreSQL.

The DSN itself never sits in the file, only the name of the environment variable holding it.
Real config files go through ``batch_runner validate`` (in process and as a user runs it);
the spec objects, the snapshot and the JSON Schema are checked directly.
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
from batch_runner.config.schema import json_schema
from batch_runner.config.spec import Backend
from batch_runner.errors import EXIT_CONFIG
from batch_runner.state.layout import LogLayout

SECRET = "hunter2-s3cret"


def validate(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``batch_runner validate`` in process: its exit code and its stderr."""
    code = cli("validate")
    return code, capsys.readouterr().err


def line_of(path: Path, fragment: str) -> int:
    lines = [n for n, text in enumerate(path.read_text().split("\n"), 1) if fragment in text]
    assert len(lines) == 1, lines
    return lines[0]


def with_backend(project: Path, backend: Any) -> Path:
    return write_config(project, [job("a", "true")], settings={"backend": backend})


def test_a_postgres_backend_is_accepted_and_reaches_the_spec(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_backend(project, {"type": "postgres", "dsn_env": "BR_DSN"})
    assert validate(capsys) == (0, "")
    backend = loader.validate_file(path, project).settings.backend
    assert backend == Backend(type="postgres", dsn_env="BR_DSN")
    assert (backend.type, backend.dsn_env) == ("postgres", "BR_DSN")


def test_without_a_backend_nothing_changes(project: Path) -> None:
    path = write_config(project, [job("a", "true")])
    assert loader.validate_file(path, project).settings.backend is None
    path = with_backend(project, None)  # null: the same as leaving it out
    assert loader.validate_file(path, project).settings.backend is None


def test_an_unknown_type_is_refused_where_it_is(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_backend(project, {"type": "postgresql", "dsn_env": "BR_DSN"})
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    line = line_of(path, '"postgresql"')
    assert (
        f'settings.backend.type (line {line}, column 15): found "postgresql"; '
        'expected one of "postgres" (did you mean "postgres"?)\n'
    ) in err
    assert "1 problem in the config" in err


def test_a_dsn_in_the_file_is_refused_without_echoing_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://batch:{SECRET}@db.example:5432/batch"
    path = with_backend(project, {"type": "postgres", "dsn": dsn, "dsn_env": "BR_DSN"})
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    line = line_of(path, '"dsn":')
    assert f"settings.backend.dsn (line {line}, column 14): a connection string does not " in err
    assert "use dsn_env" in err
    assert "1 problem in the config" in err
    assert SECRET not in err


def test_a_dsn_alone_says_both_what_to_drop_and_what_to_add(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_backend(project, {"type": "postgres", "dsn": f"host=db password={SECRET}"})
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    assert "settings.backend.dsn (line 13, column 14): a connection string does not " in err
    assert 'settings.backend.dsn_env (line 11, column 16): required key "dsn_env" is missing' in err
    assert SECRET not in err


def test_a_missing_dsn_env_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = with_backend(project, {"type": "postgres"})
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    line = line_of(path, '"backend"')
    assert (
        f'settings.backend.dsn_env (line {line}, column 16): required key "dsn_env" is missing\n'
    ) in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", 'found ""; expected the name of an environment variable'),
        ("BR-DSN", 'found "BR-DSN"; expected the name of an environment variable'),
        ("1DSN", 'found "1DSN"; expected the name of an environment variable'),
        (5, "found 5; expected a string"),
    ],
)
def test_a_bad_dsn_env_is_refused_where_it_is(
    project: Path, capsys: pytest.CaptureFixture[str], value: Any, message: str
) -> None:
    with_backend(project, {"type": "postgres", "dsn_env": value})
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    assert f"settings.backend.dsn_env (line 13, column 18): {message}" in err


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("postgres", 'settings.backend (line 11, column 16): found "postgres"; expected an object'),
        (
            {"dsn_env": "X"},
            'settings.backend.type (line 11, column 16): required key "type" is missing',
        ),
        (
            {"type": "postgres", "dsn_evn": "X"},
            'settings.backend.dsn_evn (line 13, column 7): unknown key "dsn_evn" '
            '(did you mean "dsn_env"?)',
        ),
    ],
)
def test_other_shapes_are_refused_in_one_sentence(
    project: Path, capsys: pytest.CaptureFixture[str], backend: Any, message: str
) -> None:
    with_backend(project, backend)
    code, err = validate(capsys)
    assert code == EXIT_CONFIG
    assert message in err
    assert err.count("\n  ") == 1 + ("dsn_evn" in message), err  # one problem (two: no dsn_env)


def test_validate_as_a_user_runs_it(project: Path) -> None:
    with_backend(project, {"type": "postgres", "dsn_env": "BR_DSN"})
    result = run_cli(project, "validate")
    assert result.returncode == 0, result.stderr
    assert "valid, 1 job" in result.stdout


# --- the snapshot ------------------------------------------------------------------------------


def test_the_snapshot_carries_the_backend_and_is_rebuilt_without_pydantic(project: Path) -> None:
    path = with_backend(project, {"type": "postgres", "dsn_env": "BR_DSN"})
    assert run_cli(project, "validate").returncode == 0
    snapshot = json.loads(Path(LogLayout(str(project / "logs")).config_snapshot).read_text())
    assert snapshot["config"]["settings"]["backend"] == {"type": "postgres", "dsn_env": "BR_DSN"}
    # In a fresh process, from the snapshot alone: pydantic never imported.
    code = (
        "import sys, json\n"
        "from batch_runner.config import loader\n"
        f"source = loader.read_source({str(path)!r})\n"
        f"key = loader._snapshot_key(source, {str(project)!r})\n"
        f"found = loader.snapshot_config({str(project / 'logs')!r}, {str(path)!r}, "
        f"{str(project)!r}, key)\n"
        "print(json.dumps([found[0].settings.backend._asdict(), 'pydantic' in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO)},
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"type": "postgres", "dsn_env": "BR_DSN"}, False]


def test_a_snapshot_without_a_backend_rebuilds_to_none(project: Path) -> None:
    path = write_config(project, [job("a", "true")])
    loader.validate_file(path, project)
    source = loader.read_source(str(path))
    found = loader.snapshot_config(
        str(project / "logs"), str(path), str(project), loader._snapshot_key(source, str(project))
    )
    assert found is not None
    assert found[0].settings.backend is None


# --- the JSON Schema ---------------------------------------------------------------------------


def test_batch_runner_schema_has_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("schema") == 0
    schema = json.loads(capsys.readouterr().out)
    backend = schema["$defs"]["SettingsModel"]["properties"]["backend"]
    [ref] = [branch["$ref"] for branch in backend["anyOf"] if "$ref" in branch]
    model = schema["$defs"][ref.rsplit("/", 1)[1]]
    assert set(model["properties"]) == {"type", "dsn_env"}
    assert sorted(model["required"]) == ["dsn_env", "type"]
    assert model["additionalProperties"] is False


@pytest.mark.parametrize(
    ("backend", "valid"),
    [
        ({"type": "postgres", "dsn_env": "BR_DSN"}, True),
        (None, True),
        ({"type": "postgres", "dsn_env": "BR_DSN", "dsn": "postgresql://x"}, False),
        ({"type": "mysql", "dsn_env": "BR_DSN"}, False),
        ({"type": "postgres"}, False),
        ({"type": "postgres", "dsn_env": "BR-DSN"}, False),
        ({"type": "postgres", "dsn_env": "BR_DSN\n"}, False),
    ],
)
def test_the_schema_agrees_with_validate(tmp_path: Path, backend: Any, valid: bool) -> None:
    path = with_backend(tmp_path, backend)
    document = json.loads(path.read_text())
    assert Draft202012Validator(json_schema()).is_valid(document) is valid
    try:
        loader.validate_file(path, tmp_path)
    except Exception:
        assert not valid
    else:
        assert valid
