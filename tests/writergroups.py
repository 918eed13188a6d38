"""The service's writer thread held so that changes queue behind it and form one group: what
the reviews of issue 21 test the group commit with (an in-process ``Service``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from batch_runner.runs import queue
from batch_runner.runs.context import RunnerContext
from batch_runner.web.service import Service


def serving(tmp_path: Path) -> Iterator[Service]:
    """An in-process service on a one-job config, closed at the end (a fixture's body)."""
    from conftest import job, write_config

    config = write_config(tmp_path, [job("nightly", "true")])
    made = Service(str(config), str(tmp_path))
    yield made
    made.close()


def queued_behind(service: Service, first: Any, changes: list[Any]) -> list[Any]:
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
            except BaseException as exc:  # the answer under test, whatever its kind
                outcomes.append(exc)
    return outcomes[1:]


def queued_add(label: str, run_id: str | None = None) -> Any:
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
