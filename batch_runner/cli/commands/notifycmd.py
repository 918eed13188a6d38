"""``notify-test``: a test notice through every notifier, one result line each."""

from __future__ import annotations

import argparse

from batch_runner.cli import app
from batch_runner.errors import OperationFailed

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("notify-test", help="send a test notice through every notifier")
    p.set_defaults(handler=cmd_notify_test)
    common(p)


def cmd_notify_test(args: argparse.Namespace) -> int:
    import time

    from batch_runner.notify.deliver import deliver_all
    from batch_runner.notify.notice import build_test_notice, log_notice

    ctx = app.context(args)
    notifiers = ctx.config.settings.notifiers
    if not notifiers:
        print(
            f"no notifiers configured in {ctx.config.path} (settings.notifiers is empty); "
            "notices go to the log only"
        )
        return 0
    notice = build_test_notice(ctx.host, ctx.config.path, time.time())
    log_notice(notice)
    # The printed lines are the report; logging each failure too would say it twice.
    deliveries = deliver_all(
        notifiers,
        notice,
        cwd=str(ctx.root),
        mask=ctx.config.settings.http.mask_headers,
        log_results=False,
    )
    for delivery in deliveries:
        print(
            f"{delivery.label}: ok"
            if delivery.ok
            else f"{delivery.label}: failed: {delivery.reason}",
            flush=True,
        )
    failed = sum(not delivery.ok for delivery in deliveries)
    if failed:
        raise OperationFailed(f"{failed} of {len(deliveries)} notifiers failed")
    return 0
