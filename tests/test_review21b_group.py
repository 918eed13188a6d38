"""Review of issue 21 (outside, adversarial): the service's group commit. A change that the
database refuses for its own reason (a run id already taken: 3 random bytes per second, so a
collision about every two minutes at the 500 runs/s the service is built for) must fail alone,
not take the other runs of its group down with a 503."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import job, write_config

from batch_runner.errors import StorageError
from batch_runner.runs import queue
from batch_runner.runs.context import RunnerContext
from batch_runner.web.service import Service


@pytest.fixture
def service(tmp_path: Path) -> Any:
    config = write_config(tmp_path, [job("nightly", "true")])
    made = Service(str(config), str(tmp_path))
    yield made
    made.close()


def _queued_behind(service: Service, first: Any, changes: list[Any]) -> list[Any]:
    """``first`` (alone, as a stop or an enable goes) holds the writer until the grouped
    ``changes`` are all waiting behind it, so that they form one group; each one's result or
    exception."""
    release = threading.Event()

    def held(ctx: RunnerContext) -> Any:
        release.wait(10)
        return first(ctx)

    with ThreadPoolExecutor(len(changes) + 1) as pool:
        ahead = pool.submit(service.write, held)
        deadline = time.monotonic() + 10
        while service._changes.qsize() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer has taken ``held``
        futures = [pool.submit(service.write_grouped, change) for change in changes]
        while service._changes.qsize() < len(changes) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        outcomes = []
        for future in [ahead, *futures]:
            try:
                outcomes.append(future.result(10))
            except Exception as exc:  # the answer under test
                outcomes.append(exc)
    return outcomes[1:]


def _add(label: str, run_id: str | None = None) -> Any:
    def change(ctx: RunnerContext) -> str:
        spec = queue.adhoc_spec(["true"], 60)
        if run_id is None:
            return queue.add(ctx, spec, label=label, due_at=time.time() + 3600, wake=False)
        with ctx.store.transaction():
            ctx.store.insert_run(
                {
                    "run_id": run_id,
                    "job_name": label,
                    "kind": "adhoc",
                    "spec": spec,
                    "trigger": "queue",
                    "status": "pending",
                    "due_at": time.time() + 3600,
                    "created_at": time.time(),
                }
            )
        return run_id

    return change


def test_a_run_id_collision_fails_that_run_alone_not_its_whole_group(service: Service) -> None:
    first = service.write_grouped(_add("first"))
    # The second "first" stands for the id new_run_id gave twice in one second.
    outcomes = _queued_behind(
        service,
        lambda ctx: None,
        [_add("a"), _add("b"), _add("dup", run_id=first), _add("c"), _add("d")],
    )
    assert isinstance(outcomes[2], StorageError), outcomes
    others = outcomes[:2] + outcomes[3:]
    assert all(isinstance(o, str) for o in others), f"refused with the collision: {outcomes}"
    stored = service.reader().store
    assert all(stored.get_run(o) is not None for o in others)


def test_a_change_refused_for_its_own_values_does_not_refuse_those_queued_behind_it(
    service: Service,
) -> None:
    """The answer shared by the changes queued behind a refused one is for a state that
    cannot be written (locked, full, damaged), not for one change's own refusal."""
    first = service.write_grouped(_add("first"))
    outcomes = _queued_behind(service, _add("dup", run_id=first), [_add("x"), _add("y")])
    assert all(isinstance(o, str) for o in outcomes), f"refused with the one before: {outcomes}"


def test_queue_add_draws_another_id_when_the_one_drawn_is_taken(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = service.write_grouped(_add("first"))
    drawn = iter([taken, "20300101-000000-abcdef"])
    monkeypatch.setattr(queue, "new_run_id", lambda now: next(drawn))
    assert service.write_grouped(_add("second")) == "20300101-000000-abcdef"
