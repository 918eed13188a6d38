"""The scheduler against the original design's loop, side by side in one run (issue 3).

    python benchmarks/bench_scheduler.py [--samples N] [--idle-seconds S]

- dispatch lateness: how long after its due time a job's process is running, for
  ``batch_runner scheduler``, for the original ``schedule.run_pending(); sleep(1)`` loop
  running the same command, and for the floor: a loop that sleeps to each due time and starts
  the same command, with no bookkeeping (the job's own stamp includes starting ``date``);
- idle CPU of a scheduler with 1,000 jobs that are not due, and of one whose paused queue holds
  a due run (it must sleep until `queue resume`, not spin; the test suite counts its wake-ups);
- resident memory of a scheduler with 10,000 jobs.
"""

from __future__ import annotations

import argparse
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
from datetime import datetime, timedelta
from pathlib import Path

PY = sys.executable
STAMP = "date +%s.%N"  # the job itself says when it started running


def write_config(root: Path, jobs: list[dict]) -> None:
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "batch_config.json").write_text(json.dumps({"jobs": jobs}))


def start_scheduler(root: Path) -> subprocess.Popen:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    proc = subprocess.Popen(
        [PY, "-m", "batch_runner", "scheduler"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "scheduler started" in line:
            break
    # Then read its log as journald does: each line wakes a reader, as it would in service.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def scheduler_lateness(root: Path, samples: int, period: float) -> list[float]:
    """Lateness (ms) of runs of an interval job: its own start stamp minus its occurrence."""
    write_config(
        root,
        [
            {
                "name": "stamp",
                "command": STAMP,
                "schedule_type": "interval",
                "schedule_time": str(period),
            }
        ],
    )
    proc = start_scheduler(root)
    results = root / "logs" / "batch"
    deadline = time.monotonic() + samples * period * 3 + 30
    records: list[dict] = []
    while len(records) < samples and time.monotonic() < deadline:
        time.sleep(period)
        records = [
            json.loads(line)
            for f in sorted(results.glob("*.jsonl"))
            for line in f.read_text().splitlines()
        ]
        records = [r for r in records if r["status"] == "success"]
    stop(proc)
    return [
        (float(r["output"]) - datetime.fromisoformat(r["scheduled_for"]).timestamp()) * 1000
        for r in records[:samples]
    ]


def floor_lateness(samples: int, period: float) -> list[float]:
    """Sleep to each due time and start the job: all that is left without a scheduler."""
    lateness: list[float] = []
    due = time.time() + period
    for _ in range(samples):
        time.sleep(max(due - time.time(), 0.0))
        out = subprocess.run(STAMP.split(), capture_output=True, text=True, timeout=60)
        lateness.append((float(out.stdout) - due) * 1000)
        due += period
    return lateness


def original_loop_lateness(samples: int) -> list[float]:
    """The original batch_runner.py: schedule.every(...).do(job); run_pending(); sleep(1)."""
    import schedule

    lateness: list[float] = []
    scheduler = schedule.Scheduler()

    def run_job() -> None:
        due = job.next_run.timestamp()  # the occurrence this call serves
        out = subprocess.run(STAMP, shell=True, capture_output=True, text=True, timeout=60)
        lateness.append((float(out.stdout) - due) * 1000)

    job = scheduler.every(2).seconds.do(run_job)

    # schedule counts an interval from the end of the last run, which locks its due times to
    # the phase of the loop's own sleep(1) and hides the polling delay. Real due times (a
    # daily 02:00, a weekly Monday 09:00) fall anywhere within the loop's second: model that.
    def next_at_random_phase() -> None:
        job.next_run = datetime.now() + timedelta(seconds=1 + random.random())

    job._schedule_next_run = next_at_random_phase
    next_at_random_phase()
    while len(lateness) < samples:
        scheduler.run_pending()
        time.sleep(1)
    return lateness


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def many_jobs(count: int) -> list[dict]:
    return [
        {
            "name": f"job{i}",
            "command": "true",
            "schedule_type": "daily",
            "schedule_time": f"{(i // 60) % 24:02d}:{i % 60:02d}:30",
            "enabled": True,
        }
        for i in range(count)
    ]


def idle_cpu(root: Path, jobs: int, seconds: float) -> float:
    """Percent of one CPU used by an idle scheduler over ``seconds``."""
    # Nothing due during the measurement: every job is due at least an hour from now.
    now = datetime.now()
    hour = (now.hour + 2) % 24
    write_config(
        root,
        [
            {
                "name": f"job{i}",
                "command": "true",
                "schedule_type": "daily",
                "schedule_time": f"{hour:02d}:{i % 60:02d}",
            }
            for i in range(jobs)
        ],
    )
    proc = start_scheduler(root)
    time.sleep(1.0)  # let start-up settle
    before, started = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - started
    stop(proc)
    return used / elapsed * 100


def paused_cpu(root: Path, seconds: float) -> float:
    """Percent of one CPU used by a scheduler whose paused queue holds a due run."""
    write_config(root, [])
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    for argv in (["queue", "pause"], ["queue", "add", "--", "true"]):
        subprocess.run([PY, "-m", "batch_runner", *argv], env=env, check=True, capture_output=True)
    proc = start_scheduler(root)
    time.sleep(1.0)  # let start-up settle
    before, started = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - started
    stop(proc)
    return used / elapsed * 100


def memory_with_jobs(root: Path, jobs: int) -> float:
    write_config(root, many_jobs(jobs))
    proc = start_scheduler(root)
    time.sleep(1.0)
    rss = rss_mb(proc.pid)
    stop(proc)
    return rss


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), statistics.mean(ordered), p99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100, help="runs per lateness measure")
    parser.add_argument("--period", type=float, default=0.25, help="interval of the timed job")
    parser.add_argument("--original-samples", type=int, default=15)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-sched-bench-"))
    try:
        ours = scheduler_lateness(tmp / "lateness", args.samples, args.period)
        floor = floor_lateness(args.samples, args.period)
        theirs = original_loop_lateness(args.original_samples)
        cpu = idle_cpu(tmp / "idle", 1000, args.idle_seconds)
        paused = paused_cpu(tmp / "paused", args.idle_seconds)
        memory = memory_with_jobs(tmp / "memory", 10_000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    o_med, _, o_p99 = summary(ours)
    t_med, t_mean, t_p99 = summary(theirs)
    print(f"\n{'measure':<52} {'value':>10}  target")
    print(
        f"{'lateness, batch_runner scheduler: median':<52} {o_med:>7.2f} ms  < 3 ms "
        f"({len(ours)} runs)"
    )
    print(f"{'lateness, batch_runner scheduler: p99':<52} {o_p99:>7.2f} ms  < 10 ms")
    f_med, _, f_p99 = summary(floor)
    print(
        f"{'lateness, floor (sleep to due, start date): median':<52} {f_med:>7.2f} ms  "
        f"(ours +{o_med - f_med:.2f} ms)"
    )
    print(f"{'lateness, floor (sleep to due, start date): p99':<52} {f_p99:>7.2f} ms")
    print(
        f"{'lateness, original run_pending()+sleep(1): median':<52} {t_med:>7.2f} ms  "
        f"({len(theirs)} runs)"
    )
    print(f"{'lateness, original run_pending()+sleep(1): mean':<52} {t_mean:>7.2f} ms")
    print(f"{'lateness, original run_pending()+sleep(1): p99':<52} {t_p99:>7.2f} ms")
    print(f"{'  ratio original / ours (median)':<52} {t_med / o_med:>7.0f} x")
    idle_label = f"idle CPU, 1,000 jobs, over {args.idle_seconds:g} s"
    print(f"{idle_label:<52} {cpu:>7.3f} %   < 0.05 %")
    paused_label = f"idle CPU, paused queue holding a due run, over {args.idle_seconds:g} s"
    print(f"{paused_label:<52} {paused:>7.3f} %   < 0.05 %")
    print(f"{'RSS, 10,000 jobs':<52} {memory:>7.1f} MB  < 64 MB")


if __name__ == "__main__":
    main()
