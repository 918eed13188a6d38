"""Running the service: where it listens (loopback unless tokens exist), uvicorn, and a
clean stop on SIGTERM."""

from __future__ import annotations

import ipaddress
import socket

from batch_runner.errors import OperationFailed, UsageError
from batch_runner.logs import get_logger
from batch_runner.web.service import Service

log = get_logger("batch_runner.web")

DEFAULT_BIND = "127.0.0.1:8080"
# Open event streams end this long after SIGTERM; a dashboard reconnects on its own.
_GRACEFUL_SECONDS = 3


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` (a bare port means loopback)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--bind {text!r} is not HOST:PORT; e.g. 127.0.0.1:8080")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def refuse_open_bind(service: Service, host: str, port: int) -> None:
    """Anything but loopback needs a token first: the API could otherwise not be used, and
    a token made later would not be what let the port open."""
    if is_loopback(host):
        return
    if not service.reader().store.has_active_tokens():
        raise UsageError(
            f"refusing to listen on {_address(host, port)} while no token exists: create one with "
            "`batch_runner token create NAME --scope admin`, or bind to 127.0.0.1"
        )


def serve(
    service: Service, bind: str, *, root_path: str = "", trusted_proxies: tuple[str, ...] = ()
) -> None:
    import uvicorn

    from batch_runner.web.app import create_app

    host, port = parse_bind(bind)
    refuse_open_bind(service, host, port)
    app = create_app(service, root_path=root_path)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging, set up by the CLI
        access_log=False,
        # X-Forwarded-For/-Proto are believed only from the proxies named: from anyone else
        # (any local account reaches a loopback bind) the audit's "from where" would be a claim.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        server_header=False,
    )
    listening = _listen(host, port)
    log.info(
        "serving on http://%s%s/ (the dashboard: %s/ui/; the API: %s/api/v1/)",
        _address(host, port),
        root_path,
        root_path,
        root_path,
    )
    try:
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
        service.close()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, opened here so that a port in use is one sentence, not
    uvicorn's log line and exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as exc:
        listening.close()
        raise OperationFailed(f"cannot listen on {_address(host, port)}: {exc.strerror}") from None
    listening.set_inheritable(True)
    return listening


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
