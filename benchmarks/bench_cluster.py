"""The cluster (issue 22) against one host, side by side in one run.

    python benchmarks/bench_cluster.py [--jobs K] [--seconds S] [--runs N] [--rounds D]
                                       [--repeats R] [--fast] [--keep] [--quick]

A throwaway PostgreSQL (tests/pg_instance.py: initdb into a temporary folder, 127.0.0.1 on a
free port; durable settings unless --fast) gets a fresh database per measure, made ready by
`batch_runner cluster init`. Each "host" is a project folder of its own (the same jobs, its own
log dir) whose processes carry `BATCH_RUNNER_HOST_ID` and the DSN in `BR_BENCH_DSN`; their
stderr goes to files in that folder, and a process that dies is reported with its last lines.

- dispatch lateness: K interval jobs of 1 s running `true`, the default lane K wide, for S
  seconds: 2 schedulers (hosts h1, h2) on the cluster, then one scheduler on one host without
  a backend. Lateness of a run = its start_time minus its scheduled_for (cluster: table
  batch_runner.runs; one host: the JSONL lines), counting the occurrences due from 1 s after
  every scheduler was up; p50/p90/p99/max beside the targets (p50 < 50 ms, p99 < 250 ms on
  loopback). Skipped occurrences and runs that never started are counted too;
- drain: N queued `true` runs (queued in-process in one transaction, as `queue add` does),
  runs per second from the first run's start to the last run's end, the same measure for
  every row, so no process's start-up is in it: one host (`queue worker`, the default lane, 1
  at a time; and its scheduler with the default lane 3 wide), the cluster with 1 worker (width
  1) and 3 workers on 3 hosts (width 1: the lane holds across hosts; width 3). On the cluster
  the queue is paused while the runs are queued and the workers start, and `queue resume`
  lets them go once every worker is registered with procrastinate. Beside the rate: its
  ratio to one host's and to the cluster's 1 worker, "at once" (the most runs whose [start,
  end] overlap: never more than the width), the median run from its start to its end as
  recorded ("run ms") and, one at a time, the median gap from a run's end to the next one's
  start ("gap ms": the hand-off), the CPU per run of the processes that ran them and of the
  PostgreSQL server (from `queue resume` to the last end, their idle loops included), and
  how many runs each host ran. One host's runs are queued paused too, and its process
  started and idle (no CPU used for 0.3 s) before `queue resume`. Every drain runs D times
  (each round in a rotated order, each drain in fresh folders and database): the row is the
  round with the median rate, the ratios are between those, every round's rate beside them;
- recovery: a run of a job whose first attempt sleeps (max_attempts 2, fixed backoff 0) runs
  on one of two `queue worker --forever` (each up longer than the sweep's grace after it
  connects); that worker and the job's process group are SIGKILLed (a power loss), then the
  seconds until the attempt is recorded `interrupted` (its end_time) and until attempt 2 has
  started on the other host (the run's start_time). R times, each with a fresh worker in place
  of the killed one; the bound stated in docs/cluster-design.md 1.6 is `interrupted` within
  15 s.

Run it with the Python that has batch_runner's [cluster] extra installed, with PostgreSQL's
binaries at hand (Debian: postgresql-15, or $BATCH_RUNNER_PG_BINDIR; as root the server runs as
the postgres account), on an otherwise idle machine. The one host's JSONL times are to the
millisecond; the cluster's are the database's microseconds.

A measure that fails is reported in place of its figure (with the processes' last words),
never worked around. --quick: a smoke run (small N, short S, one recovery). Every process
started here and the server are stopped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import psycopg  # noqa: E402
from pg_instance import PgServer, find_bindir  # type: ignore[import-not-found]  # noqa: E402

from batch_runner.config.loader import load_config  # noqa: E402
from batch_runner.runs import queue  # noqa: E402
from batch_runner.runs.context import RunnerContext  # noqa: E402
from batch_runner.timefmt import parse_iso  # noqa: E402

DSN_ENV = "BR_BENCH_DSN"
BACKEND = {"type": "postgres", "dsn_env": DSN_ENV}
# A word in every long job's command line: whatever is left of them at the end is killed.
MARKER = f"600.{os.getpid():07d}1"  # `sleep MARKER` sleeps 600 s
STARTED: list[subprocess.Popen[bytes]] = []
LATENESS_TARGETS = (50.0, 250.0)  # p50, p99 in ms (issue 22)
INTERRUPTED_BOUND = 15.0  # seconds, docs/cluster-design.md 1.6
ONE_HOST = "one host, queue worker, width 1"  # the drains' baselines
CLUSTER_ONE = "cluster, 1 worker, width 1"


class Failed(Exception):
    """A measure that did not complete: reported in place of its figure."""


def note(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# --- hosts and processes -----------------------------------------------------------------------


class Host:
    """A project folder of its own; on the cluster when ``dsn`` is given."""

    def __init__(
        self, base: Path, name: str, dsn: str | None, jobs: list[dict[str, Any]], **settings: Any
    ) -> None:
        self.name, self.dsn, self.root = name, dsn, base / name
        self.config = self.root / "config" / "batch_config.json"
        self.config.parent.mkdir(parents=True)
        settings = {"kill_grace": 0.5, "shutdown_grace": 5, **settings}
        if dsn is not None:
            settings["backend"] = BACKEND
        self.config.write_text(json.dumps({"jobs": jobs, "settings": settings}, indent=2))
        self.procs: dict[int, tuple[str, ...]] = {}  # pid -> its arguments

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BATCH_RUNNER_CONFIG", DSN_ENV)}
        env.update(BATCH_RUNNER_ROOT=str(self.root), BATCH_RUNNER_HOST_ID=self.name)
        if self.dsn is not None:
            env[DSN_ENV] = self.dsn
        return env

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        name = "-".join(argv)
        with open(self.root / f"{name}.stderr", "ab") as err:
            proc = subprocess.Popen(
                [PY, "-m", "batch_runner", *argv],
                env=self.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        STARTED.append(proc)
        self.procs[proc.pid] = argv
        return proc

    def run(self, *argv: str, timeout: float = 120) -> str:
        """A command to its end; its stdout, or Failed with its stderr."""
        try:
            done = subprocess.run(
                [PY, "-m", "batch_runner", *argv],
                env=self.env,
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise Failed(
                f"`batch_runner {' '.join(argv)}` on {self.name}: no end in {timeout} s"
            ) from None
        if done.returncode != 0:
            raise Failed(
                f"`batch_runner {' '.join(argv)}` on {self.name} exited {done.returncode}: "
                f"{done.stderr.strip()[-600:]}"
            )
        return done.stdout

    def said(self, proc: subprocess.Popen[bytes], lines: int = 6) -> str:
        path = self.root / f"{'-'.join(self.procs.get(proc.pid, ()))}.stderr"
        try:
            text = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def describe(self, proc: subprocess.Popen[bytes]) -> str:
        return f"`batch_runner {' '.join(self.procs.get(proc.pid, ('?',)))}` on {self.name}"

    def records(self) -> list[dict[str, Any]]:
        """This host's JSONL lines."""
        return [
            json.loads(line)
            for path in sorted((self.root / "logs" / "batch").glob("batch_*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]

    @contextlib.contextmanager
    def environment(self) -> Iterator[RunnerContext]:
        """A context of this host in this process (its env set while it is open)."""
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        ctx = RunnerContext(load_config(self.config, self.root))
        try:
            yield ctx
        finally:
            ctx.store.close()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


Watched = list[tuple[Host, subprocess.Popen[bytes]]]


def check_alive(watched: Watched, what: str) -> None:
    for host, proc in watched:
        if proc.poll() is not None:
            raise Failed(
                f"{host.describe(proc)} exited {proc.returncode} while {what}: {host.said(proc)}"
            )


def wait_for(check: Callable[[], bool], seconds: float, what: str, watched: Watched) -> None:
    """Until ``check()``; Failed if it takes ``seconds`` or a watched process ends."""
    deadline = time.monotonic() + seconds
    while not check():
        check_alive(watched, f"waiting for {what}")
        if time.monotonic() > deadline:
            said = "; ".join(f"{h.describe(p)}: {h.said(p, 3)}" for h, p in watched)
            raise Failed(
                f"gave up waiting {seconds:.0f} s for {what}" + (f" ({said})" * bool(said))
            )
        time.sleep(0.1)


def hold(seconds: float, watched: Watched, what: str) -> None:
    """``seconds`` pass; Failed if a watched process ends meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check_alive(watched, what)
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))


def stop(watched: Watched) -> None:
    for _, proc in watched:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _, proc in watched:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def cleanup() -> None:
    """Every process started here, then whatever is left of the long jobs (own sessions)."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    for name in os.listdir("/proc"):
        try:
            words = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            if name.isdigit() and MARKER.encode() in words and int(name) != os.getpid():
                os.killpg(os.getpgid(int(name)), signal.SIGKILL)
        except OSError:
            continue


# --- the database ------------------------------------------------------------------------------


class Db:
    """One autocommit connection to a measure's database, for its waits and its results."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []

    def value(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def close(self) -> None:
        self.conn.close()


def fresh_database(server: PgServer, base: Path) -> str:
    """A new database made ready by `batch_runner cluster init` (as an operator would)."""
    dsn = str(server.dsn(server.create_database()))
    base.mkdir(parents=True, exist_ok=True)
    Host(base, f"init-{len(list(base.iterdir()))}", dsn, []).run("cluster", "init")
    return dsn


# --- figures -----------------------------------------------------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


class Lateness:
    def __init__(self, late_ms: list[float], skipped: int, unstarted: int, spread: str) -> None:
        self.late_ms, self.skipped, self.unstarted, self.spread = (
            late_ms,
            skipped,
            unstarted,
            spread,
        )


class Drain:
    """A drain's runs per second, the most runs at once, the median run (start to end, ms),
    the median gap from one run's end to the next one's start (ms; one at a time only), the
    CPU per run of the processes running them and of the database server (ms; from `queue
    resume` to the last end, idle loops included), and which hosts ran how many."""

    def __init__(
        self, spans: list[tuple[float, float]], spread: str, cpu: float, db_cpu: float | None
    ) -> None:
        spans = sorted(spans)
        self.rate = len(spans) / (max(end for _, end in spans) - spans[0][0])
        self.most = most_at_once(spans)
        self.run_ms = statistics.median(end - start for start, end in spans) * 1000
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
        self.gap_ms = statistics.median(gaps) * 1000 if gaps and self.most == 1 else None
        self.cpu_ms = cpu / len(spans) * 1000
        self.db_cpu_ms = None if db_cpu is None else db_cpu / len(spans) * 1000
        self.spread = spread


def spread_of(hosts: list[str]) -> str:
    counts: dict[str, int] = {}
    for host in hosts:
        counts[host] = counts.get(host, 0) + 1
    return " ".join(f"{host}:{n}" for host, n in sorted(counts.items()))


# --- dispatch lateness -------------------------------------------------------------------------


def tick_jobs(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"tick{i}", "command": "true", "schedule_type": "interval", "schedule_time": "1"}
        for i in range(count)
    ]


def lateness_cluster(server: PgServer, base: Path, jobs: int, seconds: float) -> Lateness:
    dsn = fresh_database(server, base)
    hosts = [Host(base, f"h{i}", dsn, tick_jobs(jobs), lanes={"default": jobs}) for i in (1, 2)]
    watched = [(host, host.start("scheduler")) for host in hosts]
    db = Db(dsn)
    try:
        up = "SELECT count(DISTINCT host) FROM batch_runner.processes WHERE role = 'scheduler'"
        wait_for(lambda: db.value(up) >= 2, 60, "both schedulers to say they are alive", watched)
        first = time.time() + 1.0
        last = first + seconds
        hold(last - time.time() + 0.5, watched, "the timed occurrences came")

        def timed_runs() -> list[tuple[Any, ...]]:
            rows = db.rows(
                "SELECT scheduled_for, extract(epoch FROM start_time), host "
                "FROM batch_runner.runs WHERE scheduled_for IS NOT NULL"
            )
            return [row for row in rows if first <= parse_iso(row[0]) <= last]

        with contextlib.suppress(Failed):  # what never started is counted below
            started = lambda: all(row[1] is not None for row in timed_runs())  # noqa: E731
            wait_for(started, 10, "the timed runs to start", watched)
        stop(watched)
        runs = timed_runs()
        decided = db.rows(
            "SELECT outcome, host FROM batch_runner.occurrences "
            "WHERE scheduled_for BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
            first,
            last,
        )
    finally:
        db.close()
    late = [(float(row[1]) - parse_iso(row[0])) * 1000 for row in runs if row[1] is not None]
    if not late:
        raise Failed(f"no run started among {len(decided)} occurrences in {seconds:.0f} s")
    spread = (
        f"decided {spread_of([row[1] for row in decided])}; ran {spread_of([r[2] for r in runs])}"
    )
    skipped = sum(row[0] == "skipped" for row in decided)
    return Lateness(late, skipped, len(runs) - len(late), spread)


def lateness_single(base: Path, jobs: int, seconds: float) -> Lateness:
    host = Host(base, "single", None, tick_jobs(jobs), lanes={"default": jobs})
    watched = [(host, host.start("scheduler"))]
    started = lambda: "scheduler started" in host.said(watched[0][1], 50)  # noqa: E731
    wait_for(started, 60, "the scheduler to start", watched)
    first = time.time() + 1.0
    last = first + seconds
    hold(last - time.time() + 1.5, watched, "the timed occurrences came")
    stop(watched)
    found = [
        r
        for r in host.records()
        if r["job_name"].startswith("tick")
        and r.get("scheduled_for")
        and first <= parse_iso(r["scheduled_for"]) <= last
    ]
    ran = [r for r in found if r["status"] != "skipped"]
    late = [(parse_iso(r["start_time"]) - parse_iso(r["scheduled_for"])) * 1000 for r in ran]
    if not late:
        raise Failed(f"no run recorded in {seconds:.0f} s")
    return Lateness(late, len(found) - len(ran), 0, "")


# --- drain -------------------------------------------------------------------------------------


def enqueue(host: Host, runs: int, paused: bool) -> None:
    """``runs`` ad-hoc `true` runs in the default lane, in one transaction."""
    spec = queue.adhoc_spec(["true"], 60.0)
    with host.environment() as ctx:
        if paused:
            queue.set_paused(ctx, True)
        with ctx.store.transaction():
            for _ in range(runs):
                queue.add(ctx, spec, wake=False)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (every thread; not their children: the jobs)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(server: PgServer) -> list[int]:
    """The postmaster and its children: backends, WAL writer, checkpointer..."""
    top = server.postmaster_pid()
    found = [top] if top else []
    for name in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if name.isdigit():
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == top:
                    found.append(int(name))
    return found


def settled(pids: list[int]) -> Callable[[], bool]:
    """A check: these processes used no CPU over the last 3 looks (started, waiting)."""
    seen: list[float] = []

    def check() -> bool:
        seen.append(cpu_seconds(pids))
        return len(seen) > 3 and seen[-1] == seen[-4]

    return check


def drain_single(base: Path, runs: int, width: int) -> Drain:
    """Width 1: `queue worker` (one at a time, as bench_queue.py); wider: the scheduler."""
    settings = {"lanes": {"default": width}} if width > 1 else {}
    host = Host(base, f"single-w{width}", None, [], **settings)
    enqueue(host, runs, paused=True)
    argv = ("queue", "worker", "--forever") if width == 1 else ("scheduler",)
    watched = [(host, host.start(*argv))]
    pids = [watched[0][1].pid]
    wait_for(settled(pids), 60, "the process to start and wait", watched)
    before = cpu_seconds(pids)
    host.run("queue", "resume")
    done = lambda: sum(r["job_name"] == "adhoc" for r in host.records()) >= runs  # noqa: E731
    wait_for(done, runs * 0.5 + 60, f"{runs} runs to end", watched)
    used = cpu_seconds(pids) - before
    stop(watched)
    ended = [r for r in host.records() if r["job_name"] == "adhoc"]
    bad = [r["status"] for r in ended if r["status"] != "success"]
    if len(ended) != runs or bad:
        raise Failed(f"{len(ended)} of {runs} runs recorded, {len(bad)} not success: {bad[:3]}")
    spans = [(parse_iso(r["start_time"]), parse_iso(r["end_time"])) for r in ended]
    return Drain(spans, "", used, None)


def drain_cluster(server: PgServer, base: Path, runs: int, workers: int, width: int) -> Drain:
    dsn = fresh_database(server, base)
    lanes = {"default": width}
    hosts = [Host(base, f"h{i}", dsn, [], lanes=lanes) for i in range(1, workers + 1)]
    enqueue(hosts[0], runs, paused=True)
    watched = [(host, host.start("queue", "worker", "--forever")) for host in hosts]
    pids, db = [proc.pid for _, proc in watched], Db(dsn)
    try:
        registered = "SELECT count(*) FROM procrastinate_workers"
        wait_for(lambda: db.value(registered) >= workers, 60, "the workers to register", watched)
        slots = (
            "SELECT count(*) FROM batch_runner.lane_slots WHERE lane = 'default' AND NOT retired"
        )
        wait_for(lambda: db.value(slots) == width, 30, f"{width} slots in the lane", watched)
        before = cpu_seconds(pids), cpu_seconds(server_pids(server))
        hosts[0].run("queue", "resume")
        ended = (
            "SELECT count(*) FROM batch_runner.runs WHERE status NOT IN "
            "('pending', 'reserved', 'running')"
        )
        wait_for(lambda: db.value(ended) >= runs, runs * 0.5 + 60, f"{runs} runs to end", watched)
        used = cpu_seconds(pids) - before[0], cpu_seconds(server_pids(server)) - before[1]
        stop(watched)
        rows = db.rows(
            "SELECT status, extract(epoch FROM start_time), extract(epoch FROM end_time), host "
            "FROM batch_runner.runs"
        )
    finally:
        db.close()
    bad = [row[0] for row in rows if row[0] != "success"]
    if len(rows) != runs or bad:
        raise Failed(
            f"{len(rows)} of {runs} runs in the database, {len(bad)} not success: {bad[:3]}"
        )
    spans = [(float(row[1]), float(row[2])) for row in rows]
    return Drain(spans, spread_of([row[3] for row in rows]), *used)


# --- recovery ----------------------------------------------------------------------------------


def long_job() -> dict[str, Any]:
    return {
        "name": "long",
        "command": f'test "$BATCH_ATTEMPT" -ge 2 || sleep {MARKER}',
        "schedule_type": "interval",
        "schedule_time": "86400",
        "enabled": False,
        "max_attempts": 2,
        "backoff": "fixed",
        "backoff_seconds": 0,
    }


class Sample:
    """One killed worker: seconds to its attempt's `interrupted`, and to the retry's start
    (or why there was none), and which host ran it before and after."""

    def __init__(self, detected: float, retried: float | Failed, route: str) -> None:
        self.detected, self.retried, self.route = detected, retried, route


class Recovery:
    def __init__(self, dsn: str, base: Path, grace: float) -> None:
        self.dsn, self.base, self.grace = dsn, base, grace
        self.names = (f"h{i}" for i in itertools.count(1))
        self.live: dict[str, tuple[Host, subprocess.Popen[bytes], float]] = {}
        self.db = Db(dsn)
        self.run_id = ""

    @property
    def watched(self) -> Watched:
        return [(host, proc) for host, proc, _ in self.live.values()]

    def state(self) -> tuple[Any, ...]:
        """(status, host, pgid, attempt, start_time) of the current run."""
        return self.db.rows(
            "SELECT status, host, pgid, attempt, extract(epoch FROM start_time) "
            "FROM batch_runner.runs WHERE run_id = %s",
            self.run_id,
        )[0]

    def explain(self) -> str:
        """The run's row, the lane's slots and procrastinate's jobs, for a failure's message."""
        names = "status, attempt, max_attempts, host, lane, slot, pq_job_id, due in s"
        run = self.db.rows(
            "SELECT status, attempt, max_attempts, host, lane, slot, pq_job_id, "
            "round(extract(epoch FROM due_at - now())::numeric, 1) FROM batch_runner.runs "
            "WHERE run_id = %s",
            self.run_id,
        )
        slots = self.db.rows("SELECT lane, slot, run_id, retired FROM batch_runner.lane_slots")
        jobs = self.db.rows("SELECT id, status, worker_id FROM procrastinate_jobs ORDER BY id")
        return f"run ({names}) {run}; lane_slots {slots}; procrastinate_jobs {jobs}"

    def sample(self) -> Sample:
        self.run_id = ""
        try:
            return self._sample()
        except Failed as failure:
            if not self.run_id:
                raise
            raise Failed(f"{failure}; {self.explain()}") from None

    def _sample(self) -> Sample:
        while len(self.live) < 2:
            host = Host(self.base, next(self.names), self.dsn, [long_job()])
            self.live[host.name] = (host, host.start("queue", "worker", "--forever"), time.time())
        asker = next(iter(self.live.values()))[0]
        self.run_id = asker.run("run-job", "long", "--queue").strip()
        running = lambda: self.state()[0] == "running" and bool(self.state()[2])  # noqa: E731
        wait_for(running, 60, "the long run to run", self.watched)
        youngest = max(started for _, _, started in self.live.values())
        hold(youngest + self.grace + 2.0 - time.time(), self.watched, "the workers warmed up")
        killed, victim = self.power_loss()
        first = "SELECT status, extract(epoch FROM end_time) FROM batch_runner.attempts "
        first += "WHERE run_id = %s AND attempt = 1"
        recorded = lambda: bool(self.db.rows(first, self.run_id))  # noqa: E731
        wait_for(recorded, 90, "attempt 1's record", self.watched)
        status, interrupted_at = self.db.rows(first, self.run_id)[0]
        if status != "interrupted":
            raise Failed(f"attempt 1 of the killed worker's run was recorded {status!r}")
        detected = float(interrupted_at) - killed
        moved = lambda: self.state()[3] >= 2 or self.state()[0] not in WAITING  # noqa: E731
        wait_for(moved, 60, "attempt 2 to start", self.watched)
        if self.state()[3] < 2:
            why = f"the run ended {self.state()[0]!r} after attempt 1 of 2, not retried"
            return Sample(detected, Failed(f"{why}; {self.explain()}"), f"{victim}->none")
        done = lambda: self.state()[0] not in WAITING  # noqa: E731
        wait_for(done, 60, "attempt 2 to end", self.watched)
        status, where, _, _, retry_at = self.state()
        if status != "success" or where == victim:
            raise Failed(
                f"attempt 2 ended {status!r} on {where}, the killed worker was on {victim}"
            )
        return Sample(detected, float(retry_at) - killed, f"{victim}->{where}")

    def power_loss(self) -> tuple[float, str]:
        """SIGKILL the run's worker and its job's group at once; when, and which host."""
        _, victim, pgid, _, _ = self.state()
        _, proc, _ = self.live.pop(victim)
        killed = time.time()
        proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
        return killed, victim

    def close(self) -> None:
        stop(self.watched)
        self.db.close()


WAITING = ("pending", "reserved", "running")


def recovery(server: PgServer, base: Path, repeats: int) -> list[Sample]:
    from batch_runner.cluster.runtime import SWEEP_GRACE_SECONDS

    bench = Recovery(fresh_database(server, base), base, SWEEP_GRACE_SECONDS)
    try:
        samples = []
        for n in range(repeats):
            note(f"recovery {n + 1} of {repeats}")
            samples.append(bench.sample())
        return samples
    finally:
        bench.close()


# --- the report --------------------------------------------------------------------------------


Result = Any  # a figure, or the Failed that took its place


def attempt(what: str, measure: Callable[[], Any]) -> Result:
    note(f"measuring {what}")
    try:
        return measure()
    except Failed as failure:
        note(f"FAILED {what}: {failure}")
        return failure
    except Exception as exc:  # batch_runner's own code, called in-process (queueing the runs)
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        raised = Failed(f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
        note(f"FAILED {what}: {raised}")
        return raised


def report_lateness(jobs: int, seconds: float, late: dict[str, Result]) -> list[str]:
    title = f"dispatch lateness (ms), {jobs} interval jobs of 1 s, {seconds:.0f} s"
    print(f"\n{title:<58} {'runs':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  target")
    failures = []
    for label, got in late.items():
        if isinstance(got, Failed):
            print(f"  {label:<56} {'failed':>5}")
            failures.append(f"{label}: {got}")
            continue
        ordered = sorted(got.late_ms)
        p50, p90, p99 = (percentile(ordered, f) for f in (0.5, 0.9, 0.99))
        target = "for comparison"
        if label.startswith("cluster"):
            met = p50 < LATENESS_TARGETS[0] and p99 < LATENESS_TARGETS[1]
            target = f"p50 < {LATENESS_TARGETS[0]:.0f}, p99 < {LATENESS_TARGETS[1]:.0f}: "
            target += "met" if met else "NOT met"
        print(
            f"  {label:<56} {len(ordered):>5} {p50:>7.1f} {p90:>7.1f} {p99:>7.1f} "
            f"{ordered[-1]:>7.1f}  {target}"
        )
        extra = [f"{got.skipped} skipped"] + [f"{got.unstarted} never started"] * bool(
            got.unstarted
        )
        print(f"    {', '.join(extra)}" + (f"; {got.spread}" if got.spread else ""))
    return failures


def report_drains(runs: int, drains: dict[str, list[Result]]) -> list[str]:
    """Each drain's median round (by rate), the ratios of the medians, every round's rate."""
    rounds = len(next(iter(drains.values()), []))
    title = f"drain of {runs} queued `true` runs, median of {rounds}"
    heads = ("runs/s", "x 1 host", "x cluster1", "at once", "run ms", "gap ms", "CPU ms", "db CPU")
    print(f"\n{title:<42}" + "".join(f"{h:>11}" for h in heads) + "  rounds' runs/s; ran on")
    failures = [
        f"{label}, round {n + 1}: {got}"
        for label, results in drains.items()
        for n, got in enumerate(results)
        if isinstance(got, Failed)
    ]
    median: dict[str, Drain] = {}
    for label, results in drains.items():
        done = sorted((got for got in results if isinstance(got, Drain)), key=lambda d: d.rate)
        if done and len(done) == len(results):
            median[label] = done[len(done) // 2]
    bases = (median.get(ONE_HOST), median.get(CLUSTER_ONE))
    for label, results in drains.items():
        if label not in median:
            print(f"  {label:<40}{'failed':>11}")
            continue
        got = median[label]
        ratios = [f"{got.rate / base.rate:.2f}x" if base else "n/a" for base in bases]
        gap = "-" if got.gap_ms is None else f"{got.gap_ms:.1f}"
        db_cpu = "-" if got.db_cpu_ms is None else f"{got.db_cpu_ms:.1f}"
        cells = (f"{got.rate:.1f}", *ratios, str(got.most), f"{got.run_ms:.1f}", gap)
        cells += (f"{got.cpu_ms:.1f}", db_cpu)
        every = " ".join(f"{d.rate:.0f}" for d in results)
        print(f"  {label:<40}" + "".join(f"{c:>11}" for c in cells) + f"  {every}; {got.spread}")
    print("  (CPU ms: per run, of the processes running them; db CPU: the server's, per run)")
    return failures


def report_recovery(samples: Result, stale: float) -> list[str]:
    title = "recovery of a SIGKILLed worker's run (s)"
    if isinstance(samples, Failed):
        print(f"\n{title:<50} failed")
        return [f"recovery: {samples}"]
    heads = "".join(f"{f'#{n + 1}':>7}" for n in range(len(samples)))
    print(f"\n{title:<50}{heads}{'median':>8}  bound")
    detected = [sample.detected for sample in samples]
    met = "met" if max(detected) <= INTERRUPTED_BOUND else "NOT met"
    print(
        f"  {'kill -> attempt 1 recorded interrupted':<48}"
        + "".join(f"{v:>7.2f}" for v in detected)
        + f"{statistics.median(detected):>8.2f}  <= {INTERRUPTED_BOUND:.0f} s: {met}"
    )
    retried = [sample.retried for sample in samples]
    cells = "".join(f"{v:>7.2f}" if isinstance(v, float) else f"{'failed':>7}" for v in retried)
    numbers = [v for v in retried if isinstance(v, float)]
    middle = (
        f"{statistics.median(numbers):>8.2f}" if len(numbers) == len(retried) else f"{'n/a':>8}"
    )
    print(f"  {'kill -> attempt 2 started on the other host':<48}{cells}{middle}  (backoff 0)")
    routes = "; ".join(sample.route for sample in samples)
    print(f"    ran on -> retried on: {routes} (a run is stale {stale:g} s after its last beat)")
    return [
        f"recovery #{n + 1}, the retry: {v}" for n, v in enumerate(retried) if isinstance(v, Failed)
    ]


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"os.cpu_count() {os.cpu_count()}, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5, help="interval jobs for the lateness")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of occurrences timed")
    parser.add_argument("--runs", type=int, default=500, help="queued runs per drain")
    parser.add_argument("--rounds", type=int, default=3, help="every drain once a round")
    parser.add_argument("--repeats", type=int, default=3, help="killed workers recovered")
    parser.add_argument("--fast", action="store_true", help="PostgreSQL with fsync off")
    parser.add_argument("--keep", action="store_true", help="keep the hosts' folders")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small and short")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds, args.runs, args.rounds, args.repeats = 3, 5, 40, 1, 1
    if find_bindir() is None:
        parser.exit(1, "bench_cluster: no PostgreSQL binaries (initdb) found; see the docstring\n")
    from batch_runner.state.postgres.cluster import STALE_SECONDS

    print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"{machine()} (at the start)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="br-cluster-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs
    late: dict[str, Result] = {}
    drains: dict[str, list[Result]] = {}
    try:
        with PgServer(durable=not args.fast) as server:
            try:
                version = server._tool("postgres", "--version").stdout.strip()
                late["cluster: 2 schedulers on h1, h2"] = attempt(
                    "lateness, cluster",
                    lambda: lateness_cluster(server, tmp / "late-c", args.jobs, args.seconds),
                )
                late["one host: 1 scheduler, no backend"] = attempt(
                    "lateness, one host",
                    lambda: lateness_single(tmp / "late-s", args.jobs, args.seconds),
                )
                drains = drain_rounds(server, tmp, args.runs, args.rounds)
                samples = attempt(
                    "recovery", lambda: recovery(server, tmp / "recovery", args.repeats)
                )
            finally:
                cleanup()
    finally:
        if args.keep:
            print(f"hosts' folders kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    durability = "fsync off (--fast)" if args.fast else "fsync and synchronous_commit on"
    print(f"server: {version} on 127.0.0.1, {durability}")
    failures = report_lateness(args.jobs, args.seconds, late)
    failures += report_drains(args.runs, drains)
    failures += report_recovery(samples, STALE_SECONDS)
    for failure in failures:
        print(f"  FAILED {failure}")
    print(f"\n{machine()} (at the end)")


def drain_rounds(server: PgServer, tmp: Path, runs: int, rounds: int) -> dict[str, list[Result]]:
    """Every drain once a round, in an order rotated so none always goes first."""

    def cluster(workers: int, width: int, base: Path) -> Callable[[], Drain]:
        return lambda: drain_cluster(server, base / f"c{workers}w{width}", runs, workers, width)

    def measures(base: Path) -> dict[str, Callable[[], Drain]]:
        return {
            ONE_HOST: lambda: drain_single(base, runs, 1),
            "one host, scheduler, width 3": lambda: drain_single(base, runs, 3),
            CLUSTER_ONE: cluster(1, 1, base),
            "cluster, 3 workers on 3 hosts, width 1": cluster(3, 1, base),
            "cluster, 3 workers on 3 hosts, width 3": cluster(3, 3, base),
        }

    results: dict[str, list[Result]] = {label: [] for label in measures(tmp)}
    for round_ in range(rounds):
        todo = list(measures(tmp / f"drain{round_ + 1}").items())
        turn = round_ % len(todo)
        for label, measure in todo[turn:] + todo[:turn]:
            results[label].append(attempt(f"drain, round {round_ + 1}, {label}", measure))
    return results


if __name__ == "__main__":
    main()
