"""The service when its state cannot be read or written (issue 21): a damaged database, one
another process keeps locked, a repair holding the store lock, a full disk. Every request
answers 503 with ``Retry-After`` and one sentence within the service's wait, never a 500 or a
hang; nothing is half-written; and the same server serves again once the fault is gone.

Against a real ``batch_runner serve`` (tests/webserver.py); the locks are held by other real
processes, the full disk is a 2 MiB tmpfs (root only, skipped otherwise).
"""

from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, fill_up, job, small_tmpfs
from fault_helpers import integrity

from batch_runner.web.service import STATE_WAIT_SECONDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from webserver import WebServer


# The service gives up on a locked state after STATE_WAIT_SECONDS; this much more is left for
# a loaded 2-core machine, and is still far from a hang.
ANSWER_WITHIN = STATE_WAIT_SECONDS + 2.0
NEW_RUN = {"command": "echo hello", "delay": "1h"}  # never started: no worker runs here


def _database(web: WebServer) -> Path:
    return web.root / "logs" / "state" / "batch_runner.sqlite3"


def assert_unavailable(answer: httpx.Response) -> str:
    """503, ``Retry-After`` in seconds, and one sentence as ``detail``; the sentence."""
    assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text)
    assert answer.headers["retry-after"].isdigit(), answer.headers
    assert answer.headers["content-type"].startswith("application/json")
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail
    assert "\n" not in detail and "Traceback" not in detail, detail
    return detail


def timed(
    call: Callable[..., httpx.Response], *args: Any, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call(*args, **kwargs)
    return answer, time.monotonic() - started


def run_ids(web: WebServer) -> set[str]:
    with sqlite3.connect(_database(web), timeout=30) as db:
        return {row[0] for row in db.execute("SELECT run_id FROM runs")}


def queue_audits(web: WebServer) -> int:
    with sqlite3.connect(_database(web), timeout=30) as db:
        return int(db.execute("SELECT count(*) FROM audit WHERE action = 'queue'").fetchone()[0])


def assert_serves_again(client: httpx.Client) -> None:
    """The same server, not restarted: status, a list, and a new run."""
    assert client.get("/api/v1/status").status_code == 200
    assert client.get("/api/v1/runs").status_code == 200
    queued = client.post("/api/v1/runs", json=NEW_RUN)
    assert queued.status_code == 201, queued.text


# --- another process holding a lock ------------------------------------------------------------

_HOLD_DATABASE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute(sys.argv[2])
print("held", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""

_HOLD_STORE_LOCK = """
import sys
from batch_runner.state.storelock import StoreLock
lock = StoreLock(sys.argv[1])
print("held" if lock.take_alone() else "refused", flush=True)
sys.stdin.readline()
lock.release()
"""


class Holder:
    """A process that holds a lock until ``release``."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        said = self.proc.stdout.readline().strip()
        assert said == "held", f"the lock could not be taken ({said!r})"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        assert self.proc.returncode == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    held: list[Holder] = []
    yield held
    for holder in held:
        holder.kill()


@pytest.mark.parametrize("begin", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
def test_a_locked_database_is_503_within_the_wait_then_the_same_request_succeeds(
    serve_web, holders, begin
):
    web = serve_web()
    admin = web.client(web.token("admin"))
    assert admin.get("/api/v1/status").status_code == 200  # the token's first use is noted
    holders.append(holder := Holder(_HOLD_DATABASE, str(_database(web)), begin))

    answer, took = timed(admin.post, "/api/v1/runs", json=NEW_RUN)
    detail = assert_unavailable(answer)
    assert took < ANSWER_WITHIN, took
    assert "locked" in detail and str(_database(web)) in detail
    # Readers are not kept out by a writer (WAL): what is there is still shown.
    assert admin.get("/api/v1/status").status_code == 200
    assert admin.get("/api/v1/runs").json()["runs"] == []

    holder.release()
    again = admin.post("/api/v1/runs", json=NEW_RUN)
    assert again.status_code == 201, again.text
    assert run_ids(web) == {again.json()["run_id"]}  # the refused one left nothing
    assert queue_audits(web) == 1
    assert_serves_again(admin)


def test_changes_waiting_behind_a_locked_database_are_each_answered_within_the_wait(
    serve_web, holders
):
    # One writer thread makes every change: those queued behind one that waits for the lock
    # must not each wait their own turn in full (eight requests: eight waits, 20 s).
    web = serve_web()
    admin = web.client(web.token("admin"))
    assert admin.get("/api/v1/status").status_code == 200
    holders.append(holder := Holder(_HOLD_DATABASE, str(_database(web)), "BEGIN IMMEDIATE"))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: timed(admin.post, "/api/v1/runs", json=NEW_RUN), range(8))
        )
    for answer, took in answers:
        assert_unavailable(answer)
        assert took < ANSWER_WITHIN, [round(t, 2) for _, t in answers]

    holder.release()
    assert run_ids(web) == set()
    assert_serves_again(admin)


def test_a_read_needs_no_write_while_the_database_is_locked(serve_web, holders):
    # A token's use is noted in the state at most once a minute; that note failing must not
    # turn a read into a 503 (nor, on a full disk, every token's first request of a minute).
    web = serve_web()
    reader = web.client(web.token("read"))
    holders.append(holder := Holder(_HOLD_DATABASE, str(_database(web)), "BEGIN IMMEDIATE"))
    answer, took = timed(reader.get, "/api/v1/status")
    holder.release()
    assert answer.status_code == 200, (answer.status_code, answer.text, took)


def test_a_repair_holding_the_store_lock_is_503_then_it_serves_again(serve_web, holders):
    # `doctor --repair` takes the store lock alone, which it can only do while no store is
    # open: here before the server's first request opens one.
    web = serve_web()
    admin = web.client(web.token("admin"))
    lock = _database(web).parent / "store.lock"
    holders.append(holder := Holder(_HOLD_STORE_LOCK, str(lock)))

    for request in (
        lambda: admin.get("/api/v1/status"),
        lambda: admin.post("/api/v1/runs", json=NEW_RUN),
        lambda: admin.get("/jobs"),  # seed 001's API too
    ):
        answer, took = timed(request)
        detail = assert_unavailable(answer)
        assert took < ANSWER_WITHIN, took
        assert "doctor --repair" in detail

    holder.release()
    assert run_ids(web) == set()
    assert_serves_again(admin)


# --- a damaged database -----------------------------------------------------------------------


def _damage(database: Path) -> bytes:
    """Garbage over the whole file, in place (the server's open connections see it); what
    was there, to put back."""
    good = database.read_bytes()
    with open(database, "r+b") as file:
        file.write(b"garbage!" * (len(good) // 8))
    return good


def _every_kind_of_request(admin: httpx.Client, run_id: str) -> list[httpx.Response]:
    return [
        admin.get("/api/v1/status"),
        admin.get("/api/v1/runs"),
        admin.get(f"/api/v1/runs/{run_id}"),
        admin.get("/api/v1/jobs"),
        admin.post("/api/v1/runs", json=NEW_RUN),
        admin.post(f"/api/v1/runs/{run_id}/cancel"),
        admin.post("/api/v1/queue/pause"),
        admin.get("/jobs"),
        admin.get(f"/jobs/{run_id}"),
    ]


@pytest.mark.parametrize("when", ["in use", "before the first request"])
def test_a_damaged_database_is_503_naming_the_repair_and_serves_once_restored(serve_web, when):
    web = serve_web(jobs=[job("nightly", "true")])
    token = web.token("admin")
    database = _database(web)
    if when == "in use":
        admin = web.client(token)
        first = admin.post("/api/v1/runs", json=NEW_RUN)
        assert first.status_code == 201, first.text
        run_id = first.json()["run_id"]
    else:
        queued = web.cli("queue", "add", "--delay", "1h", "--json", "--", "echo", "hello")
        assert queued.returncode == 0, queued.stderr
        run_id = run_ids(web).pop()
        admin = web.client(token)
    good = _damage(database)

    # The token itself is in the damaged database: it cannot be checked, which is 503 too
    # (not 401, which would tell a client its token is wrong).
    for answer in _every_kind_of_request(admin, run_id):
        detail = assert_unavailable(answer)
        assert "damaged" in detail and "doctor --repair" in detail, detail
        assert str(database) in detail
    assert "Traceback" not in web.log()

    # Put back as it was (a backup restored over it): the same server serves again.
    database.write_bytes(good)
    assert integrity_of(database) == "ok"
    assert admin.get(f"/api/v1/runs/{run_id}").json()["status"] == "pending"
    assert_serves_again(admin)


def integrity_of(database: Path) -> str:
    with sqlite3.connect(database, timeout=30) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


# --- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A project root whose log dir is a 2 MiB tmpfs."""
    root = tmp_path / "web"
    with small_tmpfs(root / "logs"):
        yield root


def test_a_full_disk_is_503_with_nothing_half_written_and_serves_once_freed(serve_web, small_disk):
    web = serve_web(root=small_disk)
    admin = web.client(web.token("admin"))
    before = admin.post("/api/v1/runs", json=NEW_RUN)
    assert before.status_code == 201, before.text
    filler = small_disk / "logs" / "filler"
    fill_up(filler)

    accepted = {before.json()["run_id"]}
    refused = 0
    # Several: a first write may still fit in pages SQLite already holds.
    for n in range(20):
        answer, took = timed(admin.post, "/api/v1/runs", json={**NEW_RUN, "label": f"n{n}"})
        assert took < ANSWER_WITHIN, took
        if answer.status_code == 201:
            accepted.add(answer.json()["run_id"])
            continue
        detail = assert_unavailable(answer)
        assert "full" in detail or "space" in detail, detail
        refused += 1
    assert refused, "the disk never filled"
    # Reads still answer on a full disk.
    assert admin.get("/api/v1/status").status_code == 200
    listed = admin.get("/api/v1/runs", params={"limit": 500})
    assert listed.status_code == 200
    assert {run["run_id"] for run in listed.json()["runs"]} == accepted

    filler.unlink()
    assert integrity(small_disk) == "ok"
    assert run_ids(web) == accepted  # each run is there in full, or not at all
    assert queue_audits(web) == len(accepted)  # and its audit line with it
    assert_serves_again(admin)
    assert "Traceback" not in web.log()
