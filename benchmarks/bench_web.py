"""The web service's speed, side by side in one run (issue 21).

    python benchmarks/bench_web.py [--clients 50] [--seconds 5] [--runs 100000] [--samples 200]

- queueing: `POST /api/v1/runs` from 50 concurrent clients (wrk, Debian's package, with a Lua
  script; each request queues one command run) for S seconds: accepted runs per second and the
  latency percentiles, against `batch_runner queue add` from the shell (one after another, and
  two at a time on the 2 cores); every accepted run is counted again in the database;
- a page of 50 runs out of 100,000 (`GET /api/v1/runs?limit=50`, the first page, a filtered
  one and one deep in the cursor chain): p50 and p99;
- a run's state change to the event: the time from the commit of a change in the state
  database to its server-sent event arriving at a client of `/api/v1/events`;
- the scheduler's dispatch lateness (an interval job every second, its own start stamp minus
  its occurrence) with no dashboard open and with 20 dashboard clients connected to the event
  stream;
- `serve`'s resident memory idle and at the end of the queueing load.
Targets (issue 21): >= 500 runs/s accepted with p99 < 100 ms; page p50 < 20 ms; event p99 <
100 ms; lateness no worse than 1 ms at the median with the dashboards. Run it with the Python
that has batch_runner[web] installed, on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PY = sys.executable
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scheduler import scheduler_lateness  # noqa: E402

from batch_runner.runs.context import new_run_id  # noqa: E402
from batch_runner.runs.queue import adhoc_spec  # noqa: E402
from batch_runner.state.layout import LogLayout  # noqa: E402
from batch_runner.state.sqlite.store import SqliteStore  # noqa: E402

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"command": "true", "label": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%f %%f %%f %%f\\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def cli(root: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    return subprocess.run(
        [PY, "-m", "batch_runner", *argv],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=check,
    )


def project(jobs: list[dict] | None = None) -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-web-"))
    (root / "config").mkdir()
    (root / "config" / "batch_config.json").write_text(json.dumps({"jobs": jobs or []}))
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A `batch_runner serve` process on a free loopback port, with an admin token."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = cli(root, "token", "create", "bench", "--scope", "admin").stdout.strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
        self.proc = subprocess.Popen(
            [PY, "-m", "batch_runner", "serve", "--bind", f"127.0.0.1:{self.port}"],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        headers = {"Authorization": f"Bearer {self.token}"}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/api/v1/status").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise SystemExit("serve did not answer within 30 s")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def count_runs(root: Path) -> int:
    store = SqliteStore(LogLayout(root / "logs").database)
    try:
        return int(store._read("SELECT count(*) FROM runs")[0][0])
    finally:
        store.close()


# --- queueing ------------------------------------------------------------------------------


def api_queueing(clients: int, seconds: float) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    root = project()
    server = Server(root)
    try:
        idle = server.rss_mb()
        before = count_runs(root)
        script = root / "post.lua"
        script.write_text(WRK_SCRIPT % server.token)
        done = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{clients}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                f"{server.url}/api/v1/runs",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        loaded = server.rss_mb()
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
        requests, bad_status, socket_errors, micros, p50, p90, p99, worst = (
            float(x) for x in line.split()[1:]
        )
        stored = count_runs(root) - before
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    accepted = requests - bad_status - socket_errors
    return {
        "accepted_per_s": accepted / (micros / 1e6),
        "requests": requests,
        "non_2xx": bad_status,
        "socket_errors": socket_errors,
        "stored": stored,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": worst,
        "rss_idle_mb": idle,
        "rss_loaded_mb": loaded,
    }


def shell_queueing(count: int, parallel: int) -> float:
    """`queue add` runs per second from the shell, `parallel` at a time."""
    root = project()
    cli(root, "validate")
    try:
        env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
        argv = [PY, "-m", "batch_runner", "queue", "add", "--", "true"]
        started = time.perf_counter()
        running: list[subprocess.Popen[bytes]] = []
        for _ in range(count):
            if len(running) >= parallel:
                running.pop(0).wait()
            running.append(subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.DEVNULL))
        for proc in running:
            proc.wait()
        took = time.perf_counter() - started
        assert count_runs(root) == count
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return count / took


# --- a page of runs ------------------------------------------------------------------------


def fill(root: Path, total: int) -> None:
    """``total`` finished runs of five jobs, written straight into the store."""
    store = SqliteStore(LogLayout(root / "logs").database)
    spec = adhoc_spec(["true"], 60)
    now = time.time() - total
    try:
        with store.transaction():
            for i in range(total):
                at = now + i
                store.insert_run(
                    {
                        "run_id": new_run_id(at) + f"{i:06d}",
                        "job_name": f"job{i % 5}",
                        "kind": "adhoc",
                        "spec": spec,
                        "trigger": "queue",
                        "priority": 0,
                        "status": "success" if i % 7 else "error",
                        "max_attempts": 1,
                        "due_at": at,
                        "created_at": at,
                        "started_at": at,
                        "ended_at": at + 0.5,
                        "attempt": 1,
                        "label": None,
                        "lane": "default",
                        "tags": ["nightly"] if i % 100 == 0 else None,
                    }
                )
    finally:
        store.close()


def paging(total: int, samples: int) -> dict[str, tuple[float, float]]:
    root = project()
    cli(root, "validate")
    fill(root, total)
    server = Server(root)
    figures = {}
    try:
        deep = None
        cursor = None
        for _ in range(total // 50 // 2):  # half-way down the chain
            page = server.client.get(
                "/api/v1/runs", params={"limit": 50, "cursor": cursor} if cursor else {"limit": 50}
            ).json()
            cursor = page["next_cursor"]
        deep = cursor
        for name, params in (
            ("first page", {"limit": 50}),
            ("status=error", {"limit": 50, "status": "error"}),
            ("job=job3", {"limit": 50, "job": "job3"}),
            ("tag=nightly", {"limit": 50, "tag": "nightly"}),
            ("half-way cursor", {"limit": 50, "cursor": deep}),
        ):
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                answer = server.client.get("/api/v1/runs", params=params)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200 and len(answer.json()["runs"]) == 50, answer.text
            figures[name] = (statistics.median(times), percentile(times, 99))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return figures


# --- a state change to its event -----------------------------------------------------------


def event_latency(samples: int) -> list[float]:
    root = project()
    cli(root, "validate")
    server = Server(root)
    seen: dict[str, float] = {}
    stop = threading.Event()
    connected = threading.Event()

    def listen() -> None:
        try:
            follow()
        except httpx.TransportError:
            pass  # the server stopped at the end

    def follow() -> None:
        headers = {"Authorization": f"Bearer {server.token}", "Accept": "text/event-stream"}
        with httpx.stream(
            "GET",
            f"{server.url}/api/v1/events",
            headers=headers,
            timeout=httpx.Timeout(10, read=None),
        ) as stream:
            connected.set()
            for line in stream.iter_lines():
                now = time.perf_counter()
                for run_id in re.findall(r"bench-\d{6}", line):
                    seen.setdefault(run_id, now)
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    connected.wait(10)
    time.sleep(0.5)
    store = SqliteStore(LogLayout(root / "logs").database)
    spec = adhoc_spec(["true"], 60)
    committed: dict[str, float] = {}
    try:
        for i in range(samples):
            # A waiting run (not due: nothing starts it) that then starts running: the state
            # change whose event is timed, from the commit of the change.
            run_id = f"bench-{i:06d}"
            at = time.time() + 3600
            store.insert_run(
                {
                    "run_id": run_id, "job_name": "bench", "kind": "adhoc", "spec": spec,
                    "trigger": "queue", "priority": 0, "status": "pending", "max_attempts": 1,
                    "due_at": at, "created_at": time.time(), "label": None, "lane": "default",
                }
            )  # fmt: skip
            time.sleep(0.05)
            seen.pop(run_id, None)  # only the event of the change below counts
            store.update_run(run_id, status="running", started_at=time.time(), attempt=1)
            committed[run_id] = time.perf_counter()
            time.sleep(0.03 + (i % 7) * 0.011)  # spread over the watcher's ticks
            store.update_run(run_id, status="success", ended_at=time.time())
        time.sleep(1)
    finally:
        stop.set()
        store.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    missing = [r for r in committed if r not in seen]
    if missing:
        print(f"  ! {len(missing)} of {samples} changes never arrived as events")
    return [(seen[r] - committed[r]) * 1000 for r in committed if r in seen]


# --- the scheduler with dashboards open ----------------------------------------------------


def lateness_with_dashboards(samples: int, dashboards: int) -> tuple[list[float], list[float]]:
    """Dispatch lateness (ms) with no dashboard open, then with ``dashboards`` clients on
    the event stream (and each reloading the overview page's data every 2 s)."""
    quiet_root = project()
    quiet = scheduler_lateness(quiet_root, samples, 1.0)
    shutil.rmtree(quiet_root, ignore_errors=True)

    busy_root = project()
    cli(busy_root, "validate")
    server = Server(busy_root)
    stop = threading.Event()

    def dashboard() -> None:
        try:
            watch()
        except httpx.TransportError:
            pass  # the server stopped at the end

    def watch() -> None:
        headers = {"Authorization": f"Bearer {server.token}"}
        forever = httpx.Timeout(10, read=None)
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=10) as client,
            client.stream("GET", "/api/v1/events", timeout=forever) as stream,
        ):
            last = 0.0
            for _ in stream.iter_lines():
                if stop.is_set():
                    return
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    client.get("/api/v1/status")

    threads = [threading.Thread(target=dashboard, daemon=True) for _ in range(dashboards)]
    for thread in threads:
        thread.start()
    try:
        busy = scheduler_lateness(busy_root, samples, 1.0)
    finally:
        stop.set()
        server.stop()
        shutil.rmtree(busy_root, ignore_errors=True)
    return quiet, busy


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--lateness-samples", type=int, default=30)
    args = parser.parse_args()
    print(f"batch_runner web benchmarks, {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    api = api_queueing(args.clients, args.seconds)
    one = shell_queueing(100, 1)
    two = shell_queueing(100, 2)
    print(f"\nqueueing, {args.clients} concurrent API clients for {args.seconds:g} s (wrk):")
    print(
        f"  API:        {api['accepted_per_s']:7.0f} runs/s accepted (target >= 500); latency "
        f"p50 {api['p50_ms']:.1f} ms, p90 {api['p90_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms "
        f"(target < 100), max {api['max_ms']:.1f} ms"
    )
    print(
        f"              {api['requests']:.0f} requests, {api['non_2xx']:.0f} not 2xx, "
        f"{api['socket_errors']:.0f} socket errors; {api['stored']:.0f} runs in the database"
    )
    print(f"  queue add:  {one:7.0f} runs/s one at a time, {two:.0f} runs/s two at a time")
    print(f"  ratio:      API {api['accepted_per_s'] / two:.1f}x the shell two at a time")
    print(
        f"  serve RSS:  {api['rss_idle_mb']:.1f} MB idle, {api['rss_loaded_mb']:.1f} MB after "
        "the load"
    )

    pages = paging(args.runs, args.samples)
    print(f"\na page of 50 runs out of {args.runs:,} (GET /api/v1/runs, {args.samples} each):")
    for name, (p50, p99) in pages.items():
        print(f"  {name:16s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (target p50 < 20)")

    events = event_latency(args.samples)
    print(f"\na state change to its server-sent event ({len(events)} changes):")
    print(
        f"  p50 {statistics.median(events):.1f} ms, p99 {percentile(events, 99):.1f} ms "
        f"(target < 100), max {max(events):.1f} ms"
    )

    quiet, busy = lateness_with_dashboards(args.lateness_samples, 20)
    q50, b50 = statistics.median(quiet), statistics.median(busy)
    print(f"\nscheduler dispatch lateness, {args.lateness_samples} runs of a 1 s interval job:")
    print(f"  no dashboard:   p50 {q50:.2f} ms, p90 {percentile(quiet, 90):.2f} ms")
    print(f"  20 dashboards:  p50 {b50:.2f} ms, p90 {percentile(busy, 90):.2f} ms")
    print(f"  difference:     {b50 - q50:+.2f} ms at the median (target <= 1 ms)")


if __name__ == "__main__":
    main()
