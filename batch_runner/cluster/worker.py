"""procrastinate's worker on this host: fetches the jobs ``dispatch_due`` deferred and runs each
as a sync task (``Attempts.run``) in a thread of its own, in a side thread with its own event
loop; restarted with backoff whenever it stops on an error (a database restart ends it).

We set none of what procrastinate issue #1543 needs: no ``queueing_lock``, no retry strategy,
no ``retry_job``; a job never goes back from ``doing`` to ``todo``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from batch_runner.cluster.attempts import Attempts
from batch_runner.logs import get_logger
from batch_runner.state.postgres.cluster import QUEUE, TASK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.state.postgres.connection import Endpoint

log = get_logger("batch_runner")

# How soon a job deferred while this worker was busy (no NOTIFY reaches a full worker) or
# while its listener reconnected is fetched anyway.
FETCH_POLL_SECONDS = 0.25
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)


class PqWorker:
    """One procrastinate worker in a thread; ``stop`` lets it finish its running jobs."""

    def __init__(self, endpoint: Endpoint, attempts: Attempts, concurrency: int, name: str) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.concurrency = concurrency
        self.name = name
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: Any = None
        self._thread = threading.Thread(target=self._main, name="cluster-worker", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Fetch nothing more; the running attempts go on to their end."""
        self._stopping.set()
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None:
            loop.call_soon_threadsafe(worker.stop)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        # A sync task runs in the loop's default executor: as many threads as attempts.
        loop.set_default_executor(
            ThreadPoolExecutor(self.concurrency + 2, thread_name_prefix="cluster-attempt")
        )
        self._loop = loop
        try:
            loop.run_until_complete(self._supervise())
        finally:
            loop.close()

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._run_once()
                failures = 0
            except Exception as exc:  # a database gone away; anything else is logged too
                self.connected.clear()
                delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)]
                failures += 1
                log.warning(
                    "the cluster worker stopped (%s); starting again in %g s",
                    self.endpoint.scrubbed(str(exc).splitlines()[0] if str(exc) else repr(exc)),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _run_once(self) -> None:
        import procrastinate

        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=self.endpoint.dsn,
                min_size=1,
                max_size=4,
                timeout=3,
                kwargs={"connect_timeout": 2, "application_name": f"batch_runner/{self.name}"},
            )
        )
        attempts = self.attempts

        @app.task(name=TASK, queue=QUEUE, pass_context=True)
        def attempt(context: Any, run_id: str) -> None:
            attempts.run(run_id, context.job.id)

        async with app.open_async():
            worker = app._worker(
                queues=[QUEUE],
                name=self.name,
                concurrency=self.concurrency,
                wait=True,
                fetch_job_polling_interval=FETCH_POLL_SECONDS,
                abort_job_polling_interval=1.0,
                install_signal_handlers=False,
                listen_notify=True,
                delete_jobs="successful",
                update_heartbeat_interval=2.0,
                stalled_worker_timeout=30.0,
            )
            self._worker = worker
            if self._stopping.is_set():
                return
            self.connected.set()
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            finally:
                self._worker = None
