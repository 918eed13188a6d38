"""Lanes (issue 18): what running several at once buys, and what it costs, in one run.

    python benchmarks/bench_lanes.py [--runs N] [--widths 1,2,4] [--samples S] [--handoffs K]

- drain: N queued ``sleep 0.05`` runs drained by ``batch_runner scheduler`` without lanes
  (one executor, the baseline) and with ``settings.lanes`` {"q": 1}, {"q": 2}, {"q": 4}: runs
  per second from the first run's start to the last run's end (the JSONL results), the ratio
  to {"q": 1}, the efficiency rate_w / (w * rate_1), the scheduler's own CPU per run (utime +
  stime of its threads from ``queue resume`` to the last end; the jobs' CPU is not in it), and
  the most runs the records show at once (never more than the width). The runs are queued
  in-process in one transaction while the queue is paused; the scheduler starts, then
  ``queue resume`` lets it drain;
- dispatch lateness (as bench_scheduler.py: an interval job runs ``date +%s.%N``, minus its
  occurrence), p50/p95/max, counting only occurrences after the busy runs below are running:
  (a) no lanes, executor free; (b) lanes {"a": 2, "b": 2, "c": 2}, a ``sleep`` running in one
  slot of each, the timed job in lane c; (c) as (b), the run in lane a printing 1 MB/s to
  stdout, which a thread of the scheduler reads and writes to the run's log;
- hand-over: a lane full of ``run-job``s of ``sleep`` jobs and one more ``run-job`` waiting
  (its job runs ``date +%s.%N``); from a SIGKILL to the waiter's job running, either of a
  holding ``run-job`` (the waiter reaps its run, ``interrupted``, before its own: how long
  that takes is shown too) or of a holder's job (its ``run-job`` records the end and lets the
  slot go, as when a run ends). Width 1 waits in flock, wider lanes look every 0.1 s.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

PY = sys.executable
STAMP = "date +%s.%N"  # the job itself says when it started running
# A word in every long job's command line: whatever is left of them at the end is killed.
MARKER = f"600.{os.getpid():07d}1"  # `sleep MARKER` sleeps 600 s
# About 1 MB/s to stdout: 10 KB every 10 ms, paced on the clock.
PRINTER = (
    "import sys, time\nchunk = (b'x' * 99 + b'\\n') * 100\nstart = time.monotonic()\n"
    "for n in range(10**9):\n    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush()\n"
    "    time.sleep(max(start + n * 0.01 - time.monotonic(), 0))\n"
)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_runner.config.loader import load_config  # noqa: E402
from batch_runner.runs import queue  # noqa: E402
from batch_runner.runs.context import RunnerContext  # noqa: E402
from batch_runner.timefmt import parse_iso  # noqa: E402

STARTED: list[subprocess.Popen] = []
TAILS: dict[int, collections.deque[str]] = {}  # a scheduler's last lines of log


def project(root: Path, jobs: list[dict], **settings: object) -> dict[str, str]:
    (root / "config").mkdir(parents=True)
    document = {"jobs": jobs, "settings": {"kill_grace": 0.5, "shutdown_grace": 0, **settings}}
    (root / "config" / "batch_config.json").write_text(json.dumps(document))
    env = {k: v for k, v in os.environ.items() if k != "BATCH_RUNNER_CONFIG"}
    return {**env, "BATCH_RUNNER_ROOT": str(root)}


def context(root: Path) -> RunnerContext:
    return RunnerContext(load_config(root / "config" / "batch_config.json", root))


def start(env: dict[str, str], *argv: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "-m", "batch_runner", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    STARTED.append(proc)
    return proc


def start_scheduler(env: dict[str, str]) -> subprocess.Popen:
    proc = start(env, "scheduler")
    assert proc.stderr is not None
    tail = TAILS[proc.pid] = collections.deque(maxlen=5)
    for line in proc.stderr:
        tail.append(line.strip())
        if "scheduler started" in line:
            break
    # Then read its log as journald does, keeping the last lines in case it fails.
    threading.Thread(target=lambda: tail.extend(map(str.strip, proc.stderr)), daemon=True).start()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


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


def records(root: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted((root / "logs" / "batch").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def wait_for(
    check: Callable[[], bool], seconds: float, what: str, procs: tuple[subprocess.Popen, ...] = ()
) -> None:
    """Until ``check()``; a clear exit if it takes ``seconds`` or one of ``procs`` ends."""
    deadline = time.monotonic() + seconds
    while not check():
        for proc in procs:
            if proc.poll() is not None:
                said = " | ".join(TAILS[proc.pid]) if proc.pid in TAILS else proc.stderr.read()
                raise SystemExit(
                    f"bench_lanes: {' '.join(proc.args[3:])} exited {proc.returncode} while "
                    f"waiting for {what}: {said.strip()}"
                )
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_lanes: gave up waiting for {what}")
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def most_at_once(runs: list[dict]) -> int:
    edges = sorted(
        [(parse_iso(r["start_time"]), 1) for r in runs]
        + [(parse_iso(r["end_time"]), -1) for r in runs]
    )
    most = now = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def drain(root: Path, runs: int, width: int | None) -> tuple[float, float, int]:
    """(runs per second, scheduler CPU seconds per run, most at once) for one drain."""
    env = project(root, [], **({} if width is None else {"lanes": {"q": width}}))
    ctx = context(root)
    queue.set_paused(ctx, True)
    spec = queue.adhoc_spec(["sleep", "0.05"], 60.0)
    with ctx.store.transaction():
        for _ in range(runs):
            queue.add(ctx, spec, lane="default" if width is None else "q")
    proc = start_scheduler(env)
    before = cpu_seconds(proc.pid)
    queue.set_paused(ctx, False)
    ctx.store.close()
    done: list[dict] = []

    def all_done() -> bool:
        done[:] = [r for r in records(root) if r["status"] == "success"]
        return len(done) >= runs

    wait_for(all_done, runs * 0.2 + 30, f"{runs} runs to drain", (proc,))
    used = cpu_seconds(proc.pid) - before
    stop(proc)
    span = max(parse_iso(r["end_time"]) for r in done) - min(
        parse_iso(r["start_time"]) for r in done
    )
    return runs / span, used / runs, most_at_once(done)


def lateness(
    root: Path, samples: int, period: float, lanes: dict[str, int], busy: list[tuple[str, list]]
) -> list[float]:
    """Lateness (ms) of an interval job's runs while ``busy`` runs (lane, argv) hold slots."""
    stamp = {"name": "stamp", "command": STAMP, "schedule_type": "interval"}
    stamp |= {"schedule_time": str(period), **({"lane": "c"} if lanes else {})}
    env = project(root, [stamp], **({"lanes": lanes} if lanes else {}))
    ctx = context(root)
    for lane, argv in busy:
        queue.add(ctx, queue.adhoc_spec(argv, 900.0), lane=lane)
    proc = start_scheduler(env)
    running = lambda: len(ctx.store.runs_with_status("running")) >= len(busy)  # noqa: E731
    wait_for(running, 30, "the busy runs to start", (proc,))
    ctx.store.close()
    ready = time.time()
    found: list[dict] = []

    def enough() -> bool:
        found[:] = [
            r
            for r in records(root)
            if r["job_name"] == "stamp"
            and r["status"] == "success"
            and parse_iso(r["scheduled_for"]) > ready
        ]
        return len(found) >= samples

    wait_for(enough, samples * period * 3 + 30, f"{samples} timed runs", (proc,))
    stop(proc)
    return [
        (float(r["output"]) - datetime.fromisoformat(r["scheduled_for"]).timestamp()) * 1000
        for r in found[:samples]
    ]


class HandOff:
    """A lane ``w`` of ``width`` full of run-jobs of ``sleep`` jobs (h0, h1, ...), and a job
    ``stamp`` in it for a waiting run-job."""

    def __init__(self, root: Path, width: int) -> None:
        self.root, self.width = root, width
        self.holders = [f"h{i}" for i in range(width)]
        jobs = [{"name": h, "command": ["sleep", MARKER], "lane": "w"} for h in self.holders]
        jobs.append({"name": "stamp", "command": STAMP, "lane": "w"})
        for job in jobs:
            job |= {"schedule_type": "interval", "schedule_time": "86400", "enabled": False}
        self.env = project(root, jobs, lanes={"w": width})
        self.ctx = context(root)
        self.running: dict[str, subprocess.Popen] = {}
        self.seen: set[str] = set()

    def active(self, name: str) -> dict:
        return self.ctx.store.active_run_of_job(name) or {}

    def fill(self) -> subprocess.Popen:
        """Every slot held by a run-job, and one more run-job waiting for a slot."""
        for name in self.holders:
            if name not in self.running:
                self.running[name] = start(self.env, "run-job", name)
        # Running, and its process reported (SIGKILL of the job needs its group).
        filled = lambda: all(self.active(h).get("pgid") for h in self.holders)  # noqa: E731
        wait_for(filled, 30, "the lane to fill", tuple(self.running.values()))
        waiter = start(self.env, "run-job", "stamp")
        queued = lambda: self.active("stamp").get("status") == "pending"  # noqa: E731
        wait_for(queued, 30, "the waiter's run", (waiter, *self.running.values()))
        time.sleep(0.15 + random.random() * 0.1)  # it is waiting, at any phase of its polling
        return waiter

    def sample(self, name: str, dies: bool) -> tuple[float, float]:
        """Seconds from a SIGKILL that frees ``name``'s slot to the waiter's job running, and
        to the end in the freed run's record. With ``dies`` the holding run-job is killed and
        the waiter reaps its run (``interrupted``) before its own; else the holder's job is
        killed and its run-job records the end and lets the slot go, as when a run ends."""
        waiter = self.fill()
        victim, group = self.running.pop(name), self.active(name)["pgid"]
        killed = time.time()
        if dies:
            victim.kill()
        else:
            os.killpg(group, signal.SIGKILL)
        victim.wait(timeout=30)
        if waiter.wait(timeout=60) != 0:
            raise SystemExit(f"bench_lanes: the waiting run-job failed: {waiter.stderr.read()}")
        new = {r["job_name"]: r for r in records(self.root) if r["run_id"] not in self.seen}
        self.seen.update(r["run_id"] for r in new.values())
        freed = parse_iso(new[name]["end_time"]) - killed
        return float(new["stamp"]["output"]) - killed, freed

    def close(self) -> None:
        self.ctx.store.close()
        for proc in self.running.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def handoff(root: Path, width: int, samples: int, dies: bool) -> list[tuple[float, float]]:
    lane = HandOff(root, width)
    try:
        return [lane.sample(lane.holders[n % width], dies) for n in range(samples)]
    finally:
        lane.close()


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def report_drains(runs: int, drains: dict[str, tuple[float, float, int]]) -> None:
    title = f"drain of {runs} queued sleep 0.05"
    print(
        f"\n{title:<30} {'runs/s':>8} {'x q: 1':>8} {'efficiency':>11} {'CPU ms/run':>11}", end=""
    )
    print(f" {'most at once':>13}")
    base = drains["q: 1"][0]
    for name, (rate, cpu, most) in drains.items():
        width = int(name.split()[-1]) if name.startswith("q") else 1
        print(
            f"{'  ' + name:<30} {rate:>8.1f} {rate / base:>7.2f}x {rate / (width * base):>10.0%} "
            f"{cpu * 1000:>11.2f} {most:>13}"
        )
    print("  expected roughly 19, 38, 75 runs/s at width 1, 2, 4; no lanes = q: 1 within noise")


def report_lateness(samples: int, late: dict[str, list[float]]) -> None:
    title = f"dispatch lateness (ms), {samples} runs each"
    print(f"\n{title:<52} {'p50':>7} {'p95':>7} {'max':>7}  target")
    p50_a = percentiles(late["a"])[0]
    labels = {
        "a": "(a) no lanes, executor free",
        "b": "(b) lanes a,b,c of 2, one slot of each busy; in c",
        "c": "(c) as (b), lane a's run printing 1 MB/s",
    }
    for key, values in late.items():
        p50, p95, top = percentiles(values)
        target = "all < 50" if key == "a" else f"p50 {p50 - p50_a:+.2f} vs (a)"
        target += "; p50 <= (a) + 1, all < 50" if key == "b" else ""
        print(f"  {labels[key]:<50} {p50:>7.2f} {p95:>7.2f} {top:>7.2f}  {target}")


def report_handoffs(hand: dict[tuple[int, bool], list[tuple[float, float]]]) -> None:
    title = "hand-over (ms): a lane full of run-jobs, one more waiting"
    print(f"\n{title:<68} {'median':>7} {'max':>7}  expected")
    what = {True: "SIGKILL a holding run-job", False: "SIGKILL a holder's job"}
    expected = {1: "~ms: waits in flock", 2: "~50-100: looks every 0.1 s"}
    for (width, dies), pairs in hand.items():
        took, freed = [p[0] * 1000 for p in pairs], [p[1] * 1000 for p in pairs]
        label = f"  width {width}, {what[dies]}, to the waiter's job running"
        print(
            f"{label:<68} {statistics.median(took):>7.1f} {max(took):>7.1f}"
            f"  {expected[width]} ({len(pairs)} samples)"
        )
        if dies:
            label = "    of which until the waiter has reaped the dead run"
            print(f"{label:<68} {statistics.median(freed):>7.1f} {max(freed):>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="queued runs per drain")
    parser.add_argument("--widths", default="1,2,4", help="widths of lane q to drain with")
    parser.add_argument("--samples", type=int, default=60, help="runs per lateness measure")
    parser.add_argument("--period", type=float, default=0.25, help="interval of the timed job")
    parser.add_argument("--handoffs", type=int, default=7, help="samples per hand-over measure")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-lanes-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs
    try:
        drains = {"no lanes": drain(tmp / "none", args.runs, None)}
        for width in sorted({1, *(int(w) for w in args.widths.split(","))}):
            drains[f"q: {width}"] = drain(tmp / f"q{width}", args.runs, width)
        lanes = {"a": 2, "b": 2, "c": 2}
        sleep = ["sleep", MARKER]
        late = {"a": lateness(tmp / "late-a", args.samples, args.period, {}, [])}
        busy = [("a", sleep), ("b", sleep), ("c", sleep)]
        late["b"] = lateness(tmp / "late-b", args.samples, args.period, lanes, busy)
        busy[0] = ("a", [PY, "-c", PRINTER, MARKER])
        late["c"] = lateness(tmp / "late-c", args.samples, args.period, lanes, busy)
        hand = {
            (width, dies): handoff(tmp / f"hand{width}{dies}", width, args.handoffs, dies)
            for dies in (True, False)
            for width in (1, 2)
        }
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    report_drains(args.runs, drains)
    report_lateness(args.samples, late)
    report_handoffs(hand)


if __name__ == "__main__":
    main()
