"""The scheduler's planning rules, at chosen instants: no clock, no sleeps."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from batch_runner.config.spec import JobSpec
from batch_runner.scheduling import plan
from batch_runner.timefmt import iso, parse_iso

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, tz: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def interval(seconds: int, **extra) -> JobSpec:
    return JobSpec(
        name="tick", schedule_type="interval", schedule_time=str(seconds), command="true", **extra
    )


def daily(hhmm: str, **extra) -> JobSpec:
    return JobSpec(
        name="nightly",
        schedule_type="daily",
        schedule_time=hhmm,
        command="true",
        timezone="Europe/Berlin",
        **extra,
    )


def test_interval_first_run_is_one_period_after_start() -> None:
    now = at("2026-05-01T10:00:00")
    first = plan.first_occurrence(interval(600), now, 0.0)
    assert first.scheduled_for == now + 600
    assert first.trigger == "schedule"


def test_interval_counts_start_to_start_without_drift() -> None:
    start = at("2026-05-01T10:00:00")
    job = interval(60)
    occurrence = plan.first_occurrence(job, start, 0.0)
    for k in range(2, 2000):
        # Each firing happens a little late; the plan stays on the anchor's grid.
        fired_at = occurrence.due + 0.25
        occurrence = plan.following_occurrence(job, occurrence, fired_at, 0.0)
        assert occurrence.scheduled_for == start + k * 60


def test_missed_occurrences_are_not_replayed() -> None:
    start = at("2026-05-01T10:00:00")
    job = interval(60)
    first = plan.first_occurrence(job, start, 0.0)
    much_later = start + 3600 + 30  # e.g. the machine was suspended for an hour
    following = plan.following_occurrence(job, first, much_later, 0.0)
    assert following.scheduled_for == start + 61 * 60
    assert following.scheduled_for > much_later


def test_daily_next_run_follows_the_wall_clock() -> None:
    now = at("2026-05-01T10:00:00")
    first = plan.first_occurrence(daily("02:00"), now, 0.0)
    assert first.scheduled_for == at("2026-05-02T02:00:00")
    second = plan.following_occurrence(daily("02:00"), first, first.due, 0.0)
    assert second.scheduled_for == at("2026-05-03T02:00:00")


def test_daily_in_the_spring_forward_gap_runs_after_the_gap() -> None:
    now = at("2026-03-28T12:00:00")
    first = plan.first_occurrence(daily("02:30"), now, 0.0)
    assert first.scheduled_for == at("2026-03-29T03:00:00")


def test_jitter_delays_the_due_time_not_the_occurrence() -> None:
    now = at("2026-05-01T10:00:00")
    first = plan.first_occurrence(daily("02:00", jitter=120), now, 0.5)
    assert first.due == first.scheduled_for + 60


def test_jitter_adds_real_seconds_across_the_spring_forward_gap() -> None:
    now = at("2026-03-28T12:00:00")
    first = plan.first_occurrence(daily("01:59:50", jitter=60), now, 0.5)
    assert iso(first.scheduled_for) == iso(at("2026-03-29T01:59:50"))
    due = datetime.fromtimestamp(first.due, BERLIN)
    assert due.isoformat() == "2026-03-29T03:00:20+02:00"


@pytest.mark.parametrize("stored_offset, expect_catch_up", [(-3600, True), (3600, False)])
def test_catch_up_runs_once_when_an_occurrence_passed_while_down(
    stored_offset: int, expect_catch_up: bool
) -> None:
    now = at("2026-05-01T10:00:00")
    job = daily("02:00", catch_up=True)
    first = plan.first_occurrence(job, now, 0.0, stored_next=now + stored_offset)
    assert (first.trigger == "catch_up") is expect_catch_up
    if expect_catch_up:
        assert first.due == now
        following = plan.following_occurrence(job, first, now, 0.0)
        assert following.scheduled_for == at("2026-05-02T02:00:00")


def test_catch_up_from_last_run_when_no_plan_was_stored() -> None:
    now = at("2026-05-01T10:00:00")
    job = daily("02:00", catch_up=True)
    missed = plan.first_occurrence(job, now, 0.0, last_run=at("2026-04-29T02:00:05"))
    assert missed.trigger == "catch_up"
    fine = plan.first_occurrence(job, now, 0.0, last_run=at("2026-05-01T02:00:05"))
    assert fine.trigger == "schedule"


def test_without_catch_up_nothing_is_replayed() -> None:
    now = at("2026-05-01T10:00:00")
    first = plan.first_occurrence(daily("02:00"), now, 0.0, stored_next=now - 86400)
    assert first.trigger == "schedule" and first.scheduled_for > now


def test_interval_with_catch_up_that_never_ran_starts_at_once() -> None:
    now = at("2026-05-01T10:00:00")
    first = plan.first_occurrence(interval(300, catch_up=True), now, 0.0)
    assert first.trigger == "catch_up" and first.due == now
    following = plan.following_occurrence(interval(300, catch_up=True), first, now, 0.0)
    assert following.scheduled_for == now + 300


def test_unchanged_jobs_keep_their_plan() -> None:
    assert not plan.replan_for_change(daily("02:00"), daily("02:00", description="new words"))
    assert plan.replan_for_change(daily("02:00"), daily("03:00"))
    assert plan.replan_for_change(None, daily("02:00"))


def test_upcoming_runs_in_order_with_a_frozen_clock() -> None:
    with freeze_time("2026-10-24T12:00:00+00:00"):
        now = datetime.now(BERLIN).timestamp()
        times = plan.upcoming_runs(daily("02:30"), now, 3, None)
    # 2026-10-25 is the fall-back day in Berlin: 02:30 happens twice and runs once, at CEST.
    assert [datetime.fromtimestamp(t, BERLIN).isoformat() for t in times] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_upcoming_interval_continues_the_live_plan() -> None:
    now = at("2026-05-01T10:00:00")
    assert plan.upcoming_runs(interval(60), now, 2, now + 10) == [now + 10, now + 70]
    assert plan.upcoming_runs(interval(60), now, 2, None) == [now + 60, now + 120]


@pytest.mark.parametrize("fraction", [0.0, 0.0000004, 0.0004567, 0.9999996])
def test_due_times_are_whole_milliseconds_so_scheduled_for_is_recorded_exactly(
    fraction: float,
) -> None:
    # scheduled_for is recorded to the millisecond: a sub-millisecond due time would be
    # recorded up to 1 ms before the run was actually due.
    now = at("2026-05-01T10:00:00") + fraction
    whole = math.ceil(round(fraction * 1e6) / 1000) / 1000  # the fraction rounded up to 1 ms
    job = interval(1)
    occurrence = plan.first_occurrence(job, now, 0.0)
    assert occurrence.due == occurrence.scheduled_for
    assert occurrence.due == pytest.approx(at("2026-05-01T10:00:01") + whole, abs=1e-6)
    for _ in range(50):
        assert occurrence.due >= now
        assert parse_iso(iso(occurrence.scheduled_for)) == occurrence.scheduled_for
        assert occurrence.due == occurrence.scheduled_for
        previous, now = occurrence, occurrence.due + 0.0003
        occurrence = plan.following_occurrence(job, occurrence, now, 0.0)
        assert occurrence.scheduled_for == pytest.approx(previous.scheduled_for + 1, abs=1e-6)


def test_jitter_and_catch_up_due_times_are_whole_milliseconds() -> None:
    now = at("2026-05-01T10:00:00") + 0.0004567
    jittered = plan.first_occurrence(daily("02:00", jitter=120), now, 0.123456789)
    assert jittered.due == parse_iso(iso(jittered.due))
    assert jittered.scheduled_for + 120 * 0.123456789 <= jittered.due
    assert jittered.due < jittered.scheduled_for + 120 * 0.123456789 + 0.001
    caught_up = plan.first_occurrence(interval(300, catch_up=True), now, 0.0)
    assert caught_up.trigger == "catch_up"
    assert caught_up.due == caught_up.scheduled_for == at("2026-05-01T10:00:00.001")
    following = plan.following_occurrence(interval(300, catch_up=True), caught_up, now, 0.0)
    assert following.scheduled_for == at("2026-05-01T10:05:00.001")


def test_whole_ms_leaves_a_whole_millisecond_alone_despite_float_noise() -> None:
    for ms in (0, 1, 123, 999):
        ts = at("2026-05-01T10:00:00") + ms / 1000
        assert plan.whole_ms(ts) == ts
        assert plan.whole_ms(ts + 1e-7) == ts  # float noise, under a microsecond
        assert plan.whole_ms(ts + 2e-6) == pytest.approx(ts + 0.001, abs=1e-6)
