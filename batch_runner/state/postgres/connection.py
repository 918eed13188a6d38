"""One plain psycopg connection to the cluster's database, with deadlines, and its failures as
one sentence each.

libpq's own defaults would let a command hang for as long as the network allows; every
connection here gives up within ``CONNECT_TIMEOUT`` to connect, within its statement and lock
timeouts per statement (enforced by the server), and within an overall ``deadline`` on this
side (the socket is shut down when it passes, which also covers a server that went silent).
A database that cannot be reached is ``BackendUnavailable`` (exit 75, HTTP 503). The DSN's
password never appears in a message: a sentence is built from the host and port only, and
whatever the server said is scrubbed of it.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from batch_runner.errors import BackendUnavailable, BatchRunnerError, ConfigError, StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType
    from typing import Any

CONNECT_TIMEOUT = 2  # seconds: libpq's minimum, applied to each address tried
STATEMENT_TIMEOUT = 2.5  # seconds, for a command's or a request's statements
LOCK_TIMEOUT = 2.0
DEADLINE = 3.0  # seconds from the start of a connection to the end of its use


def dsn_from(env_name: str, environ: Mapping[str, str]) -> str:
    """The connection string in the environment variable ``env_name``; ConfigError (exit 78)
    with one sentence naming the variable when it is not set or empty."""
    dsn = environ.get(env_name, "")
    if not dsn.strip():
        state = "is empty" if env_name in environ else "is not set"
        raise ConfigError(
            f"the environment variable {env_name} (settings.backend.dsn_env) {state}; set it to "
            "the cluster database's connection string, such as "
            "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        )
    return dsn


class Endpoint:
    """A parsed DSN: what to connect with, and how messages name it (host and port only)."""

    __slots__ = ("dsn", "params", "secret", "where")

    def __init__(self, dsn: str, env_name: str) -> None:
        try:
            self.params: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.Error:
            # libpq's message quotes the string, password and all: not shown.
            raise ConfigError(
                f"the environment variable {env_name} (settings.backend.dsn_env) does not hold "
                "a connection string libpq can read; expected postgresql://USER:PASSWORD@HOST:"
                "PORT/DBNAME or key=value pairs such as host=HOST port=5432 dbname=DBNAME"
            ) from None
        self.dsn = dsn
        self.secret = str(self.params.get("password") or "")
        host = self.params.get("host") or self.params.get("hostaddr") or os.environ.get("PGHOST")
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        self.where = f"{host}:{port}" if host else f"the local socket (port {port})"

    def scrubbed(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text


def connect(
    endpoint: Endpoint,
    *,
    role: str,
    statement_timeout: float = STATEMENT_TIMEOUT,
    lock_timeout: float = LOCK_TIMEOUT,
) -> psycopg.Connection[Any]:
    """An autocommit connection; BackendUnavailable (or StorageError) with one sentence."""
    options = " ".join(
        part
        for part in (
            endpoint.params.get("options"),
            f"-c statement_timeout={int(statement_timeout * 1000)}",
            f"-c lock_timeout={int(lock_timeout * 1000)}",
        )
        if part
    )
    try:
        return psycopg.Connection.connect(
            endpoint.dsn,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            options=options,
            application_name=endpoint.params.get("application_name")
            or f"batch_runner/{os.uname().nodename}/{role}",
            # A peer that vanishes mid-statement is noticed in seconds, not TCP's minutes.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=5000,
        )
    except psycopg.Error as exc:
        raise failure(exc, endpoint, "connect to") from None


def failure(exc: psycopg.Error, endpoint: Endpoint, doing: str) -> BatchRunnerError:
    """The one sentence for ``exc``, raised while trying to ``doing`` the database: an
    unreachable or silent database is BackendUnavailable (try again later); a refusal of what
    was asked (permissions, say) is a StorageError."""
    where = endpoint.where
    if isinstance(exc, pgerrors.ConnectionTimeout):
        return BackendUnavailable(
            f"the cluster database at {where} did not answer within {CONNECT_TIMEOUT} s"
        )
    if isinstance(exc, pgerrors.QueryCanceled | pgerrors.LockNotAvailable):
        return BackendUnavailable(
            f"the cluster database at {where} did not finish in time ({reason(exc, endpoint)})"
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return BackendUnavailable(
            f"cannot {doing} the cluster database at {where}: {reason(exc, endpoint)}"
        )
    return StorageError(f"the cluster database at {where} refused: {reason(exc, endpoint)}")


def reason(exc: BaseException, endpoint: Endpoint) -> str:
    """What the server or libpq said, on one line, without the address (said already), the
    severity, or the password."""
    text = str(exc).strip().split("\n")[0]
    if " failed: " in text:  # connection to server at "h", port p failed: ...
        text = text.rsplit(" failed: ", 1)[1]
    text = text.removeprefix("FATAL:").strip()
    return endpoint.scrubbed(text.rstrip(".")) or type(exc).__name__


class Session:
    """A connection used under one overall deadline (from before it connects), closed at the
    end of the ``with`` block; psycopg's errors inside the block leave it as one sentence.

    When the deadline passes, the socket is shut down under whatever statement is waiting:
    it fails at once and is reported as the database not answering in time.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        role: str,
        deadline: float | None = DEADLINE,
        statement_timeout: float = STATEMENT_TIMEOUT,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.role = role
        self.deadline = deadline
        self.timeouts = (statement_timeout, lock_timeout)
        self.conn: psycopg.Connection[Any] | None = None
        self._timer: threading.Timer | None = None
        self._expired = threading.Event()

    def __enter__(self) -> psycopg.Connection[Any]:
        statement, lock = self.timeouts
        started = time.monotonic()
        self.conn = connect(
            self.endpoint, role=self.role, statement_timeout=statement, lock_timeout=lock
        )
        if self.deadline is not None:
            # Connecting counts: the deadline is the whole use's, as the user waits for it.
            left = self.deadline - (time.monotonic() - started)
            self._timer = threading.Timer(max(left, 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self.conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.conn is not None:
            self.conn.close()
        if not isinstance(exc, psycopg.Error):
            return  # done in time (a deadline that passed as it ended cut nothing), or ours
        if self._expired.is_set():
            raise BackendUnavailable(
                f"the cluster database at {self.endpoint.where} did not answer within "
                f"{self.deadline:g} s"
            ) from None
        raise failure(exc, self.endpoint, "use") from None

    def _expire(self) -> None:
        self._expired.set()
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            # On a duplicate of the descriptor: the connection's own stays psycopg's to close.
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass  # closed meanwhile: nothing is waiting on it
