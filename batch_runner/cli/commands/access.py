"""``token create|list|revoke`` and ``audit``: who may use the service, and what was changed
through it (SPEC 14)."""

from __future__ import annotations

import argparse
import sys
import time

from batch_runner.cli import app, render
from batch_runner.errors import NotFound, UsageError
from batch_runner.state.tokens import SCOPES

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.state.store import Store

_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_NAME_MAX = 64
_AUDIT_KEYS = ("at", "actor", "scope", "action", "run_id", "job_name", "remote", "detail")
# The table's columns after its time: the scope is left to --json, as it is the actor's.
_AUDIT_COLUMNS = ("actor", "action", "run_id", "job_name", "remote", "detail")
_TOKEN_TIMES = ("created_at", "last_used_at", "revoked_at")


def register(sub: Any, common: Any) -> None:
    token = sub.add_parser("token", help="the service's API tokens: create, list, revoke")
    tsub = token.add_subparsers(
        dest="token_command", metavar="TOKEN_COMMAND", required=True, parser_class=type(token)
    )
    p = tsub.add_parser("create", help="make a token and print it (it is shown this once)")
    p.add_argument("name", metavar="NAME", help="letters, digits, '.', '_', '-' (up to 64)")
    p.add_argument("--scope", required=True, choices=SCOPES, help="what the token may do")
    p.set_defaults(handler=cmd_create)
    common(p)
    p = tsub.add_parser("list", help="every token: its scope, when made, last used, revoked")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    common(p)
    p = tsub.add_parser("revoke", help="revoke a token at once; its dashboard sessions end")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_revoke)
    common(p)
    p = sub.add_parser("audit", help="what was changed through the service, and by whom")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="the latest N (default 50)")
    p.add_argument("--run", metavar="RUN_ID", help="only the changes to this run")
    p.set_defaults(handler=cmd_audit)
    common(p)


def cmd_create(args: argparse.Namespace) -> int:
    from batch_runner.state.tokens import hash_secret, new_secret

    name = _checked_name(args.name)
    store = app.context(args, durable=True).store
    secret, now = new_secret(), time.time()
    with store.transaction():  # the token and its audit line, or neither
        store.add_token(name, args.scope, hash_secret(secret), now)
        store.record_audit(_cli_entry(now, "token.create", f"{name} (scope {args.scope})"))
    sys.stdout.write(secret + "\n")
    sys.stdout.flush()
    print(
        f"the token {name} ({args.scope}) is shown this once, and only its hash is kept: save "
        f"it now; send it as the header `Authorization: Bearer <token>`",
        file=sys.stderr,
    )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    name = _checked_name(args.name)
    store = app.context(args, durable=True).store
    now = time.time()
    with store.transaction():
        revoked = store.revoke_token(name, now)
        if revoked:
            store.record_audit(_cli_entry(now, "token.revoke", name))
    if revoked:
        print(f"revoked the token {name}; its dashboard sessions are ended")
        return 0
    known = next((t for t in store.list_tokens() if t["name"] == name), None)
    if known is None:
        raise NotFound(f"no token named {name!r}; `batch_runner token list` shows them")
    print(f"the token {name} was already revoked, at {_minute(known['revoked_at'])}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from batch_runner.timefmt import iso

    store = _existing_store(args)
    tokens = store.list_tokens() if store else []
    views = [
        {
            "name": t["name"],
            "scope": t["scope"],
            "created_at": iso(t["created_at"]),
            "last_used_at": iso(t["last_used_at"]),
            "revoked_at": iso(t["revoked_at"]),
        }
        for t in tokens
    ]
    if args.json:
        render.print_json(views)
        return 0
    if not views:
        print("no token yet: `batch_runner token create NAME --scope read`", file=sys.stderr)
        return 0
    render.print_table(
        ["name", "scope", "created", "last used", "revoked"],
        [[t["name"], t["scope"], *(_minute(t[key]) for key in _TOKEN_TIMES)] for t in tokens],
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from batch_runner.timefmt import iso

    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {args.limit}")
    limit = min(args.limit, 2**62)  # beyond any count; SQLite takes 64 bits
    store = _existing_store(args)
    # One more tells whether some are left out.
    entries = store.audit_entries(limit=limit + 1, run_id=args.run) if store else []
    more, entries = len(entries) > limit, entries[:limit]
    if args.json:
        render.print_json([{**_audit_view(e), "at": iso(e["at"])} for e in entries])
    elif entries:
        render.print_table(
            ["time", "actor", "action", "run id", "job", "from", "detail"],
            [[_minute(e["at"]), *(e[key] for key in _AUDIT_COLUMNS)] for e in entries],
            shrink=("detail",),
            optional=("from", "job", "run id"),
        )
    else:
        print("no change recorded yet" if store else "nothing was stored here yet", file=sys.stderr)
    if more and limit > 0:
        print(f"(the latest {limit} changes are listed; --limit N for more)", file=sys.stderr)
    return 0


def _audit_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry.get(key) for key in _AUDIT_KEYS}


def _checked_name(name: str) -> str:
    if not 0 < len(name) <= _NAME_MAX or not set(name) <= _NAME_CHARACTERS:
        raise UsageError(
            f"the token name {name!r} must be 1 to {_NAME_MAX} letters, digits, "
            "dots, underscores or hyphens"
        )
    return name


def _cli_entry(at: float, action: str, detail: str) -> dict[str, Any]:
    """An audit line of a change made on this host's command line, by its Unix user."""
    return {"at": at, "actor": f"cli:{_user_name()}", "action": action, "detail": detail}


def _user_name() -> str:
    import os
    import pwd

    # The effective user, not $USER or $LOGNAME, which anyone can set.
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container's user with no passwd entry
        return str(uid)


def _existing_store(args: argparse.Namespace) -> Store | None:
    """Read-only commands create no database where nothing was ever stored."""
    from batch_runner.state.store import open_existing_store

    ctx = app.context(args)
    return open_existing_store(ctx.layout, ctx.config.settings.backend)


def _minute(ts: float | None) -> str | None:
    from batch_runner.timefmt import iso

    return iso(ts)[:19].replace("T", " ") if ts is not None else None
