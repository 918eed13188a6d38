"""Review of issue 19: what a failed commit in ``runs.handoff`` leaves behind.

A real drain (``drain_due`` in this process, real jobs, the real database); only the write of
an ended run's row fails once, as a full disk or an I/O error fails a commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import job, read_results, write_config

from batch_runner.config.loader import load_config
from batch_runner.errors import StorageError
from batch_runner.runs import handoff
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.drain import drain_due
from batch_runner.runs.queue import add, adhoc_spec
from batch_runner.state.slots import Slot


def test_a_failed_start_commit_leaves_the_reserved_run_recorded_with_its_attempt(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """first ends (its row waits); second starts from its reservation and, 20 ms in,
    ``Handoff.started`` marks it running and writes first's end in one commit, which fails
    (rolled back). ``started`` has already set ``run["reserved"] = False``, so second's end
    is written without its attempt, start and ``reserved_at``: a finished run of attempt 0."""
    config = load_config(write_config(project, [job("tick", "true")]), project)
    ctx = RunnerContext(config=config)
    first = add(ctx, adhoc_spec(["true"], 60.0))
    second = add(ctx, adhoc_spec(["sleep 1"], 60.0))  # runs past the 20 ms report
    third = add(ctx, adhoc_spec(["true"], 60.0))  # keeps a reservation after second's
    real = handoff.write_ended
    failed: list[str] = []

    def write_ended_failing_once(ctx: RunnerContext, ended: Any) -> Any:
        if not failed:
            failed.append(ended.run["run_id"])
            raise StorageError("cannot write the state database: database or disk is full")
        return real(ctx, ended)

    monkeypatch.setattr(handoff, "write_ended", write_ended_failing_once)
    slot = Slot(ctx.layout, "default", 0)
    assert slot.acquire()
    try:
        drain_due(ctx, None, slot)
    finally:
        slot.release()
    assert failed == [first]  # the fault did strike inside Handoff.started
    rows = {run_id: ctx.store.get_run(run_id) or {} for run_id in (first, second, third)}
    ctx.store.close()
    assert [rows[r]["status"] for r in (first, second, third)] == ["success"] * 3
    assert [r["attempt"] for r in read_results(project)] == [1, 1, 1]
    row = rows[second]
    assert (row["attempt"], row["reserved_at"]) == (1, None), (
        f"second ended success with attempt {row['attempt']} and reserved_at "
        f"{row['reserved_at']}: its start was rolled back, the flag that says so was not"
    )
    assert row["started_at"] is not None


def test_a_wide_lane_drain_appends_the_lines_a_full_disk_kept_back(project: Path) -> None:
    """A line kept back (a full disk, since freed) waits in the store; the runs drained next
    write their own lines, and (``finish`` says) the next runner that writes a line appends
    the waiting ones. A drain in a lane wider than one never calls ``Handoff.commit``, the
    only place its lines are looked for, and writes with ``waiting=False``: the kept line
    waits for as long as the drain goes on (a worker on a steady stream: for ever)."""
    from batch_runner.runs.finish import record_fields

    config = load_config(
        write_config(project, [job("tick", "true")], settings={"lanes": {"wide": 2}}), project
    )
    ctx = RunnerContext(config=config)
    kept = record_fields(
        ctx,
        job_name="old",
        start_time="2026-01-01T00:00:00+00:00",
        end_time="2026-01-01T00:00:01+00:00",
        status="success",
        run_id="kept-back",
        attempt=1,
    )
    ctx.store.remember_unwritten("kept-back", 1767225600.0, kept)
    ids = [add(ctx, adhoc_spec(["true"], 60.0), lane="wide") for _ in range(3)]
    slot = Slot(ctx.layout, "wide", 0)
    assert slot.acquire()
    try:
        drain_due(ctx, None, slot)
    finally:
        slot.release()
    statuses = [(ctx.store.get_run(i) or {}).get("status") for i in ids]
    waiting = ctx.store.has_unwritten()
    ctx.store.close()
    assert statuses == ["success"] * 3
    assert not waiting, "three runs wrote their lines; the kept-back line still waits"
    assert "kept-back" in [r["run_id"] for r in read_results(project)]
