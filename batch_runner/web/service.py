"""What the service's requests work against: the config (re-read when the file changes), the
store (one connection per thread for reads, one writer thread for every change), and the
audit trail every change leaves."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from batch_runner.config.loader import load_config
from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import ConfigError, StorageError
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.state.store import limit_waits
from batch_runner.web.refusals import contained, own_refusal, state_refusal

log = get_logger("batch_runner.web")

T = TypeVar("T")

# How long a request waits for a locked state database before it is answered 503.
STATE_WAIT_SECONDS = 2.5
# At most this many new runs share one commit: enough for a burst of clients, few enough that
# the first of them is not kept waiting long.
GROUP_LIMIT = 64
# How often the config file is looked at: a request never pays for more than a stat.
_CONFIG_CHECK_SECONDS = 1.0


class Service:
    """One ``serve`` process's view of a config and its state."""

    def __init__(self, config_path: str, root: str) -> None:
        limit_waits(STATE_WAIT_SECONDS)
        self.config_path, self.root = config_path, root
        self._config = load_config(config_path, root)
        self._config_seen = self._file_identity()
        self._config_checked = time.monotonic()
        self._config_lock = threading.Lock()
        self._local = threading.local()
        # Every change goes through one thread and one durable connection: SQLite serializes
        # writers anyway, and a busy handler's sleeps between threads of one process would
        # only add latency.
        self._changes: queue.SimpleQueue[_Change | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_changes, name="br-writer", daemon=True)
        self._writer.start()
        self._writer_ctx: RunnerContext | None = None
        # When the last change the state refused (locked past the wait, a full disk, damage)
        # ended, and with what: the changes that queued behind it share its answer.
        self._refused: tuple[float, StorageError] | None = None
        # Bumped when the database is found damaged: every connection opened before is
        # reopened, as SQLite would go on trusting the pages it read (a restored file unseen).
        self._generation = self._writer_generation = 0
        self.started_at = time.time()

    # --- the config ---------------------------------------------------------------------------

    @property
    def config(self) -> ConfigSpec:
        """The config as the file says now (checked at most once a second); the last one that
        validated while the file does not."""
        if time.monotonic() - self._config_checked >= _CONFIG_CHECK_SECONDS:
            with self._config_lock:
                self._refresh_config()
        return self._config

    def config_edited(self) -> None:
        """The file was just edited by us: the next read of ``config`` looks at it again."""
        self._config_checked = float("-inf")

    def _refresh_config(self) -> None:
        self._config_checked = time.monotonic()
        seen = self._file_identity()
        if seen == self._config_seen:
            return
        self._config_seen = seen
        try:
            self._config = load_config(self.config_path, self.root)
        except ConfigError as exc:
            log.warning("%s; serving from the last config that validated", exc)

    def _file_identity(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.config_path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    # --- the state ----------------------------------------------------------------------------

    def reader(self) -> RunnerContext:
        """This thread's context (its own connection), on the current config."""
        ctx: RunnerContext | None = getattr(self._local, "ctx", None)
        config = self.config
        if self._stale(ctx, getattr(self._local, "generation", 0), config):
            if ctx is not None:
                _close(ctx)
            ctx = self._local.ctx = RunnerContext(config)
            self._local.generation = self._generation
        assert ctx is not None
        ctx.config = config
        return ctx

    def state_damaged(self) -> None:
        """The database was found damaged: every connection is reopened at its next use, so
        that a database restored or rebuilt meanwhile is what the service then reads."""
        self._generation += 1

    def _stale(self, ctx: RunnerContext | None, generation: int, config: ConfigSpec) -> bool:
        return (
            ctx is None
            or generation != self._generation
            or ctx.config.settings.log_dir != config.settings.log_dir
        )

    def write(self, change: Callable[[RunnerContext], T]) -> T:
        """Run ``change`` alone on the writer thread with the durable connection; its result,
        or its exception, comes back here."""
        return self._submit(change, grouped=False).result()

    def write_grouped(self, change: Callable[[RunnerContext], T]) -> T:
        """As ``write``, for a change made of database writes only (a new run and its audit
        line): the changes waiting together are committed in one transaction, each in a
        savepoint of its own, and each caller is answered after that commit. Runners are
        woken after it."""
        return self._submit(change, grouped=True).result()

    async def write_grouped_async(self, change: Callable[[RunnerContext], T]) -> T:
        """``write_grouped`` for the event loop: awaited, with no thread of the pool held."""
        import asyncio

        return await asyncio.wrap_future(self._submit(change, grouped=True))

    def note(self, change: Callable[[RunnerContext], object]) -> None:
        """Run ``change`` on the writer thread without waiting for it: bookkeeping (a token's
        last use) that a request must neither wait for nor fail by."""
        self._submit(change, grouped=False).add_done_callback(_log_failure)

    def _submit(self, change: Callable[[RunnerContext], T], *, grouped: bool) -> Future[T]:
        future: Future[T] = Future()
        self._changes.put(_Change(change, future, time.monotonic(), grouped))
        return future

    def _write_changes(self) -> None:
        """The writer thread: each change alone, or the grouped ones waiting together."""
        held: _Change | None = None
        while True:
            first = held or self._changes.get()
            held = None
            if first is None:
                if self._writer_ctx is not None:  # sqlite3: closed on the thread that opened it
                    _close(self._writer_ctx)
                    self._writer_ctx = None
                return
            if not first.grouped:
                self._apply([first], alone=True)
                continue
            group = [first]
            while len(group) < GROUP_LIMIT:
                try:
                    more = self._changes.get_nowait()
                except queue.Empty:
                    break
                if more is None or not more.grouped:
                    held = more if more is not None else None
                    if more is None:
                        self._changes.put(None)  # stop once this group is answered
                    break
                group.append(more)
            self._apply(group, alone=False)

    def _apply(self, changes: list[_Change], *, alone: bool) -> None:
        pending = [c for c in changes if c.future.set_running_or_notify_cancel()]
        refused = self._refused
        if refused is not None:
            # Queued while the one before waited on the state and was refused: the same answer
            # now, rather than a wait of its own after that one's (n requests, n waits).
            late = [c for c in pending if c.submitted < refused[0]]
            for change in late:
                change.future.set_exception(type(refused[1])(str(refused[1])))
            pending = [c for c in pending if c.submitted >= refused[0]]
        if not pending:
            return
        try:
            ctx = self._writer_context()
            if alone:
                _answer(pending[0], ctx)
                return
            self._apply_group(ctx, pending)
        except StorageError as exc:
            if state_refusal(exc):  # the database's, not one change's: shared below
                self._refused = (time.monotonic(), exc)
            for change in pending:
                if not change.future.done():
                    change.future.set_exception(exc)
        except BaseException as exc:  # a bug: every caller hears of it, the thread goes on
            for change in pending:
                if not change.future.done():
                    change.future.set_exception(contained(exc))

    def _apply_group(self, ctx: RunnerContext, group: list[_Change]) -> None:
        outcomes: list[tuple[_Change, object, BaseException | None]] = []
        with ctx.store.transaction():
            for change in group:
                try:
                    with ctx.store.transaction():  # a savepoint: undone alone if it fails
                        outcomes.append((change, change.change(ctx), None))
                except StorageError as refusal:
                    if not own_refusal(refusal):
                        raise  # the database's, not this request's: the whole group is refused
                    outcomes.append((change, None, refusal))
                except BaseException as refusal:  # this request's own (a usage error, a bug)
                    outcomes.append((change, None, contained(refusal)))
        # Committed: now each is durable, and may be told so.
        from batch_runner.state.wakeup import poke

        poke(ctx.layout.log_dir)
        for change, result, failure in outcomes:
            if failure is None:
                change.future.set_result(result)
            else:
                change.future.set_exception(failure)

    def _writer_context(self) -> RunnerContext:
        config = self.config
        ctx = self._writer_ctx
        if self._stale(ctx, self._writer_generation, config):
            if ctx is not None:
                _close(ctx)
            ctx = self._writer_ctx = RunnerContext(config, durable=True)
            self._writer_generation = self._generation
        assert ctx is not None
        ctx.config = config
        return ctx

    def close(self) -> None:
        self._changes.put(None)
        self._writer.join()


def audit_entry(
    actor: str,
    scope: str | None,
    action: str,
    *,
    remote: str | None,
    run_id: str | None = None,
    job_name: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One line of the audit trail: who, what, which run or job, from where, when."""
    return {
        "at": time.time(),
        "actor": actor,
        "scope": scope,
        "action": action,
        "run_id": run_id,
        "job_name": job_name,
        "remote": remote,
        "detail": detail,
    }


class _Change:
    """A change waiting for the writer thread."""

    __slots__ = ("change", "future", "grouped", "submitted")

    def __init__(
        self,
        change: Callable[[RunnerContext], Any],
        future: Future[Any],
        submitted: float,
        grouped: bool,
    ) -> None:
        self.change, self.future, self.submitted, self.grouped = change, future, submitted, grouped


def _answer(change: _Change, ctx: RunnerContext) -> None:
    try:
        result = change.change(ctx)
    except StorageError:
        raise
    except BaseException as exc:
        change.future.set_exception(contained(exc))
        return
    change.future.set_result(result)


def _log_failure(future: Future[object]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("could not note a token's use: %s", exc)


def _close(ctx: RunnerContext) -> None:
    store = ctx._store
    if store is not None:
        store.close()
        ctx._store = None
