"""Recovery after a slot's runner died between an attempt's line and its row, or while it held
its next run ``reserved`` (issue 19).

The rows are put in each state with the store's own calls, the lines written as a runner
writes them; then ``reap_if_free`` finds the slot free (nobody holds it) and judges each run
from what the dead runner wrote: its line, its next attempt's run log, or nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import job, process_running, read_results, write_config
from notify_servers import capture_runner_log

from batch_runner.config.loader import load_config
from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.runs.context import RunnerContext, run_day
from batch_runner.runs.enqueue import enqueue_job
from batch_runner.runs.finish import finish_attempt, result_record
from batch_runner.runs.recovery import reap_if_free
from batch_runner.state import resultsearch
from batch_runner.state.results import append_result
from batch_runner.state.slots import Slot
from batch_runner.timefmt import day_stamp, iso, parse_iso

DEAD_PID = 2**22 + 17  # above any pid_max: the runner that wrote these rows is gone
SETTLE = 20.0
BACKOFF = 30.0


@pytest.fixture
def ctx(project: Path) -> Iterator[RunnerContext]:
    jobs = [job("tick", "true", max_attempts=3, backoff="fixed", backoff_seconds=BACKOFF)]
    config = load_config(write_config(project, jobs, settings={"kill_grace": 1}), project)
    context = RunnerContext(config=config)
    yield context
    context.store.close()


def queued(ctx: RunnerContext) -> str:
    job_spec = ctx.config.job("tick")
    assert job_spec is not None
    run_id = enqueue_job(ctx, job_spec, "manual")
    assert run_id is not None
    return run_id


def running(ctx: RunnerContext) -> dict[str, Any]:
    """A run of the job, queued and marked running by a runner now dead."""
    queued(ctx)
    return claimed(ctx)


def claimed(ctx: RunnerContext) -> dict[str, Any]:
    """The next run, marked running in slot 0 by a runner now dead."""
    run = ctx.store.claim_next(time.time(), DEAD_PID, ctx.host, lane="default", slot=0)
    assert run is not None
    return run


def reserved(ctx: RunnerContext) -> dict[str, Any]:
    (run,) = ctx.store.reserve_next(time.time(), DEAD_PID, ctx.host, lane="default", slot=0)
    assert run["status"] == "reserved"
    return run


def write_line(
    ctx: RunnerContext,
    run: dict[str, Any],
    status: str,
    *,
    attempt: int | None = None,
    started_at: float | None = None,
    exit_code: int | None = 0,
) -> dict[str, Any]:
    """The attempt's JSONL line, as its runner wrote it before it died."""
    attempt = run["attempt"] if attempt is None else attempt
    start = time.time() if started_at is None else started_at
    day = run_day(run["run_id"], start)
    run = {**run, "attempt": attempt, "log_file": ctx.layout.run_log(day, run["run_id"], attempt)}
    outcome = AttemptOutcome(
        status=status,
        exit_code=exit_code,
        error=None if status == "success" else f"{status}: exit code {exit_code}",
        output="out\n",
        output_truncated=False,
        started_at=start,
        ended_at=start + 0.25,
        pid=4242,
    )
    record = result_record(run, outcome, ctx)
    append_result(ctx.layout, record, start)
    return record


def lines_of(project: Path, run_id: str) -> list[dict[str, Any]]:
    return [r for r in read_results(project) if r["run_id"] == run_id]


def row(ctx: RunnerContext, run_id: str) -> dict[str, Any]:
    run = ctx.store.get_run(run_id)
    assert run is not None
    return run


def without_owner(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in ("owner_pid", "host", "slot")}


def next_log(ctx: RunnerContext, run: dict[str, Any]) -> Path:
    """The run log a reserved run's owner creates just before it spawns the next attempt."""
    day = run_day(run["run_id"], run["reserved_at"])
    path = Path(ctx.layout.run_log(day, run["run_id"], run["attempt"] + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


@pytest.fixture
def marked() -> Iterator[Any]:
    """Processes carrying a run's BATCH_RUN_ID, as its job would; killed and reaped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(run_id: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "BATCH_RUN_ID": run_id}
        started.append(
            subprocess.Popen(
                ["sleep", f"303.{uuid.uuid4().int % 10**6}"], env=env, start_new_session=True
            )
        )
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=SETTLE)


# --- a running run whose line was written -------------------------------------------------


def test_a_running_run_whose_line_was_written_is_recorded_from_it(
    ctx: RunnerContext,
    project: Path,
    marked: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its end is what the line says, with no second line; a daemon it left (its id in its
    environment) is spared, as the end of a successful run spares it."""
    capture_runner_log(caplog, monkeypatch)
    run = running(ctx)
    line = write_line(ctx, run, "success")
    daemon = marked(run["run_id"])
    assert reap_if_free(ctx) == 1
    now = row(ctx, run["run_id"])
    assert (now["status"], now["attempt"], now["exit_code"]) == ("success", 1, 0)
    assert now["output_tail"] == "out\n" and now["log_file"] == line["log_file"]
    assert [r["status"] for r in lines_of(project, run["run_id"])] == ["success"]
    state = ctx.store.job_state("tick")
    assert state is not None
    assert (state["last_status"], state["last_run"]) == ("success", line["start_time"])
    assert process_running(daemon.pid)
    (said,) = [r.getMessage() for r in caplog.records if run["run_id"] in r.getMessage()]
    assert "recorded from its result line" in said


def test_a_failed_line_with_attempts_left_leaves_a_retry_pending(
    ctx: RunnerContext, project: Path
) -> None:
    run = running(ctx)
    line = write_line(ctx, run, "error", exit_code=3)
    assert reap_if_free(ctx) == 1
    now = row(ctx, run["run_id"])
    assert (now["status"], now["attempt_status"], now["exit_code"]) == ("pending", "error", 3)
    ended = parse_iso(line["end_time"])
    assert now["due_at"] == pytest.approx(ended + BACKOFF, abs=0.01)
    assert ctx.store.job_state("tick") is None  # a retry follows: the job has not finished
    retry = ctx.store.claim_next(now["due_at"] + 1, DEAD_PID, ctx.host, lane="default", slot=0)
    assert retry is not None and (retry["run_id"], retry["attempt"]) == (run["run_id"], 2)
    assert [r["attempt"] for r in lines_of(project, run["run_id"])] == [1]


def test_a_line_kept_back_by_a_full_disk_counts_as_written(
    ctx: RunnerContext, project: Path
) -> None:
    run = running(ctx)
    record = result_record(
        {**run, "log_file": None},
        AttemptOutcome("success", 0, None, "", False, time.time(), time.time(), 4242),
        ctx,
    )
    ctx.store.remember_unwritten(run["run_id"], time.time(), record)
    # The day file cannot be written (here: a folder holds its name), as on a full disk.
    Path(ctx.layout.results_file(day_stamp(time.time()))).mkdir(parents=True)
    assert reap_if_free(ctx) == 1
    assert row(ctx, run["run_id"])["status"] == "success"
    assert [w["record"]["status"] for w in ctx.store.unwritten()] == ["success"]  # not twice


def test_a_running_run_without_its_line_is_interrupted_and_its_processes_killed(
    ctx: RunnerContext, project: Path, marked: Any
) -> None:
    """As before: a line of its earlier attempt is no line of this one."""
    run = running(ctx)
    write_line(ctx, run, "error", exit_code=1)
    ctx.store.update_run(run["run_id"], status="pending", due_at=0)
    run = claimed(ctx)
    assert run["attempt"] == 2
    child = marked(run["run_id"])
    assert reap_if_free(ctx) == 1
    assert (row(ctx, run["run_id"])["status"], row(ctx, run["run_id"])["attempt"]) == (
        "interrupted",
        2,
    )
    assert [(r["attempt"], r["status"]) for r in lines_of(project, run["run_id"])] == [
        (1, "error"),
        (2, "interrupted"),
    ]
    assert child.wait(timeout=SETTLE) == -signal.SIGTERM


def test_a_line_of_the_same_attempt_from_before_its_start_is_not_its_line(
    ctx: RunnerContext, project: Path
) -> None:
    """A line that started long before the row's attempt (an older database's run of that id
    and attempt) says nothing of this attempt."""
    run = running(ctx)
    write_line(ctx, run, "success", started_at=run["started_at"] - 3600)
    assert reap_if_free(ctx) == 1
    assert row(ctx, run["run_id"])["status"] == "interrupted"


# --- a reserved run -------------------------------------------------------------------------


def test_a_reserved_first_attempt_never_started_goes_back_to_the_queue(
    ctx: RunnerContext, project: Path
) -> None:
    run_id = queued(ctx)
    before = row(ctx, run_id)
    reserved(ctx)
    assert reap_if_free(ctx) == 1
    assert row(ctx, run_id) == before
    assert claimed(ctx)["attempt"] == 1  # taken again, as its first attempt
    assert lines_of(project, run_id) == []


def test_a_reserved_retry_never_started_goes_back_as_it_was(
    ctx: RunnerContext,
    project: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry here: its last attempt's details stay, and a line of that attempt is no line of
    the next one."""
    capture_runner_log(caplog, monkeypatch)
    run = running(ctx)
    now = time.time()
    failed = AttemptOutcome("error", 1, "error: exit code 1", "", False, now, now + 0.25, 4242)
    assert finish_attempt(ctx, {**run, "log_file": None}, failed)[0] == "pending"
    ctx.store.update_run(run["run_id"], due_at=0)
    before = row(ctx, run["run_id"])
    reserved(ctx)
    assert reap_if_free(ctx) == 1
    # Who ran its last attempt is forgotten (release_reserved clears it): nothing reads it.
    assert without_owner(row(ctx, run["run_id"])) == without_owner(before)
    assert [r["attempt"] for r in lines_of(project, run["run_id"])] == [1]
    (said,) = [r.getMessage() for r in caplog.records if "reserved" in r.getMessage()]
    assert run["run_id"] in said and "put back in the queue" in said


def test_a_reserved_run_whose_next_line_was_written_is_recorded_from_it(
    ctx: RunnerContext, project: Path
) -> None:
    run_id = queued(ctx)
    run = reserved(ctx)
    next_log(ctx, run)
    line = write_line(ctx, run, "success", attempt=1)
    assert reap_if_free(ctx) == 1
    now = row(ctx, run_id)
    assert (now["status"], now["attempt"], now["reserved_at"]) == ("success", 1, None)
    assert iso(now["started_at"]) == line["start_time"]
    assert [r["status"] for r in lines_of(project, run_id)] == ["success"]
    state = ctx.store.job_state("tick")
    assert state is not None and state["last_status"] == "success"


def test_a_reserved_run_whose_next_line_failed_leaves_its_retry_pending(
    ctx: RunnerContext, project: Path
) -> None:
    run_id = queued(ctx)
    run = reserved(ctx)
    next_log(ctx, run)
    write_line(ctx, run, "timeout", attempt=1, exit_code=None)
    assert reap_if_free(ctx) == 1
    now = row(ctx, run_id)
    assert (now["status"], now["attempt"], now["attempt_status"]) == ("pending", 1, "timeout")
    assert [r["attempt"] for r in lines_of(project, run_id)] == [1]


def test_a_reserved_run_whose_next_run_log_exists_is_interrupted_and_killed(
    ctx: RunnerContext, project: Path, marked: Any
) -> None:
    """Its owner died between the spawn and the commit of its start: the job may run, found
    by its id, and is ended with the run."""
    run_id = queued(ctx)
    run = reserved(ctx)
    log_path = next_log(ctx, run)
    child = marked(run_id)
    assert reap_if_free(ctx) == 1
    now = row(ctx, run_id)
    assert (now["status"], now["attempt"], now["reserved_at"]) == ("interrupted", 1, None)
    assert now["started_at"] == run["reserved_at"]
    assert now["log_file"] == str(log_path)
    assert "stopped as it started it" in now["error"]
    assert [(r["attempt"], r["status"]) for r in lines_of(project, run_id)] == [(1, "interrupted")]
    assert child.wait(timeout=SETTLE) == -signal.SIGTERM
    state = ctx.store.job_state("tick")
    assert state is not None and state["last_status"] == "interrupted"


def note_start(ctx: RunnerContext, run: dict[str, Any]) -> None:
    """What the dead owner wrote just before it spawned ``run``: its slot's note."""
    slot = Slot(ctx.layout, "default", 0)
    assert slot.acquire(wait=False)
    try:
        assert slot.note_start(run["run_id"], run["attempt"] + 1)
    finally:
        slot.release()


def test_a_reserved_run_its_slot_notes_as_started_is_interrupted_and_killed(
    ctx: RunnerContext, project: Path, marked: Any
) -> None:
    """Its owner died between the spawn and the run log (or the row's start): the note,
    written before the spawn, says it may run."""
    run_id = queued(ctx)
    run = reserved(ctx)
    note_start(ctx, run)
    child = marked(run_id)
    assert reap_if_free(ctx) == 1
    now = row(ctx, run_id)
    assert (now["status"], now["attempt"]) == ("interrupted", 1)
    assert [(r["attempt"], r["status"]) for r in lines_of(project, run_id)] == [(1, "interrupted")]
    assert child.wait(timeout=SETTLE) == -signal.SIGTERM


def test_a_reserved_run_noted_and_ended_is_recorded_from_its_line(
    ctx: RunnerContext, project: Path
) -> None:
    run_id = queued(ctx)
    run = reserved(ctx)
    note_start(ctx, run)
    write_line(ctx, run, "success", attempt=1)
    assert reap_if_free(ctx) == 1
    assert (row(ctx, run_id)["status"], row(ctx, run_id)["attempt"]) == ("success", 1)
    assert [r["status"] for r in lines_of(project, run_id)] == ["success"]


def test_a_note_of_another_run_or_attempt_is_no_start(ctx: RunnerContext) -> None:
    first, second = queued(ctx), queue_adhoc(ctx)
    taken = ctx.store.reserve_next(time.time(), DEAD_PID, ctx.host, lane="default", slot=0, limit=2)
    note_start(ctx, {**taken[0], "attempt": 5})  # an attempt it never reached
    assert reap_if_free(ctx) == 2
    assert (row(ctx, first)["status"], row(ctx, second)["status"]) == ("pending", "pending")


def test_of_two_runs_reserved_in_a_slot_only_the_one_with_a_run_log_had_started(
    ctx: RunnerContext, project: Path, marked: Any
) -> None:
    first, second = queued(ctx), queue_adhoc(ctx)
    taken = ctx.store.reserve_next(time.time(), DEAD_PID, ctx.host, lane="default", slot=0, limit=2)
    assert [r["run_id"] for r in taken] == [first, second]
    next_log(ctx, taken[0])
    child = marked(first)
    assert reap_if_free(ctx) == 2
    assert (row(ctx, first)["status"], row(ctx, second)["status"]) == ("interrupted", "pending")
    assert child.wait(timeout=SETTLE) == -signal.SIGTERM
    assert [r["run_id"] for r in read_results(project)] == [first]


def test_runs_in_a_slot_a_live_runner_holds_are_left_alone(
    ctx: RunnerContext, project: Path
) -> None:
    """Until the caller says it holds that slot itself (a runner whose own drain failed)."""
    ended = running(ctx)
    write_line(ctx, ended, "success")
    other = queue_adhoc(ctx)
    waiting = reserved(ctx)
    assert waiting["run_id"] == other
    live = Slot(ctx.layout, "default", 0)
    assert live.acquire(wait=False)
    try:
        assert reap_if_free(ctx) == 0
        assert row(ctx, ended["run_id"])["status"] == "running"
        assert row(ctx, other)["status"] == "reserved"
        assert reap_if_free(ctx, (live,)) == 2
    finally:
        live.release()
    assert row(ctx, ended["run_id"])["status"] == "success"
    assert row(ctx, other)["status"] == "pending"


def queue_adhoc(ctx: RunnerContext) -> str:
    from batch_runner.runs.queue import add, adhoc_spec

    return add(ctx, adhoc_spec(["true"], 60.0))


# --- the search itself ----------------------------------------------------------------------

T0 = 1_790_000_000.0  # a fixed instant (2026-09-21, mid-afternoon in most zones)


def filler(ctx: RunnerContext, count: int, start: float, *, output: str = "x" * 200) -> None:
    """``count`` lines of other runs, one a second from ``start``, written in one go to the
    file of ``T0``'s day (whatever day they fall on in the local zone)."""
    path = Path(ctx.layout.results_file(day_stamp(T0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        for i in range(count):
            record = {
                "job_name": "other",
                "start_time": iso(start + i),
                "end_time": iso(start + i + 0.5),
                "status": "success",
                "output": output,
                "run_id": f"other-{i:08d}",
                "attempt": 1,
            }
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def line_at(
    ctx: RunnerContext, run_id: str, start: float, attempt: int = 1, file_day: float | None = None
) -> dict[str, Any]:
    record = {
        "job_name": "tick",
        "start_time": iso(start),
        "end_time": iso(start + 1),
        "status": "success",
        "output": "",
        "run_id": run_id,
        "attempt": attempt,
    }
    append_result(ctx.layout, record, start if file_day is None else file_day)
    return record


def find(ctx: RunnerContext, run_id: str, since: float, **kw: Any) -> dict[str, Any] | None:
    return resultsearch.find_result(
        ctx.layout, ctx.store, run_id, kw.pop("attempt", 1), since, **kw
    )


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What the search reads from files, added up."""
    read: list[int] = [0]
    pread = os.pread

    def counted(fd: int, length: int, offset: int) -> bytes:
        data = pread(fd, length, offset)
        read[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", counted)
    return read


def test_a_miss_in_a_large_file_reads_only_its_end(
    ctx: RunnerContext, bytes_read: list[int]
) -> None:
    """A run killed mid-run has no line: the search stops past the lines that ended well
    before it began, instead of reading 50,000 lines (some 14 MB) back to the start."""
    filler(ctx, 50_000, T0 - 50_000)
    size = os.path.getsize(ctx.layout.results_file(day_stamp(T0)))
    began = time.perf_counter()
    assert find(ctx, "20260921-000000-abcdef", T0 - 5) is None
    assert time.perf_counter() - began < 5.0  # loose: a loaded machine; a full read is bounded too
    assert bytes_read[0] <= 8 * 65536 < size / 20


def test_a_line_is_found_anywhere_in_a_large_file_across_block_ends(
    ctx: RunnerContext,
) -> None:
    """Lines longer than a block, and a line at the very start, read back to it."""
    line_at(ctx, "wanted", T0 - 10_000, file_day=T0)
    filler(ctx, 3_000, T0 - 9_000, output="y" * 70_000)
    found = find(ctx, "wanted", T0 - 10_000)
    assert found is not None and found["start_time"] == iso(T0 - 10_000)


def test_a_torn_last_line_is_skipped(ctx: RunnerContext) -> None:
    line_at(ctx, "wanted", T0)
    path = Path(ctx.layout.results_file(day_stamp(T0)))
    torn = json.dumps({"start_time": iso(T0), "run_id": "wanted", "attempt": 1, "output": "z"})
    with path.open("a") as file:
        file.write(torn[: len(torn) // 2 + 20])  # past its id: it holds the needle
    found = find(ctx, "wanted", T0)
    assert found is not None and found["end_time"] == iso(T0 + 1)
    assert find(ctx, "wanted", T0, attempt=2) is None


def test_old_lines_appended_after_the_line_do_not_end_the_search(ctx: RunnerContext) -> None:
    """Lines a full disk kept back go out later with their older times."""
    line_at(ctx, "wanted", T0)
    filler(ctx, 100, T0 - 3600, output="k" * 1000)  # 100 KB of them: two blocks
    assert find(ctx, "wanted", T0) is not None


def test_the_line_may_be_in_a_later_days_file_but_not_in_an_earlier_one(
    ctx: RunnerContext,
) -> None:
    day_after = T0 + 86_400
    line_at(ctx, "wanted", day_after, attempt=2)
    line_at(ctx, "wanted", T0 - 86_400, attempt=3)
    found = find(ctx, "wanted", T0, attempt=2)
    assert found is not None and found["start_time"] == iso(day_after)
    assert find(ctx, "wanted", T0, attempt=2, until=T0 + 60) is None  # its log says: not then
    assert find(ctx, "wanted", T0, attempt=3) is None


def test_a_line_of_the_run_inside_another_record_is_not_its_line(ctx: RunnerContext) -> None:
    record = {
        "start_time": iso(T0),
        "end_time": iso(T0 + 1),
        "run_id": "other",
        "attempt": 1,
        "output": '"run_id": "wanted"',
        "response_headers": {"run_id": "wanted"},
    }
    append_result(ctx.layout, record, T0)
    assert find(ctx, "wanted", T0) is None


def test_a_miss_in_a_100_mb_file(ctx: RunnerContext, bytes_read: list[int]) -> None:
    """Not run by default (``BATCH_RUNNER_BIG=1``): the figure for the report."""
    if not os.environ.get("BATCH_RUNNER_BIG"):
        pytest.skip("set BATCH_RUNNER_BIG=1 to time a miss in a 100 MB file")
    filler(ctx, 330_000, T0 - 330_000, output="x" * 120)
    size = os.path.getsize(ctx.layout.results_file(day_stamp(T0)))
    ctx.store.has_unwritten()  # the database opened (created) before the clock starts
    for since, label in ((T0 - 5, "after every line"), (T0 - 330_000, "before every line")):
        bytes_read[0] = 0
        began = time.perf_counter()
        assert find(ctx, "20260921-000000-abcdef", since) is None
        took = time.perf_counter() - began
        print(
            f"{label}: {size / 1e6:.1f} MB file, {took * 1000:.1f} ms, {bytes_read[0]} bytes read"
        )
