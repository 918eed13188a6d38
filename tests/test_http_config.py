"""HTTP jobs in the config: ``${VAR}`` references, ``allow_hosts``, and the pieces behind them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import read_results, run_cli, write_config

from batch_runner.config.spec import HttpSettings, Settings
from batch_runner.httpjob.masking import describe, masked_spec
from batch_runner.net import envrefs
from batch_runner.net.hosts import host_allowed
from batch_runner.net.secrets import Scrubber, mask_headers, masked_values, safe_url, url_password
from batch_runner.net.urls import HTTP_METHODS, InvalidUrl, endpoint, host_of


def http_job(name: str = "api", url: str = "http://127.0.0.1:9/x", **extra: Any) -> dict:
    return {
        "name": name,
        "type": "http",
        "url": url,
        "schedule_type": "interval",
        "schedule_time": "3600",
        **extra,
    }


# --- ${VAR} at validation -------------------------------------------------------------------


def test_validate_reports_every_missing_variable_with_its_path(project: Path) -> None:
    write_config(
        project,
        [
            http_job(
                url="https://${API_HOST}/v1",
                headers={"Authorization": "Bearer ${API_TOKEN}"},
                params={"k": "${API_KEY}"},
                body={"auth": {"token": "${API_TOKEN}"}, "n": 1},
            )
        ],
    )
    result = run_cli(project, "validate", env={"API_HOST": "127.0.0.1"})
    assert result.returncode == 78
    problems = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(problems) == 3
    assert "jobs[0].headers.Authorization" in problems[0] and "API_TOKEN" in problems[0]
    assert "jobs[0].params.k" in problems[1] and "API_KEY" in problems[1]
    assert "jobs[0].body.auth.token" in problems[2]
    assert "line" in problems[0]  # positions too, like every other problem


def test_validate_passes_when_the_variables_are_set(project: Path) -> None:
    write_config(
        project, [http_job(headers={"X-Api-Key": "${API_KEY}"}, body="literal $${NOT_A_REFERENCE}")]
    )
    result = run_cli(project, "validate", env={"API_KEY": "k"})
    assert result.returncode == 0, result.stderr


def test_run_job_refuses_a_config_with_a_missing_variable(project: Path) -> None:
    write_config(project, [http_job(headers={"X-Api-Key": "${API_KEY}"})])
    result = run_cli(project, "run-job", "api")
    assert result.returncode == 78
    assert "API_KEY" in result.stderr
    assert read_results(project) == []


def test_a_variable_gone_since_validation_fails_the_attempt_naming_it(project: Path) -> None:
    # The first load validates and caches the config; the second takes the cached snapshot,
    # which skips validation: the attempt itself must notice.
    write_config(project, [http_job(headers={"X-Api-Key": "${API_KEY}"})])
    assert run_cli(project, "validate", env={"API_KEY": "k"}).returncode == 0
    result = run_cli(project, "run-job", "api")
    assert result.returncode == 1
    [record] = read_results(project)
    assert record["status"] == "error"
    assert record["error"] == (
        "the environment variable API_KEY is not set (used in the header X-Api-Key)"
    )


def test_edits_do_not_need_the_variables_of_the_shell_they_run_in(project: Path) -> None:
    # The scheduler's unit sets API_KEY; the operator's shell does not. Editing still works,
    # with a warning, and nothing else in the file changes.
    write_config(
        project,
        [
            http_job(headers={"X-Api-Key": "${API_KEY}"}),
            {
                "name": "other",
                "command": "true",
                "schedule_type": "interval",
                "schedule_time": "60",
            },
        ],
    )
    result = run_cli(project, "disable", "other")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "API_KEY" in result.stderr
    jobs = json.loads((project / "config" / "batch_config.json").read_text())["jobs"]
    assert [job.get("enabled", True) for job in jobs] == [True, False]
    assert jobs[0]["headers"] == {"X-Api-Key": "${API_KEY}"}
    added = run_cli(
        project, "add", "third", "true", "--type", "interval", "--time", "60", env={"API_KEY": "k"}
    )
    assert added.returncode == 0, added.stderr
    assert "warning" not in added.stderr


def test_edits_still_refuse_a_literal_host_outside_allow_hosts(project: Path) -> None:
    write_config(
        project,
        [
            http_job(url="https://ok.example.com/${PATH_PART}"),
            http_job("evil", url="https://evil.example.org/"),
        ],
        settings={"http": {"allow_hosts": ["*.example.com"]}},
    )
    result = run_cli(project, "disable", "api")
    assert result.returncode == 78
    assert "evil.example.org is not in settings.http.allow_hosts" in result.stderr


def test_validate_reports_a_job_url_outside_allow_hosts(project: Path) -> None:
    write_config(
        project,
        [http_job(url="https://evil.example.org/")],
        settings={"http": {"allow_hosts": ["*.example.com"]}},
    )
    result = run_cli(project, "validate")
    assert result.returncode == 78
    assert "jobs[0].url" in result.stderr
    assert "evil.example.org is not in settings.http.allow_hosts" in result.stderr


# --- the pieces -----------------------------------------------------------------------------


def test_references_and_expansion() -> None:
    assert envrefs.references("a ${X} b ${Y_2} $${Z} $W") == ["X", "Y_2"]
    assert envrefs.expand("${X}-$${X}", {"X": "1"}) == "1-${X}"
    with pytest.raises(envrefs.MissingVariable) as caught:
        envrefs.expand("${X}", {}, "the URL")
    assert caught.value.name == "X"
    assert str(caught.value) == "the environment variable X is not set (used in the URL)"
    expander = envrefs.Expander({"X": "v", "Y": "w"})
    expanded = expander.json({"k${X}": ["${X}", 1, None, "$${Y}"]}, "the body")
    assert expanded == {"k${X}": ["v", 1, None, "${Y}"]}
    assert expander.text("${Y}${X}", "the URL") == "wv"
    assert expander.used == ["v", "w", "v"]  # every value put in, for the caller to scrub
    with pytest.raises(envrefs.MissingVariable, match=r"^the environment variable Z is not set"):
        envrefs.lookup("Z", {}, "password_env")


def test_urls_and_methods_shared_by_config_queue_and_attempt() -> None:
    assert HTTP_METHODS == ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    assert host_of("https://u:p@API.example.com:8443/x") == "api.example.com"
    with pytest.raises(InvalidUrl) as bad:
        host_of("ftp://u:p@h.example/")
    assert str(bad.value) == (
        "invalid URL ftp://***@h.example/: expected http:// or https:// and a host"
    )
    with pytest.raises(InvalidUrl, match=r"^invalid URL https://h\.example:x/: "):
        host_of("https://h.example:x/")
    assert endpoint("https://h.example/x") == ("h.example", 443)
    assert endpoint("http://[::1]:8080/") == ("::1", 8080)


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("api.example.com", [], True),
        ("api.example.com", ["api.example.com"], True),
        ("API.Example.COM.", ["api.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("badexample.com", ["*.example.com"], False),
        ("127.0.0.1", ["127.0.0.1"], True),
        ("127.0.0.2", ["127.0.0.1"], False),
        ("::1", ["[::1]"], True),
    ],
)
def test_allow_hosts_patterns(host: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(host, patterns) is allowed


def test_url_credentials_are_masked() -> None:
    assert safe_url("https://u:p@h.example/x?y=1") == "https://***@h.example/x?y=1"
    assert safe_url("https://u:p@ss@h.example/") == "https://***@h.example/"
    assert safe_url("https://h.example/a@b") == "https://h.example/a@b"


def test_header_masking_is_case_insensitive_and_covers_twins() -> None:
    masked = mask_headers(
        {"authorization": "x", "X-API-KEY": "y", "Set-Cookie": "z", "Accept": "a"},
        ("Authorization", "Cookie", "X-Api-Key"),
    )
    assert masked == {
        "authorization": "***",
        "X-API-KEY": "***",
        "Set-Cookie": "***",
        "Accept": "a",
    }


def test_masked_spec_is_a_safe_copy() -> None:
    spec = {
        "type": "http",
        "timeout": 5,
        "http": {
            "method": "POST",
            "url": "https://u:pw@api.example.com/x",
            "headers": {"Authorization": "Bearer abc", "X-Custom": "${TOKEN}", "Accept": "*/*"},
            "params": {},
            "body": None,
        },
    }
    settings = Settings(log_dir="/tmp", http=HttpSettings(mask_headers=("Authorization",)))
    shown = masked_spec(spec, settings)
    assert shown["http"]["headers"] == {
        "Authorization": "***",
        "X-Custom": "${TOKEN}",
        "Accept": "*/*",
    }
    assert shown["http"]["url"] == "https://***@api.example.com/x"
    assert spec["http"]["headers"]["Authorization"] == "Bearer abc"  # the original is untouched
    assert describe(spec) == "POST https://***@api.example.com/x"
    assert masked_spec({"type": "command", "command": "ls"}, settings) == {
        "type": "command",
        "command": "ls",
    }


def test_secret_values_of_headers_and_urls() -> None:
    headers = {"authorization": "Bearer t", "Set-Cookie": "s=1", "Accept": "*/*", "Cookie": ""}
    assert masked_values(headers, ("Authorization", "Cookie")) == ["Bearer t", "s=1"]
    assert url_password("https://u:p%40ss-word@h.example/") == ["p%40ss-word", "p@ss-word"]
    assert url_password("https://u@h.example/") == []
    assert url_password("https://h.example/a@b") == []


def test_scrubber_removes_sent_secrets_from_what_came_back() -> None:
    scrub = Scrubber(["Bearer tok-abcdef", "sid=s3cr3t-cookie; theme=dark", "ab"])
    assert scrub.text("got Bearer tok-abcdef and tok-abcdef") == "got *** and ***"
    assert scrub.json({"c": ["s3cr3t-cookie"], "short": "ab", "t": "dark"}) == {
        "c": ["***"],
        "short": "ab",
        "t": "dark",
    }
    assert json.dumps(scrub.json({"tok-abcdef": 1})) == '{"***": 1}'
    # Empty and absent values (an unset password) are no secrets; 2 characters are too short,
    # 3 are enough (a 3-character password or key was masked in notices before, and still is).
    assert Scrubber([None, "", "ab"]).text("ab and more") == "ab and more"
    assert Scrubber(["abc"]).text("abc and more") == "*** and more"
