"""``serve``: the HTTP API and the dashboard (the ``[web]`` extra)."""

from __future__ import annotations

import argparse

from batch_runner.cli import app
from batch_runner.errors import OperationFailed, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_NEEDS_EXTRA = (
    "the web service needs its extra, which is not installed: pip install 'batch-runner[web]' "
    "(from a checkout: pip install '.[web]')"
)


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP API and the dashboard")
    p.add_argument(
        "--bind",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:8080; anything else needs a token first)",
    )
    p.add_argument(
        "--root-path",
        default="",
        metavar="PREFIX",
        help="the path a reverse proxy serves it under, e.g. /batch",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy's address whose X-Forwarded-For/-Proto are believed (repeatable)",
    )
    p.set_defaults(handler=cmd_serve)
    common(p)


def cmd_serve(args: argparse.Namespace) -> int:
    if _missing_web_package() is not None:
        raise OperationFailed(_NEEDS_EXTRA)
    from batch_runner.web.server import parse_bind, serve, trusted_proxies
    from batch_runner.web.service import Service

    parse_bind(args.bind)  # a typo is told before anything is opened
    proxies = trusted_proxies(args.trusted_proxy)
    root_path = args.root_path.rstrip("/")
    if root_path and not root_path.startswith("/"):
        raise UsageError(f"--root-path {args.root_path!r} must start with /, e.g. /batch")
    app.load(args)  # the config's errors, as every command says them
    service = Service(app.config_path_of(args), app.root_of(args))
    serve(service, args.bind, root_path=root_path, trusted_proxies=proxies)
    return 0


def _missing_web_package() -> str | None:
    """The first package of the ``[web]`` extra that cannot be imported, if any."""
    import importlib

    for name in ("fastapi", "starlette", "uvicorn", "jinja2", "multipart", "prometheus_client"):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None
