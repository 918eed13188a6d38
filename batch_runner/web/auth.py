"""Who is asking: a bearer token (the API) or a signed-in session cookie (the dashboard), and
whether its scope allows what it asks. ``read`` < ``operate`` < ``admin``.

A session cookie is sent by the browser on its own, so every change made with one must also
carry the session's CSRF token (the ``X-CSRF-Token`` header, or a ``csrf`` form field); a
bearer token is never sent unasked and needs none.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from batch_runner.state.tokens import hash_secret, scope_allows
from batch_runner.web.service import Service, audit_entry

SESSION_COOKIE = "br_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# last_used_at is written at most this often per token: a read request writes nothing else.
_TOUCH_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    """A caller the service has recognised."""

    name: str
    scope: str
    via: str  # "bearer" or "session"
    csrf: str | None = None

    def allows(self, scope: str) -> bool:
        return scope_allows(self.scope, scope)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def remote_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticate(request: Request) -> Principal | None:
    """The caller of ``request``, or None when it carries no valid credential."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    service = service_of(request)
    store = service.reader().store
    principal = None
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        token = store.token_by_hash(hash_secret(secret.strip()))
        if token is not None:
            principal = Principal(token["name"], token["scope"], "bearer")
            _touch(service, token)
    elif (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
        session = store.session_by_hash(hash_secret(cookie), time.time())
        if session is not None:
            principal = Principal(
                session["token_name"], session["scope"], "session", session["csrf"]
            )
    request.state.principal = principal
    return principal


# When this process last asked for each token's use to be noted: at most once a minute, and
# not again on every request while the database cannot take the note.
_touched: dict[str, float] = {}


def _touch(service: Service, token: dict[str, object]) -> None:
    name = str(token["name"])
    now = time.time()
    if now - _touched.get(name, float("-inf")) < _TOUCH_EVERY_SECONDS:
        return
    _touched[name] = now
    service.note(lambda ctx: ctx.store.touch_token(name, now))


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, who must hold ``scope`` (401 without a credential,
    403 with too small a scope or, for a session's change, without its CSRF token)."""

    async def dependency(request: Request) -> Principal:
        principal = await _in_thread(request)
        if principal is None:
            raise HTTPException(
                401,
                "a token is required: send `Authorization: Bearer TOKEN` "
                "(`batch_runner token create NAME --scope read` makes one)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.allows(scope):
            raise HTTPException(
                403, f"the token {principal.name!r} has scope {principal.scope}; this needs {scope}"
            )
        if principal.via == "session" and request.method in _UNSAFE:
            await check_csrf(request, principal)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


async def _in_thread(request: Request) -> Principal | None:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(authenticate, request)


async def check_csrf(request: Request, principal: Principal) -> None:
    """403 unless the request carries the session's CSRF token (header or form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        from starlette.requests import ClientDisconnect

        try:
            form = await request.form()  # Starlette keeps it: the endpoint reads it again
        except ClientDisconnect:
            # Cut short (by the body limit, which answers 413 instead, or by a client gone).
            raise HTTPException(400, "the request body ended before it was whole") from None
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
        raise HTTPException(403, "this change needs the page's CSRF token; reload the page")


def audit(
    request: Request,
    principal: Principal,
    action: str,
    *,
    run_id: str | None = None,
    job_name: str | None = None,
    detail: str | None = None,
) -> dict[str, object]:
    """The audit line of a change ``principal`` made through ``request``; write it with
    ``store.record_audit`` in the change's own transaction."""
    return audit_entry(
        principal.name,
        principal.scope,
        action,
        remote=remote_of(request),
        run_id=run_id,
        job_name=job_name,
        detail=detail,
    )
