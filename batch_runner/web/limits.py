"""The largest request body the service takes: a queued run's JSON is a few KiB. A larger one
is answered 413 before it is read; without this, FastAPI would read and parse a body of any
size before it looks at the caller's token."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
_TOO_LARGE = b'{"detail":"the request body is larger than 1 MiB"}'


class BodyLimit:
    """A plain ASGI middleware: refuses a Content-Length over the limit at once, and ends a
    body sent without one (chunked) once it has passed the limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _refuse(send)
                return
        received = 0
        over = replaced = started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:  # what the app reads after the limit: the client is gone, as far as it knows
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def answering(message: Message) -> None:
            # The app answers a body cut short as it will (400, or nothing): the answer is 413.
            nonlocal replaced, started
            if replaced:
                return
            if message["type"] == "http.response.start":
                if over:
                    replaced = True
                    await _refuse(send)
                    return
                started = True
            await send(message)

        await self.app(scope, counted, answering)
        if over and not replaced and not started:
            await _refuse(send)


async def _refuse(send: Send) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": _TOO_LARGE})
