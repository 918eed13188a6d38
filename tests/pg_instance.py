"""One throwaway PostgreSQL server (``PgServer``) for the tests: ``initdb`` into a temporary
folder, 127.0.0.1 on a free port, its unix socket in that folder, stopped, restarted or
killed on demand. tests/pg_server.py makes a pytest fixture of it.

PostgreSQL refuses to run as root, and CI runs as root: then the server's files belong to the
``postgres`` account and its tools run under it (``setpriv``, or ``runuser``).
"""

from __future__ import annotations

import errno
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BINDIR_ENV = "BATCH_RUNNER_PG_BINDIR"  # another installation's bin folder
SUPERUSER = "batch"
EMPTY_TEMPLATE = "br_empty"
START_TIMEOUT = 60  # seconds; crash recovery after a kill -9 on a loaded 2-core machine

# Small, for tests; the durability-related settings come from ``PgServer(durable=)``.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_buffers": "'16MB'",
    "max_connections": "200",  # several schedulers and workers, each with a pool
    "huge_pages": "off",
    "timezone": "'UTC'",
}
# Durable: what a production server does, so a kill -9 loses nothing that was committed.
_DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# Fast: for benchmarks and soaks only. synchronous_commit=off can lose the last commits on a
# kill -9 (the WAL writer had not written them yet), so never for a durability test.
_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_bindir() -> Path | None:
    """``$BATCH_RUNNER_PG_BINDIR`` if set (None if it has no ``initdb``), else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian's layout), else the folder of an ``initdb``
    on PATH, else None."""
    chosen = os.environ.get(BINDIR_ENV)
    if chosen:
        return Path(chosen) if (Path(chosen) / "initdb").is_file() else None
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    """The command prefix that runs a tool as ``postgres`` (tests running as root)."""
    if shutil.which("setpriv"):  # no PAM session: nothing stays around as a parent
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    return ["runuser", "-u", "postgres", "--"]


class PgServer:
    """One PostgreSQL cluster in ``base`` (data, socket, log), on ``port`` of 127.0.0.1.

    ``durable`` (the default) keeps fsync and synchronous commit on, as in production; pass
    False only where nothing kills the server and checks what survived.
    """

    def __init__(
        self, base: Path | None = None, *, durable: bool = True, bindir: Path | None = None
    ) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix="br-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.durable = durable
        self.bindir = bindir or find_bindir() or Path("/nonexistent")
        self.port = 0
        self._prefix = _as_postgres() if os.geteuid() == 0 else []
        self._numbers = itertools.count(1)
        self._templates: set[str] = set()

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> PgServer:
        """``init`` and ``start``; leaving the block stops the server and deletes its folder."""
        try:
            self.init()
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        shutil.rmtree(self.base, ignore_errors=True)

    def init(self) -> None:
        """``initdb`` (trust for the local superuser ``batch``; nothing but loopback reaches
        it) and the test settings appended to postgresql.conf."""
        if self._prefix:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._tool(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync", "--no-instructions",
        )  # fmt: skip
        settings = {**_SETTINGS, **(_DURABLE if self.durable else _FAST)}
        settings["unix_socket_directories"] = f"'{self.base}'"
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pg_server.py\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self) -> None:
        """Start the server and wait until it accepts connections. The first start picks a
        free port (again if another process takes it first); later starts keep it, so the
        DSNs handed out stay valid."""
        for _ in range(5):
            port = self.port or free_port()
            result = self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT), "-o", f"-p {port}")
            if result.returncode == 0:
                self.port = port
                return
            if self.port or "already in use" not in self.log_tail():
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: ``fast`` (clients cut, clean shutdown), ``immediate`` (no
        checkpoint: the next start recovers from the WAL) or ``smart``."""
        result = self._pg_ctl("stop", "-w", "-t", "30", "-m", mode)
        if result.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop -m {mode} failed:\n{result.stdout}")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode`` as for ``stop``) and start on the same port."""
        self.stop(mode)
        self.start()

    def kill9(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a power loss would (minus the
        page cache), and wait until they are gone. ``start`` then runs crash recovery."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            # pg_ctl starts the postmaster in its own session: its group is the whole server.
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_gone(pid)
        # Where pid 1 reaps nobody (containers) the dead postmaster stays a zombie, which
        # PostgreSQL's lock-file checks take for a live one: drop the files, as a reboot would.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.base / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped or killed."""
        if not self.running():
            self.start()

    def running(self) -> bool:
        """Whether the postmaster of postmaster.pid lives (a stale file after a kill -9 whose
        pid now belongs to another program does not count)."""
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            return False
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
        except OSError:
            return False

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def shutdown(self) -> None:
        """End of session: a fast stop, an immediate one if that fails, SIGKILL at last."""
        for stop in (lambda: self.stop("fast"), lambda: self.stop("immediate"), self.kill9):
            try:
                stop()
            except (RuntimeError, OSError, subprocess.TimeoutExpired):
                continue
            if not self.running():
                return

    # -- databases ----------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq keyword DSN over TCP to 127.0.0.1 (what the cluster's hosts use)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    def template(
        self, name: str = EMPTY_TEMPLATE, init: Callable[[str], None] | None = None
    ) -> str:
        """Create template database ``name`` once per session, ``init(dsn)`` filling it (e.g.
        ``batch_runner cluster init``); later calls return the name at once. Connections to a
        template are then refused, because CREATE DATABASE cannot copy one in use."""
        if name not in self._templates:
            self._admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
            if init is not None:
                init(self.dsn(name))
            self._admin(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            self._templates.add(name)
        return name

    def create_database(self, template: str = EMPTY_TEMPLATE) -> str:
        """A new database copied from ``template`` (see ``template``); its name."""
        name = f"t_{next(self._numbers)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template(template)}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop it, disconnecting whatever a test left connected (processes it started)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- internals ----------------------------------------------------------------------------

    def _admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._tool("pg_ctl", "-D", str(self.data), "-l", str(self.log), *args, check=False)

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # cwd: the tools resolve the current folder, which root's may not let postgres read.
        result = subprocess.run(
            [*self._prefix, str(self.bindir / name), *args],
            cwd=self.base, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=START_TIMEOUT + 30,
        )  # fmt: skip
        result.stdout += result.stderr
        if check and result.returncode != 0:
            raise RuntimeError(f"{name} failed ({result.returncode}):\n{result.stdout}")
        return result


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the postmaster {pid} outlived SIGKILL for {timeout} s")
        time.sleep(0.01)
