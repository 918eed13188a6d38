"""Startup jobs (issue 20): queued once each time ``batch_runner scheduler`` starts, before any
other occurrence, never again until the next start (not on a reload), never when disabled.

And cron jobs through the plan's pure functions, with an injected ``now``: first occurrence,
the following one, jitter and the catch-up of a missed occurrence.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import job, read_results, write_config
from test_scheduler import Daemon, start, wait_for

from batch_runner.config.spec import JobSpec
from batch_runner.scheduling import plan

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def startup(name: str, command: str, **extra: object) -> dict[str, object]:
    return {"name": name, "command": command, "schedule_type": "startup", **extra}


def runs_of(root: Path, name: str) -> list[dict[str, object]]:
    return [r for r in read_results(root) if r["job_name"] == name]


def replace_config(path: Path, jobs: list[dict[str, object]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"jobs": jobs}))
    os.replace(tmp, path)


# --- the scheduler, as a real process ---------------------------------------------------------


def test_runs_once_per_scheduler_start_before_a_job_due_at_the_same_moment(
    project: Path, daemons: list[Daemon]
) -> None:
    order = project / "order"
    # Listed first, and due at once (catch_up, never ran): the startup job still goes first.
    write_config(
        project,
        [
            job("tick", f"echo tick >> {order}", catch_up=True),
            startup("boot", f"echo boot >> {order}"),
        ],
    )
    first = start(project, daemons)
    wait_for(lambda: len(runs_of(project, "tick")) == 1 and len(runs_of(project, "boot")) == 1)
    assert first.stop() == 0
    second = start(project, daemons)
    wait_for(lambda: len(runs_of(project, "boot")) == 2)
    assert second.stop() == 0
    assert order.read_text().split() == ["boot", "tick", "boot"]
    boots = runs_of(project, "boot")
    assert [(r["status"], r["trigger"]) for r in boots] == [("success", "schedule")] * 2
    assert all(r["scheduled_for"] for r in boots)
    assert "Traceback" not in first.text() + second.text()


def test_a_reload_runs_no_startup_job_not_even_a_new_one(
    project: Path, daemons: list[Daemon]
) -> None:
    config = write_config(project, [startup("boot", "true")])
    daemon = start(project, daemons)
    wait_for(lambda: len(runs_of(project, "boot")) == 1)
    # A marker due at once after the reload, in the same lane: had the reload queued a startup
    # run, it would be queued before the marker's, and done by the time the marker is.
    replace_config(
        config,
        [
            startup("boot", "true", description="edited"),
            startup("added", "true"),
            job("marker", "true", catch_up=True),
        ],
    )
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(runs_of(project, "marker")) == 1)
    assert (len(runs_of(project, "boot")), len(runs_of(project, "added"))) == (1, 0)
    assert "config reloaded" in daemon.text()
    assert daemon.stop() == 0
    # The next start runs both, the one the reload added among them.
    again = start(project, daemons)
    wait_for(lambda: len(runs_of(project, "added")) == 1 and len(runs_of(project, "boot")) == 2)
    assert again.stop() == 0


def test_a_disabled_startup_job_does_not_run(project: Path, daemons: list[Daemon]) -> None:
    write_config(
        project,
        [startup("boot", "true", enabled=False), job("marker", "true", catch_up=True)],
    )
    daemon = start(project, daemons)
    wait_for(lambda: len(runs_of(project, "marker")) == 1)
    assert daemon.stop() == 0
    assert runs_of(project, "boot") == []
    assert "2 jobs (1 enabled)" in daemon.text()


# --- the plan, pure -------------------------------------------------------------------------


def startup_spec(**extra: object) -> JobSpec:
    return JobSpec(name="boot", schedule_type="startup", schedule_time="", command="true", **extra)


def test_a_startup_occurrence_is_due_now_and_has_no_following_one() -> None:
    now = at("2026-05-01T10:00:00.0004")
    job = startup_spec(jitter=600.0)
    assert plan.is_startup(job)
    occurrence = plan.startup_occurrence(job, now)
    assert (occurrence.scheduled_for, occurrence.due) == (plan.whole_ms(now),) * 2
    assert occurrence.trigger == "schedule"
    firing = plan.firing(job, occurrence, now, 0.5)
    assert (firing.following, firing.next_run) == (None, None)
    assert firing.scheduled_for.startswith("2026-05-01T")
    assert plan.upcoming_runs(job, now, 5, None) == []


def cron_spec(expression: str, **extra: object) -> JobSpec:
    return JobSpec(
        name="cronjob",
        schedule_type="cron",
        schedule_time=expression,
        command="true",
        timezone="Europe/Berlin",
        **extra,
    )


def test_cron_occurrences_follow_the_expression_in_the_jobs_zone() -> None:
    job = cron_spec("30 7 * * 1-5")  # 2026-05-01 is a Friday
    first = plan.first_occurrence(job, at("2026-05-01T10:00:00"), 0.0)
    assert (first.scheduled_for, first.trigger) == (at("2026-05-04T07:30:00"), "schedule")
    following = plan.following_occurrence(job, first, first.due + 0.3, 0.0)
    assert following.scheduled_for == at("2026-05-05T07:30:00")
    assert plan.upcoming_runs(job, at("2026-05-01T10:00:00"), 2, None) == [
        at("2026-05-04T07:30:00"),
        at("2026-05-05T07:30:00"),
    ]


def test_cron_every_ten_minutes_never_fires_twice_for_one_occurrence() -> None:
    job = cron_spec("*/10 9-17 * * *")
    occurrence = plan.first_occurrence(job, at("2026-05-01T09:00:00"), 0.0)
    assert occurrence.scheduled_for == at("2026-05-01T09:10:00")
    times = []
    for _ in range(60):
        times.append(occurrence.scheduled_for)
        occurrence = plan.following_occurrence(job, occurrence, occurrence.due, 0.0)
    assert times[:3] == [
        at("2026-05-01T09:10:00"),
        at("2026-05-01T09:20:00"),
        at("2026-05-01T09:30:00"),
    ]
    assert times[52] == at("2026-05-01T17:50:00") and times[53] == at("2026-05-02T09:00:00")
    assert len(set(times)) == len(times)


def test_jitter_delays_a_cron_occurrence_like_a_daily_one() -> None:
    job = cron_spec("0 2 * * *", jitter=600.0)
    occurrence = plan.first_occurrence(job, at("2026-05-01T10:00:00"), 0.5)
    assert occurrence.scheduled_for == at("2026-05-02T02:00:00")
    assert occurrence.due == at("2026-05-02T02:05:00")


@pytest.mark.parametrize("catch_up", [True, False])
def test_a_missed_cron_occurrence_is_caught_up_once_only_with_catch_up(catch_up: bool) -> None:
    now = at("2026-05-01T10:00:00")
    job = cron_spec("0 2 * * *", catch_up=catch_up)
    stored = plan.first_occurrence(job, now, 0.0, stored_next=at("2026-05-01T02:00:00"))
    last = plan.first_occurrence(job, now, 0.0, last_run=at("2026-04-29T02:00:01"))
    for first in (stored, last):
        if catch_up:
            assert (first.trigger, first.due) == ("catch_up", now)
            following = plan.following_occurrence(job, first, now, 0.0)
            assert following.scheduled_for == at("2026-05-02T02:00:00")
        else:
            assert (first.trigger, first.scheduled_for) == ("schedule", at("2026-05-02T02:00:00"))
    recent = plan.first_occurrence(job, now, 0.0, last_run=at("2026-05-01T02:00:01"))
    assert recent.trigger == "schedule"
