"""Clock jumps (SPEC 6, 13): with an injected clock, a jump forward fires each job once (no
flood of the missed occurrences) and a jump back replans, so no job waits out the jump."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import job, write_config

from batch_runner.scheduling.daemon import Scheduler

T0 = 1_790_000_000.0  # a fixed instant (2026-09-21)
DAY = 86_400.0


class Clocks:
    def __init__(self) -> None:
        self.wall, self.mono = T0, 1000.0

    def advance(self, seconds: float, *, wall_jump: float = 0.0) -> None:
        self.mono += seconds
        self.wall += seconds + wall_jump


@pytest.fixture
def scheduler(project: Path) -> tuple[Scheduler, Clocks]:
    path = write_config(
        project,
        [
            job("minutely", "true", schedule_time="60"),
            job("hourly", "true", schedule_time="1h"),
            job("daily", "true", schedule_type="daily", schedule_time="03:00"),
        ],
    )
    clocks = Clocks()
    sched = Scheduler(
        path, project, clock=lambda: clocks.wall, rand=lambda: 0.0, monotonic=lambda: clocks.mono
    )
    sched._plan_all(start_up=True)
    return sched, clocks


def _next_due(sched: Scheduler) -> dict[str, float]:
    return {name: occurrence.due for name, occurrence in sched.plans.items()}


def test_a_jump_forward_by_a_day_fires_each_job_once(scheduler: tuple[Scheduler, Clocks]) -> None:
    sched, clocks = scheduler
    clocks.advance(1, wall_jump=DAY)
    sched.check_clock()
    # 1,440 minutely and 24 hourly occurrences were missed: each job fires once, not per miss.
    assert sched._fire_due(clocks.wall) == 3
    assert sched._fire_due(clocks.wall) == 0
    assert all(due > clocks.wall for due in _next_due(sched).values())
    clocks.advance(61)
    assert sched._fire_due(clocks.wall) == 1  # and then keeps going at its pace


def test_a_jump_back_by_a_day_replans_so_nothing_waits_it_out(
    scheduler: tuple[Scheduler, Clocks],
) -> None:
    sched, clocks = scheduler
    clocks.advance(1, wall_jump=-DAY)
    sched.check_clock()
    due = _next_due(sched)
    assert due["minutely"] <= clocks.wall + 60
    assert due["hourly"] <= clocks.wall + 3600
    assert due["daily"] <= clocks.wall + DAY
    clocks.advance(61)
    assert sched._fire_due(clocks.wall) >= 1  # the minutely job runs a minute later, not a day


def test_without_the_replan_a_jump_back_would_stall(scheduler: tuple[Scheduler, Clocks]) -> None:
    # The control: the plans made before the jump lie a day ahead of the new wall clock.
    sched, clocks = scheduler
    before = _next_due(sched)
    clocks.advance(1, wall_jump=-DAY)
    assert before["minutely"] > clocks.wall + DAY - 120
