"""The dashboard under ``/ui/``: server-rendered pages (Jinja2, autoescaped: everything a user
or a job wrote is text), its static files, and signing in with a token.

A signed-in browser holds a session cookie (HttpOnly, SameSite=Strict) whose hash the store
keeps; every change it makes also carries the session's CSRF token (``auth.check_csrf``).
Every URL a page holds is built from the request's root path, so the dashboard works behind
a reverse proxy that serves it under a prefix (``serve --root-path /batch``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from batch_runner.state.tokens import hash_secret, new_session_id
from batch_runner.version import __version__
from batch_runner.web.auth import (
    SESSION_COOKIE,
    Principal,
    authenticate,
    remote_of,
    require,
    service_of,
)
from batch_runner.web.service import audit_entry

_HERE = Path(__file__).parent
# A workday and then some: long enough not to sign in twice a day, short enough that a
# forgotten browser does not stay signed in for good. Revoking the token ends it at once.
SESSION_SECONDS = 12 * 3600

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    from batch_runner.web import pageactions, pageviews

    app.include_router(router)
    app.include_router(pageviews.router)
    app.include_router(pageactions.router)


@functools.cache
def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every template, whatever its name: names and output are text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from batch_runner.web import pagefilters

    env.filters.update(pagefilters.FILTERS)
    env.globals.update(pagefilters.GLOBALS)
    return env


def url(request: Request, route: str, query: dict[str, Any] | None = None, /, **params: Any) -> str:
    """The path of a route as the browser must ask for it: under the proxy's prefix."""
    root: str = request.scope.get("root_path", "")
    path = root + str(request.app.url_path_for(route, **params))
    return f"{path}?{urlencode(query)}" if query else path


def render(
    request: Request,
    principal: Principal | None,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **data: Any,
) -> HTMLResponse:
    """A page (or a live fragment) from its template, with what every page needs."""
    ui = {
        "url": functools.partial(url, request),
        "static": lambda path: url(request, "static", {"v": __version__}, path=path),
        "principal": principal,
        "csrf": (principal.csrf or "") if principal else "",
        "can_operate": principal is not None and principal.allows("operate"),
        "here": page_path(request),
        "events": url(request, "events"),
    }
    data = {"title": "batch_runner", "nav": "", **data}
    html = _templates().get_template(template).render(ui=ui, **data)
    return HTMLResponse(html, status_code=status, headers=headers)


def page_path(request: Request) -> str:
    """This request's path as the browser asked for it, under the proxy's prefix whether
    or not the proxy passed the prefix on."""
    root: str = request.scope.get("root_path", "")
    path: str = request.scope["path"]
    return path if root and path.startswith(root + "/") else root + path


def to_signin(request: Request) -> RedirectResponse:
    """Where a page request without a valid session goes: the sign-in form, then back."""
    return RedirectResponse(url(request, "ui_signin", {"next": page_path(request)}), 303)


def safe_next(request: Request, wanted: str | None) -> str:
    """A page of ours to go back to, never another site (``//evil``, ``/\\evil``)."""
    home = url(request, "ui_overview")
    prefix = request.scope.get("root_path", "") + "/ui/"
    if not wanted or not wanted.startswith(prefix) or "//" in wanted or "\\" in wanted:
        return home
    return wanted


# The dashboard's own files, and nothing else of the folder. A route rather than a mounted
# StaticFiles: a mount finds no file behind a proxy that strips the root path.
_STATIC = {"app.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}


@router.get("/ui/static/{path}", name="static")
def static(path: str) -> Response:
    media_type = _STATIC.get(path)
    if media_type is None:
        return PlainTextResponse("no such file", status_code=404)
    # The URL carries the version: a new release's files are new URLs.
    headers = {"Cache-Control": "public, max-age=86400"}
    return FileResponse(_HERE / "static" / path, media_type=media_type, headers=headers)


# --- signing in and out ---------------------------------------------------------------------


@router.get("/ui/signin", name="ui_signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    if authenticate(request) is not None:
        return RedirectResponse(safe_next(request, next), 303)
    return _signin_page(request, next)


def _signin_page(
    request: Request, next: str | None, problem: str | None = None, status: int = 200
) -> HTMLResponse:
    no_tokens = not service_of(request).reader().store.has_active_tokens()
    return render(
        request,
        None,
        "signin.html",
        status=status,
        problem=problem,
        no_tokens=no_tokens,
        next=safe_next(request, next),
    )


_NOT_VALID = "That token is not valid: it may be mistyped or revoked."


@router.post("/ui/signin", name="ui_signin_post")
def signin(request: Request, token: str = Form(""), next: str = Form("")) -> Response:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        # Another site's form signing the browser in with a token of the attacker's choosing.
        return _signin_page(request, next, "Sign in from this page.", 403)
    service = service_of(request)
    token_hash = hash_secret(token.strip())
    found = service.reader().store.token_by_hash(token_hash) if token else None
    if found is None:
        return _signin_page(request, next, _NOT_VALID, 401)
    session_id, csrf, now = new_session_id(), new_session_id(), time.time()
    entry = audit_entry(found["name"], found["scope"], "signin", remote=remote_of(request))

    def change(ctx: Any) -> bool:
        with ctx.store.transaction():
            # Again under the write lock: a revoke since the look above ends it here.
            if ctx.store.token_by_hash(token_hash) is None:
                return False
            ctx.store.add_session(
                hash_secret(session_id), found["name"], csrf, now, now + SESSION_SECONDS
            )
            ctx.store.record_audit(entry)
        return True

    if not service.write(change):
        return _signin_page(request, next, _NOT_VALID, 401)
    response = RedirectResponse(safe_next(request, next), 303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_SECONDS,
        path=_cookie_path(request),
        secure=_over_https(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/ui/signout", name="ui_signout")
def signout(request: Request, principal: Principal = Depends(require("read"))) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal.via == "session" and cookie:
        entry = audit_entry(principal.name, principal.scope, "signout", remote=remote_of(request))

        def change(ctx: Any) -> None:
            with ctx.store.transaction():
                ctx.store.drop_session(hash_secret(cookie))
                ctx.store.record_audit(entry)

        service_of(request).write(change)
    response = RedirectResponse(url(request, "ui_signin"), 303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=_cookie_path(request),
        secure=_over_https(request),
        httponly=True,
        samesite="strict",
    )
    return response


def _cookie_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + "/"


def _over_https(request: Request) -> bool:
    # uvicorn takes the scheme from X-Forwarded-Proto only when it comes from a proxy named
    # with `serve --trusted-proxy`: anyone else could claim it.
    return request.url.scheme == "https"
