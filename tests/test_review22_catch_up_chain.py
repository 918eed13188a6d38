"""Review of issue 22: after a ``catch_up`` run, an interval job's next run is lost to the chain.

``plan.following_occurrence`` counts the run after a catch-up from the catch-up's *due* time
(``anchor = previous.due``), but ``decide_occurrence`` recorded the catch-up under its
``scheduled_for`` (the missed occurrence): the scheduler's next occurrence is off the
database's grid, is refused (``decide_occurrence`` returns the chain's last occurrence),
nobody runs it, and the job is re-planned at the first grid point after *now*. One scheduler
alone: the run after a catch-up comes up to two intervals later instead of one (after an
outage of the database, ``_fire_later``'s retry is such a catch-up: the grid point in between
is run by no one).
"""

from __future__ import annotations

import signal
import time

import pytest
from cluster_hosts import Cluster
from conftest import job, wait_for

from batch_runner.timefmt import parse_iso

pytestmark = pytest.mark.slow

INTERVAL = 4.0


def test_the_run_after_a_catch_up_comes_one_interval_later(cluster: Cluster) -> None:
    jobs = [job("tick", "true", schedule_time=str(int(INTERVAL)), catch_up=True)]
    h1 = cluster.host("h1", jobs)
    first = h1.start("scheduler", log="first")
    wait_for(
        lambda: cluster.value("SELECT count(*) FROM batch_runner.runs WHERE status = 'success'"),
        timeout=30,
        interval=0.1,
    )
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    stored_next = parse_iso(
        cluster.value("SELECT next_run FROM batch_runner.job_plan WHERE job_name = 'tick'")
    )
    # Start again half an interval after the occurrence it missed: a catch-up, off the grid.
    wait_for(lambda: time.time() >= stored_next + INTERVAL / 2, timeout=30, interval=0.05)
    h1.start("scheduler", log="second")
    wait_for(
        lambda: (
            cluster.value(
                "SELECT count(*) FROM batch_runner.runs WHERE created_at > to_timestamp(%s)",
                stored_next,
            )
            >= 2
        ),
        timeout=30,
        interval=0.1,
    )
    rows = cluster.query(
        "SELECT trigger, extract(epoch FROM created_at) FROM batch_runner.runs "
        "WHERE created_at > to_timestamp(%s) ORDER BY seq",
        stored_next,
    )
    (trigger, caught_up), (_, following) = rows[0], rows[1]
    assert trigger == "catch_up", rows
    gap = float(following) - float(caught_up)
    assert gap < INTERVAL + 1.0, f"the run after the catch-up came {gap:.1f} s later: {rows}"
