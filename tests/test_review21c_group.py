"""Second outside review of issue 21 (after 609a7a9): the service's writer thread and its group
commit (``web/service.py``), on an in-process ``Service`` with its real SQLite state.

Findings:
- The answer shared with the changes queued behind a refused one (``Service._refused``) is
  meant for a state database that cannot be written (locked past the wait, full, damaged); any
  ``StorageError`` that is not a constraint's is shared, so a cancel whose result line cannot be
  appended (the day's results file unwritable, the state database fine) refuses every run
  queued meanwhile with a sentence about that file (503).
- A grouped change that raises a ``BaseException`` (``SystemExit`` from a library's
  ``sys.exit``) is not one change's refusal: its whole group is rolled back and every caller
  of it is handed that ``SystemExit``, which, awaited on the event loop
  (``write_grouped_async``), stops the server.

Checked and found sound (tests that pass): a caller that stops waiting (a cancelled await: a
client gone, serve's stop) leaves nothing half-done and no future unresolved; the shared
refusal never refuses a change submitted after the refusal ended."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from writergroups import queued_add, queued_behind, serving

from batch_runner.errors import StorageError
from batch_runner.runs import queue
from batch_runner.runs.context import RunnerContext
from batch_runner.state import storelock
from batch_runner.state.sqlite import schema
from batch_runner.web.service import Service


@pytest.fixture
def service(tmp_path: Path) -> Any:
    yield from serving(tmp_path)


def _outcome(future: Any) -> Any:
    try:
        return future.result(10)
    except BaseException as exc:  # the answer under test, whatever its kind
        return exc


def test_a_cancel_whose_result_line_cannot_be_written_does_not_refuse_the_runs_behind_it(
    service: Service,
) -> None:
    waiting = service.write_grouped(queued_add("to-cancel"))
    layout = service.reader().layout
    today = datetime.now()
    for day in (today, today + timedelta(days=1)):  # the test may cross midnight
        Path(layout.results_file(day.strftime("%Y%m%d"))).mkdir(parents=True)

    def cancel(ctx: RunnerContext) -> Any:
        return queue.remove(ctx, waiting)

    outcomes = queued_behind(service, cancel, [queued_add("a"), queued_add("b"), queued_add("c")])
    assert all(isinstance(o, str) for o in outcomes), (
        f"runs refused with the cancel's results-file error: {outcomes}"
    )


def test_a_grouped_change_that_raises_systemexit_fails_alone(service: Service) -> None:
    def exits(ctx: RunnerContext) -> str:
        queued_add("half")(ctx)  # a write, then the exit: undone with its savepoint
        raise SystemExit(3)

    outcomes = queued_behind(service, lambda ctx: None, [queued_add("a"), exits, queued_add("b")])
    assert isinstance(outcomes[0], str) and isinstance(outcomes[2], str), (
        f"the others of the group were refused with it: {outcomes}"
    )
    assert isinstance(outcomes[1], Exception), f"handed on as is: {outcomes[1]!r}"
    labels = {run["job_name"] for run in service.reader().store.list_runs(limit=10)}
    assert "half" not in labels


def test_a_change_that_raises_systemexit_does_not_reach_the_event_loop(service: Service) -> None:
    """An awaited ``SystemExit`` leaves ``asyncio.run`` (uvicorn's loop): the server stops."""

    def exits(ctx: RunnerContext) -> str:
        raise SystemExit(3)

    async def post() -> BaseException | None:
        try:
            await service.write_grouped_async(exits)
        except Exception as exc:  # what a route turns into a 500
            return exc
        return None

    try:
        answered = asyncio.run(post())
    except BaseException as exc:  # the answer under test, whatever its kind
        raise AssertionError(f"{exc!r} left the event loop") from None
    assert isinstance(answered, Exception)


def test_a_cancelled_await_leaves_nothing_half_done(service: Service) -> None:
    release = threading.Event()
    holding = threading.Event()
    started = threading.Event()

    def held(ctx: RunnerContext) -> None:
        holding.set()
        release.wait(10)

    def slow(ctx: RunnerContext) -> str:
        started.set()
        release.wait(10)
        taken: str = queued_add("taken")(ctx)
        return taken

    async def scenario() -> None:
        ahead = asyncio.get_running_loop().run_in_executor(None, service.write, held)
        while not holding.is_set():  # the writer is busy with ``held``
            await asyncio.sleep(0.01)
        # Cancelled while waiting for the writer: never applied.
        waiting = asyncio.ensure_future(service.write_grouped_async(queued_add("dropped")))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0)  # the cancel reaches the writer's future on the loop's next turn
        release.set()
        await ahead
        # Cancelled while the writer applies it: committed, nobody told, nothing unresolved.
        release.clear()
        applying = asyncio.ensure_future(service.write_grouped_async(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        applying.cancel()
        release.set()
        assert await service.write_grouped_async(queued_add("after"))

    asyncio.run(asyncio.wait_for(scenario(), 20))
    labels = {run["job_name"] for run in service.reader().store.list_runs(limit=10)}
    assert "dropped" not in labels and {"taken", "after"} <= labels


def test_the_shared_refusal_never_refuses_a_change_submitted_after_it(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the writer opens its connection: a short wait for the lock.
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(storelock, "REPAIR_WAIT_SECONDS", 0.3)
    path = service.reader().layout.database
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process keeps the state locked
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(service.write_grouped, queued_add("first"))
            behind = [pool.submit(service.write_grouped, queued_add(f"b{i}")) for i in range(3)]
            assert isinstance(_outcome(first), StorageError)
            assert all(isinstance(_outcome(f), StorageError) for f in behind)
        other.execute("ROLLBACK")
        assert isinstance(service.write_grouped(queued_add("after")), str)
    finally:
        other.close()
