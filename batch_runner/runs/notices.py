"""What happens around an attempt besides running it: heartbeats and notices (SPEC 8).

The runner calls these at fixed points; none of them may change a run's outcome or stop the
runner, and none may delay the executor by more than its own timeout. This module is on the
``run-job`` hot path: the ``notify`` modules (urllib, smtplib, email) are imported only when a
run has a ``ping_url`` or a notice is due.

Heartbeats: ``/start`` before every attempt, then once per run ``<url>`` on success or
``/fail`` on ``error`` or ``timeout``. A run that ends ``stopped`` or ``interrupted`` sends no
final ping: it neither succeeded nor failed (it does not count in ``error_count`` either), and
a heartbeat service flags the missing success by itself if the job stays down.
"""

from __future__ import annotations

from collections.abc import Callable

from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    from batch_runner.notify.heartbeat import Signal
    from batch_runner.notify.notice import NoticeKind

log = get_logger("batch_runner")

# As finish.FAILED_STATUSES (not imported from there: finish imports this module).
_FAILED = ("error", "timeout")


def attempt_starting(ctx: RunnerContext, run: dict[str, Any]) -> None:
    """Right before an attempt starts (the heartbeat's ``/start``)."""
    url = run["spec"].get("ping_url")
    if url:
        _guarded("the start heartbeat", _ping, url, "start")


def run_finished(
    ctx: RunnerContext, run: dict[str, Any], outcome: AttemptOutcome, state: dict[str, Any] | None
) -> None:
    """After a run's last attempt is recorded; ``state`` is its job's state after the update
    (None for ad-hoc runs that belong to no job)."""
    url = run["spec"].get("ping_url")
    signal = final_signal(outcome.status)
    if url and signal:
        _guarded("the final heartbeat", _ping, url, signal)
    if state is not None:
        threshold = run["spec"].get("notify_after") or ctx.config.settings.notify_after
        kind = notice_due(outcome.status, state, threshold)
        if kind:
            _guarded(f"the {kind} notice", _notify, ctx, kind, run, outcome, state)


def final_signal(status: str) -> Signal | None:
    """The heartbeat that ends a run with ``status``; None for stopped and interrupted runs."""
    if status == "success":
        return "success"
    return "fail" if status in _FAILED else None


def notice_due(status: str, state: dict[str, Any], notify_after: int) -> NoticeKind | None:
    """``failure``, ``recovery`` or None: which notice, if any, a run ending ``status`` sends.

    One failure notice when the consecutive failures reach the threshold, none more until a
    success, which sends one recovery notice; ``state["notified"]`` remembers which side we are.
    """
    notified = bool(state.get("notified"))
    if status == "success":
        return "recovery" if notified else None
    if status in _FAILED and not notified and int(state.get("error_count") or 0) >= notify_after:
        return "failure"
    return None


def _ping(url: str, signal: Signal) -> None:
    from batch_runner.notify.heartbeat import ping

    ping(url, signal)


def _notify(
    ctx: RunnerContext,
    kind: NoticeKind,
    run: dict[str, Any],
    outcome: AttemptOutcome,
    state: dict[str, Any],
) -> None:
    from batch_runner.notify.deliver import deliver_all
    from batch_runner.notify.notice import build_notice, log_notice

    notice = build_notice(kind, run, outcome, state, ctx.host)
    log_notice(notice)
    settings = ctx.config.settings
    deliver_all(settings.notifiers, notice, cwd=str(ctx.root), mask=settings.http.mask_headers)
    # Remembered even when a notifier failed: the notice is in the log, and a failing notifier
    # must not turn one failure notice into one per run.
    ctx.store.save_job_state({**state, "notified": int(kind == "failure")})


def _guarded(what: str, action: Callable[..., None], *args: Any) -> None:
    """Run ``action``; a bug or a broken notifier is logged, never raised into the runner."""
    try:
        action(*args)
    except Exception:
        log.exception("%s failed (the run's outcome is not affected)", what)
