"""Checks of HTTP jobs that need the environment: ``${VAR}`` references and ``allow_hosts``.

A reference to a variable that is not set is a config error (SPEC 11), reported here with the
JSON path of the string that holds it. This only runs on full validation; a config loaded from
the snapshot skips it, so the attempt resolves the references again and fails, naming the
variable, if one has gone missing since (``httpjob.prepare``). URLs are judged by
``net.urls``, as the attempt judges them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from batch_runner.config.problems import Problem
from batch_runner.net import envrefs, hosts
from batch_runner.net.urls import InvalidUrl, checked_host, host_of

_REFERENCING_KEYS = ("url", "headers", "params", "body")


def http_problems(
    document: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    check_variables: bool = True,
) -> list[Problem]:
    """Every unset variable an HTTP job refers to, and every job URL to a host the attempt
    would refuse: one not allowed, or one that is no clear host name or address.

    Without ``check_variables`` unset variables are not problems, and a URL that refers to
    one is not checked against ``allow_hosts`` (its host may come from the environment).
    """
    jobs = document.get("jobs")
    allow = _allow_hosts(document)
    problems: list[Problem] = []
    for index, job in enumerate(jobs if isinstance(jobs, list) else []):
        if isinstance(job, dict) and job.get("type") == "http":
            problems += _job_problems(("jobs", index), job, environ, allow, check_variables)
    return problems


def _job_problems(
    at: tuple[str | int, ...],
    job: Mapping[str, Any],
    environ: Mapping[str, str],
    allow: tuple[str, ...],
    check_variables: bool,
) -> list[Problem]:
    problems = []
    for path, text in _strings(job) if check_variables else ():
        for name in dict.fromkeys(envrefs.references(text)):
            if name not in environ:
                problems.append(Problem((*at, *path), _unset(name)))
    url = job.get("url")
    if problems or not isinstance(url, str):
        return problems
    if not check_variables and envrefs.references(url):
        return problems
    problem = _host_problem(envrefs.expand(url, environ, "the URL"), allow)
    return [Problem((*at, "url"), problem)] if problem else []


def _host_problem(url: str, allow: tuple[str, ...]) -> str | None:
    """Why the attempt would refuse the host of ``url`` (judged as ``httpjob.prepare`` does)."""
    try:
        host_of(url)
    except InvalidUrl:
        return None  # a malformed URL is reported by the model
    try:
        host = checked_host(url)
    except InvalidUrl as exc:
        return str(exc)
    return None if hosts.host_allowed(host, allow) else hosts.refusal(host)


def _unset(name: str) -> str:
    return (
        f'"${{{name}}}" refers to the environment variable {name}, which is not set where '
        "batch_runner runs"
    )


def _strings(job: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """The strings of a job where references are resolved, with their paths in the job."""
    for key in _REFERENCING_KEYS:
        value = job.get(key)
        if key in ("headers", "params"):
            # Only values: names are sent as written. Non-strings are reported by the model.
            value = _string_values(value)
        for path, text in envrefs.strings_of(value):
            yield (key, *path), text


def _string_values(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _allow_hosts(document: Mapping[str, Any]) -> tuple[str, ...]:
    settings = document.get("settings")
    http = settings.get("http") if isinstance(settings, dict) else None
    allow = http.get("allow_hosts") if isinstance(http, dict) else None
    if not isinstance(allow, list):
        return ()
    return tuple(pattern for pattern in allow if isinstance(pattern, str))
