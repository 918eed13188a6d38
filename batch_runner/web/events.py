"""``GET /api/v1/events``: live updates as server-sent events, for the dashboard (its session
cookie) and for any client with a ``read`` token. Server-sent events rather than WebSockets:
plain HTTP, which reverse proxies pass (given ``X-Accel-Buffering: no`` for nginx's buffer).

Events: ``run`` (a run in play, or the one of ``?run=``, changed: its new state, as the API
shows a run), ``overview`` (counts, pause, the scheduler), ``output`` (with ``?run=``: the
run's new output as text, its ``id`` the attempt and offset reached, so that a reconnecting
browser's ``Last-Event-ID`` goes on from there). A comment every 15 s keeps idle proxies from
closing the stream, and a ``retry:`` line says how soon to reconnect.

Not in the OpenAPI document: a stream that never ends is no operation a fuzzer can call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from batch_runner.errors import BatchRunnerError
from batch_runner.web.auth import Principal, authenticate, require, service_of
from batch_runner.web.tail import Follower
from batch_runner.web.watcher import Hub, Subscriber

router = APIRouter(tags=["events"])

PING_SECONDS = 15.0
# An open stream's credential is looked at again this often, however busy the stream: a
# revoked token or an ended session stops receiving within this.
AUTH_RECHECK_SECONDS = 5.0
RETRY_MILLISECONDS = 2000
# Events taken from the queue at once: one write to the socket for a burst.
_BURST = 200


def hub_of(request: Request) -> Hub:
    hub: Hub | None = getattr(request.app.state, "hub", None)
    if hub is None:
        hub = request.app.state.hub = Hub(service_of(request))
    return hub


@router.get("/events", name="events", include_in_schema=False)
async def events(
    request: Request,
    run: str | None = None,
    attempt: int = 0,
    offset: int = 0,
    _: Principal = Depends(require("read")),
) -> StreamingResponse:
    """The event stream; with ``run``, that run's state and output too, its output from
    ``attempt``/``offset`` (or the ``Last-Event-ID`` a reconnecting browser sends)."""
    follower = None
    if run:
        attempt, offset = _resume_point(request.headers.get("last-event-id"), attempt, offset)
        follower = Follower(max(0, attempt), max(0, offset))
    sub = Subscriber(run or None, follower)
    return StreamingResponse(
        _stream(request, hub_of(request), sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _resume_point(last_event_id: str | None, attempt: int, offset: int) -> tuple[int, int]:
    left, sep, right = (last_event_id or "").partition(":")
    if sep and left.isdigit() and right.isdigit():
        return int(left), int(right)
    return attempt, offset


async def _stream(request: Request, hub: Hub, sub: Subscriber) -> AsyncIterator[str]:
    hub.subscribe(sub)  # here: should the stream never start, nothing is left subscribed
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n: connected\n\n"
        checked = sent = time.monotonic()
        while True:
            try:
                first = await asyncio.wait_for(sub.queue.get(), AUTH_RECHECK_SECONDS)
            except TimeoutError:
                first = ""
            now = time.monotonic()
            if now - checked >= AUTH_RECHECK_SECONDS:
                if not await _still_allowed(request):
                    return  # revoked or signed out: the browser's reconnect is refused
                checked = now
            if first == "":
                if now - sent >= PING_SECONDS:
                    sent = now
                    yield ": ping\n\n"
                continue
            burst = [first]
            while len(burst) < _BURST and not sub.queue.empty():
                burst.append(sub.queue.get_nowait())
            if None in burst:  # dropped for being too slow
                return
            sub.taken(burst)
            sent = time.monotonic()
            yield "".join(b for b in burst if b is not None)
    finally:
        hub.unsubscribe(sub)


async def _still_allowed(request: Request) -> bool:
    request.state.principal = None  # look again: no cached answer
    try:
        principal = await run_in_threadpool(authenticate, request)
    except BatchRunnerError:  # the state cannot be read: nothing vouches for it, it ends
        return False
    return principal is not None and principal.allows("read")
