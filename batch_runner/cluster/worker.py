"""procrastinate's worker on this host: fetches the jobs ``dispatch_due`` deferred and runs each
as a sync task (``Attempts.run``) in a thread of its own, in a side thread with its own event
loop; restarted with backoff whenever it stops on an error (a database restart ends it).

We set none of what procrastinate issue #1543 needs: no ``queueing_lock``, no retry strategy,
no ``retry_job``; a job never goes back from ``doing`` to ``todo``.
"""

from __future__ import annotations

import asyncio
import logging
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
POOL_WAIT_SECONDS = 3.0


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
        self._renew: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Fetch nothing more; the running attempts go on to their end."""
        self._stopping.set()
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None:
            loop.call_soon_threadsafe(worker.stop)

    def renew(self) -> None:
        """The database came back after an outage: start a fresh worker and let the current
        one drain. procrastinate's worker may outlive an outage half-working (a side task
        such as its heartbeat dead, unnoticed once another has ended), fetching nothing."""
        loop, renew = self._loop, self._renew
        if loop is not None and renew is not None:
            loop.call_soon_threadsafe(renew.set)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        # procrastinate and psycopg_pool log a database that went away as tracebacks and
        # several lines per retry; the supervisor says it in one line (SPEC 6).
        for name in ("procrastinate", "psycopg.pool"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_one_line)
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
        """Run a procrastinate worker; when it stops on its own (its database went away: it
        stops fetching and waits for its running jobs), start another at once, with backoff,
        and let the old one drain beside it: a long attempt must not keep this host from
        taking new runs once the database is back."""
        failures = 0
        draining: set[asyncio.Task[None]] = set()
        renew = self._renew = asyncio.Event()
        while not self._stopping.is_set():
            try:
                app, worker = await self._open()
            except Exception as exc:  # the database does not answer yet
                await self._back_off(failures, exc)
                failures += 1
                continue
            failures = 0
            renew.clear()
            task = asyncio.create_task(self._run(app, worker))
            while not (task.done() or _stopping(worker) or renew.is_set()):
                if self._stopping.is_set():
                    break
                await asyncio.sleep(0.2)
            worker.stop()  # fetches nothing more; its running attempts go on to their end
            if self._stopping.is_set():
                await asyncio.gather(task, return_exceptions=True)
                break
            draining.add(task)
            task.add_done_callback(draining.discard)
            if not renew.is_set():
                await self._back_off(failures, None)
            else:
                log.info("the cluster database is back: a fresh worker takes over")
        await asyncio.gather(*draining, return_exceptions=True)

    async def _back_off(self, failures: int, exc: Exception | None) -> None:
        self.connected.clear()
        delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)]
        if exc is not None:
            reason = self.endpoint.scrubbed(str(exc).splitlines()[0] if str(exc) else repr(exc))
            log.warning("the cluster worker cannot start (%s); trying again in %g s", reason, delay)
        else:
            log.warning("the cluster worker lost its database; starting another in %g s", delay)
        await asyncio.sleep(delay)

    async def _open(self) -> tuple[Any, Any]:
        """An app on a pool of our own, opened within seconds (procrastinate's own pool would
        wait psycopg_pool's 30 s for a database that does not answer), and its worker."""
        import procrastinate
        from psycopg_pool import AsyncConnectionPool

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.endpoint.dsn,
            min_size=1,
            max_size=4,
            timeout=POOL_WAIT_SECONDS,
            open=False,
            kwargs={"connect_timeout": 2, "application_name": f"batch_runner/{self.name}"},
        )
        try:
            await pool.open(wait=True, timeout=POOL_WAIT_SECONDS)
        except BaseException:
            await pool.close()
            raise
        app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        attempts = self.attempts

        @app.task(name=TASK, queue=QUEUE, pass_context=True)
        def attempt(context: Any, run_id: str) -> None:
            attempts.run(run_id, context.job.id)

        await app.open_async(pool)
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
        return app, worker

    async def _run(self, app: Any, worker: Any) -> None:
        self.connected.set()
        try:
            await worker.run()
        except Exception as exc:
            log.warning("the cluster worker stopped: %s", self.endpoint.scrubbed(_first_line(exc)))
        finally:
            try:
                pool = app.connector.pool
                await app.close_async()
                await pool.close()
            except Exception:
                pass  # the pool is broken with the database: nothing left to close cleanly


def _one_line(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    detail = f": {_first_line(exc)}" if exc is not None else ""
    log.warning("the cluster worker: %s%s", context.get("message", "an error"), detail)


def _stopping(worker: Any) -> bool:
    """Whether procrastinate's worker has begun to stop (it does so by itself when its
    database goes away); no public way to ask, hence its event."""
    event = getattr(worker, "_stop_event", None)
    return bool(event is not None and event.is_set())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
