"""Running the service: where it listens (loopback unless tokens exist), uvicorn, and a
clean stop on SIGTERM."""

from __future__ import annotations

import ipaddress
import socket

from batch_runner.errors import OperationFailed, UsageError
from batch_runner.logs import get_logger
from batch_runner.web.service import Service

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

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


def trusted_proxies(values: list[str]) -> tuple[str, ...]:
    """Each ``--trusted-proxy`` value (an address, a network, ``*``, or a comma-separated list
    of them as uvicorn's own option takes): uvicorn would take anything else as a name that no
    client's address ever equals, and so trust nobody without a word."""
    found: list[str] = []
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            try:
                if item != "*" and "/" in item:
                    item = str(ipaddress.ip_network(item, strict=False))
                elif item != "*":
                    item = str(ipaddress.ip_address(item))
            except ValueError:
                raise UsageError(
                    f"--trusted-proxy {value!r} is not an IP address or network; give the "
                    "proxy's address as it connects, e.g. 127.0.0.1, ::1 or 10.0.0.0/8"
                ) from None
            found.append(item)
    return tuple(found)


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
    said = (
        f"serving on http://{_address(host, port)}{root_path}/ (the dashboard: {root_path}/ui/; "
        f"the API: {root_path}/api/v1/)"
    )
    _run_until_stopped(_server_class(app)(config), listening, service, said)


def _run_until_stopped(
    server: uvicorn.Server, listening: socket.socket, service: Service, said: str
) -> None:
    import signal

    # uvicorn re-raises the SIGTERM it stopped for once it has stopped: by default the process
    # would die of it there, before the writer is drained and closed. Raised here instead (or
    # at once, for a SIGTERM before uvicorn listens for it), it ends serve as a stop should.
    signal.signal(signal.SIGTERM, _stopped)
    try:
        log.info("%s", said)
        server.run(sockets=[listening])
    except _Stopped:
        pass
    finally:
        listening.close()
        service.close()


def _server_class(app: FastAPI) -> type[uvicorn.Server]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's, which ends the open event streams as it stops: each would otherwise hold
        the stop for the whole grace, then be cancelled (a traceback in the log each)."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            hub = getattr(app.state, "hub", None)
            if hub is not None:
                hub.end_all()
            await super().shutdown(sockets)

    return Server


class _Stopped(Exception):
    """SIGTERM, once uvicorn has stopped for it (or before it started)."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped


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
