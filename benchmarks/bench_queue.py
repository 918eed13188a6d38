"""The queue's speed, side by side in one run (issue 5).

    python benchmarks/bench_queue.py [--runs N]

- drain rate of N queued `true` runs by `batch_runner queue worker`, against Python starting the
  same processes one by one (`subprocess.run(["true"], start_new_session=True)`), and against
  task-spooler (`tsp`) and `nq` when they are installed (Debian packages task-spooler, nq);
- `queue add` latency with 10 and with 10,000 runs pending;
- `queue list` with 100,000 finished runs;
- `stop` latency: from running `batch_runner stop` to the end of the run it stops (SPEC: within
  2 s plus `kill_grace`); the test suite only checks that a stop ends a run at all.
Run it with the Python that has batch_runner installed (a non-editable `pip install .`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_runner.runs.queue import adhoc_spec  # noqa: E402
from batch_runner.state.sqlite.store import SqliteStore as Store  # noqa: E402


def project(root: Path) -> dict[str, str]:
    (root / "config").mkdir(parents=True)
    (root / "config" / "batch_config.json").write_text(json.dumps({"jobs": []}))
    return {**os.environ, "BATCH_RUNNER_ROOT": str(root)}


def fill(root: Path, count: int, status: str, command: str = "true") -> None:
    """``count`` runs straight into the store (what ``queue add`` persists), in one go."""
    store = Store(root / "logs" / "state" / "batch_runner.sqlite3")
    now = time.time()
    spec = adhoc_spec([command], 60.0)
    with store.transaction():
        for i in range(count):
            store.insert_run(
                {
                    "run_id": f"bench-{status}-{i:07d}",
                    "job_name": "adhoc",
                    "kind": "adhoc",
                    "spec": spec,
                    "trigger": "queue",
                    "status": status,
                    "due_at": now,
                    "created_at": now,
                    "ended_at": now if status != "pending" else None,
                    "attempt": 0 if status == "pending" else 1,
                    "exit_code": 0 if status == "success" else None,
                }
            )
    store.close()


def rate_batch_runner(root: Path, runs: int) -> float:
    env = project(root)
    fill(root, runs, "pending")
    # Validate the new config once (as any earlier command would have): the drain is timed,
    # not the one-time validation that writes the config snapshot.
    subprocess.run(
        [PY, "-m", "batch_runner", "validate"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    started = time.perf_counter()
    subprocess.run(
        [PY, "-m", "batch_runner", "queue", "worker"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return runs / (time.perf_counter() - started)


def rate_python_loop(runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run(["true"], start_new_session=True)
    return runs / (time.perf_counter() - started)


def _gate(tmp: Path) -> tuple[Path, str]:
    go = tmp / "go"
    return go, f"while [ ! -e {go} ]; do sleep 0.005; done"


TSP_MAX_QUEUED = 900


def rate_task_spooler(tmp: Path, runs: int) -> float | None:
    if not shutil.which("tsp"):
        return None
    env = {
        **os.environ,
        "TS_SOCKET": str(tmp / "ts.sock"),
        "TS_MAXFINISHED": str(runs + 10),
        "TS_SAVELIST": "",
    }
    go, wait_script = _gate(tmp)

    out = tmp / "tsp.out"

    def tsp(*argv: str) -> str:
        # Each queued job is a forked tsp client that keeps its stdout: a pipe would make
        # run() wait for the job itself, so the id comes back through a file.
        with open(out, "w+") as sink:
            subprocess.run(["tsp", *argv], env=env, stdout=sink, stderr=subprocess.DEVNULL)
            sink.seek(0)
            return sink.read()

    # Every queued tsp job is a client holding a connection, and the server takes at most
    # about 1,000 at once (the adding client then blocks for ever): stay under that.
    runs = min(runs, TSP_MAX_QUEUED)
    tsp("-S", "1")
    tsp("sh", "-c", wait_script)  # holds the queue while the runs are added
    last = ""
    for _ in range(runs):
        last = tsp("true").strip()
    started = time.perf_counter()
    go.touch()
    tsp("-w", last)
    elapsed = time.perf_counter() - started
    tsp("-K")
    return runs / elapsed


def rate_nq(tmp: Path, runs: int) -> float | None:
    if not shutil.which("nq"):
        return None
    nqdir = tmp / "nq"
    nqdir.mkdir()
    env = {**os.environ, "NQDIR": str(nqdir)}
    go, wait_script = _gate(tmp)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["nq", "sh", "-c", wait_script], env=env, **quiet)
    for _ in range(runs):
        subprocess.run(["nq", "true"], env=env, **quiet)
    started = time.perf_counter()
    go.touch()
    subprocess.run(["nq", "-w"], env=env, **quiet)
    return runs / (time.perf_counter() - started)


def file_creation_ms(folder: Path, count: int = 300) -> float:
    """What creating one file costs on this disk now (a run's log file is one).

    On ext4 without a journal (this machine's disk) the inode allocator skips every inode
    freed in the last 1-6 minutes, so a file costs 0.05 ms here normally and up to ~1 ms right
    after a mass delete (a test suite, a previous benchmark's clean-up). The files are kept:
    deleting them would slow what is measured next.
    """
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for i in range(count):
        os.close(os.open(folder / f"{i}.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - started) / count * 1000


def median_ms(argv: list[str], env: dict[str, str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def add_latency(root: Path, pending: int, repeat: int) -> float:
    env = project(root)
    fill(root, pending, "pending")
    return median_ms([PY, "-m", "batch_runner", "queue", "add", "--", "true"], env, repeat)


def list_latency(root: Path, finished: int, repeat: int) -> float:
    env = project(root)
    fill(root, finished, "success")
    return median_ms([PY, "-m", "batch_runner", "queue", "list"], env, repeat)


def stop_latency(root: Path, repeat: int) -> list[float]:
    """Seconds from starting `stop` to the end of a `sleep` run that a queue worker executes."""
    env = project(root)
    store = Store(root / "logs" / "state" / "batch_runner.sqlite3")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    samples = []
    for _ in range(repeat):
        run_id = subprocess.run(
            [PY, "-m", "batch_runner", "queue", "add", "--", "sleep", "1000"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        worker = subprocess.Popen([PY, "-m", "batch_runner", "queue", "worker"], env=env, **quiet)
        while (store.get_run(run_id) or {}).get("status") != "running":
            time.sleep(0.01)
        asked = time.time()
        subprocess.run([PY, "-m", "batch_runner", "stop", run_id], env=env, check=True, **quiet)
        worker.wait(timeout=60)
        samples.append((store.get_run(run_id) or {})["ended_at"] - asked)
    store.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the python loop and the worker this many times; "
        "the medians are reported (this machine's speed drifts)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-queue-bench-"))
    try:
        create_ms = file_creation_ms(tmp / "create")
        loops, ours_rates = [], []
        for round_ in range(args.rounds):
            loops.append(rate_python_loop(args.runs))
            ours_rates.append(rate_batch_runner(tmp / f"drain{round_}", args.runs))
        loop, ours = statistics.median(loops), statistics.median(ours_rates)
        tsp = rate_task_spooler(tmp, args.runs)
        nq = rate_nq(tmp, args.runs)
        add_10 = add_latency(tmp / "add10", 10, args.repeat)
        add_10k = add_latency(tmp / "add10k", 10_000, args.repeat)
        list_100k = list_latency(tmp / "list", 100_000, max(5, args.repeat // 3))
        stops = stop_latency(tmp / "stop", max(5, args.repeat // 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'measure':<54} {'value':>12}  target / note")
    print(
        f"{'creating a file on this disk (one per run: its log)':<54} {create_ms:>8.3f} ms  "
        "~0.05 normally; up to ~1 after a mass delete (ext4 without a journal)"
    )
    print(f"{'python loop, subprocess.run(true, new session)':<54} {loop:>8.0f} /s")
    print(
        f"{'  each round: python loop / worker (/s)':<54} "
        + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(loops, ours_rates, strict=True))
    )
    label = f"batch_runner queue worker, {args.runs} queued true"
    print(f"{label:<54} {ours:>8.0f} /s  {ours / loop:.0%} of the python loop (target >= 75%)")
    tsp_name = f"task-spooler (tsp -S 1), {min(args.runs, TSP_MAX_QUEUED)} queued true"
    for name, rate in ((tsp_name, tsp), ("nq", nq)):
        if rate is None:
            print(f"{name:<54} {'n/a':>10}    not installed")
        else:
            print(f"{name:<54} {rate:>8.0f} /s  batch_runner is {ours / rate:.2f}x")
    print(f"{'queue add, 10 pending':<54} {add_10:>8.1f} ms  < 50 ms")
    print(
        f"{'queue add, 10,000 pending':<54} {add_10k:>8.1f} ms  "
        f"{add_10k / add_10 - 1:+.0%} vs 10 pending (target within 20%)"
    )
    print(f"{'queue list, 100,000 finished runs':<54} {list_100k:>8.1f} ms  < 300 ms")
    stop_label = f"stop to the run's end, median of {len(stops)} (max)"
    print(
        f"{stop_label:<54} {statistics.median(stops) * 1000:>8.0f} ms  "
        f"({max(stops) * 1000:.0f}) within 2 s + kill_grace (SPEC)"
    )


if __name__ == "__main__":
    main()
