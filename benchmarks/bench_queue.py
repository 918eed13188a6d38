"""The queue's speed, side by side in one run (issues 5 and 19).

    python benchmarks/bench_queue.py [--runs N] [--rounds R] [--repeat K]

- the drain of N queued `true` runs, measured the same way for each queue: a gate run
  (`sh -c 'while [ ! -e go ]; ...'`) holds the queue while the N runs are queued, the clock
  runs from touching `go` to the end of the last run: `batch_runner queue worker` exiting (its
  start-up happens while the gate holds it), `tsp -w LAST` (`tsp -S 1`), `nq -w`. Beside them,
  Python starting the same processes one by one (`subprocess.run(["true"],
  start_new_session=True)`). Each round measures all four in a rotated order, each in a fresh
  folder; then the medians, their ratios, and the old figure (worker start-up included);
- `queue add` latency with 10 and with 10,000 runs pending;
- `queue list` with 100,000 finished runs;
- `stop` latency: from running `batch_runner stop` to the end of the run it stops (SPEC: within
  2 s plus `kill_grace`); the test suite only checks that a stop ends a run at all.
Run it with the Python that has batch_runner installed (a non-editable `pip install .`), on an
otherwise idle machine; task-spooler and nq are the Debian packages task-spooler and nq.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PY = sys.executable
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch_runner.runs.queue import adhoc_spec  # noqa: E402
from batch_runner.state.sqlite.store import SqliteStore as Store  # noqa: E402

WORKER = [PY, "-m", "batch_runner", "queue", "worker"]
DEVNULL = subprocess.DEVNULL
GATE_RUN = "bench-gate"
# Every queued tsp job is a client holding a connection, and the server takes at most about
# 1,000 at once (the adding client then blocks for ever): stay under that.
TSP_MAX_QUEUED = 950


class Failed(Exception):
    """A queue did not drain: reported in place of its figure, never worked around."""


def quiet(argv: list[str], env: dict[str, str]) -> int:
    return subprocess.run(argv, env=env, stdout=DEVNULL, stderr=DEVNULL).returncode


def project(root: Path) -> dict[str, str]:
    (root / "config").mkdir(parents=True)
    (root / "config" / "batch_config.json").write_text(json.dumps({"jobs": []}))
    return {**os.environ, "BATCH_RUNNER_ROOT": str(root)}


def store_of(root: Path) -> Store:
    return Store(root / "logs" / "state" / "batch_runner.sqlite3")


def fill(root: Path, count: int, status: str, gate: str | None = None) -> None:
    """``count`` runs straight into the store (what ``queue add`` persists), in one go; a
    ``gate`` command goes first (earliest seq, highest priority), so it runs before them."""
    store = store_of(root)
    now = time.time()
    spec = adhoc_spec(["true"], 60.0)
    rows = [(f"bench-{status}-{i:07d}", spec, 0) for i in range(count)]
    if gate is not None:
        rows.insert(0, (GATE_RUN, adhoc_spec([gate], 600.0), 1))
    fixed: dict[str, object] = {"job_name": "adhoc", "kind": "adhoc", "trigger": "queue"}
    ended = None if status == "pending" else now
    fixed.update(status=status, due_at=now, created_at=now, ended_at=ended)
    fixed.update(attempt=int(ended is not None), exit_code=0 if status == "success" else None)
    with store.transaction():
        for run_id, run_spec, priority in rows:
            store.insert_run({"run_id": run_id, "spec": run_spec, "priority": priority, **fixed})
    store.close()


def _gate(folder: Path) -> tuple[Path, str]:
    go = folder / "go"
    return go, f"while [ ! -e {go} ]; do sleep 0.005; done"


def _worker_failed(worker: subprocess.Popen[bytes], errors: Path, what: str) -> Failed:
    lines = errors.read_text(errors="replace").strip().splitlines()
    said = f": {lines[-1]}" if lines else ""
    return Failed(f"the worker {what} (exit {worker.returncode}){said}")


def rate_batch_runner(folder: Path, runs: int) -> float:
    """Gated like tsp and nq: the worker starts, takes the gate run, then the clock starts."""
    env = project(folder)
    go, wait_script = _gate(folder)
    fill(folder, runs, "pending", gate=wait_script)
    store, errors = store_of(folder), folder / "worker.err"
    with open(errors, "wb") as err:
        worker = subprocess.Popen(WORKER, env=env, stdout=DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    try:
        while (store.get_run(GATE_RUN) or {}).get("status") != "running":
            if worker.poll() is not None:
                raise _worker_failed(worker, errors, "exited before the gate run started")
            if time.monotonic() > deadline:
                raise Failed("the gate run was not shown `running` within 60 s")
            time.sleep(0.003)
        store.close()  # nothing of ours holds the database while the worker drains
        started = time.perf_counter()
        go.touch()
        worker.wait(timeout=300)
        elapsed = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        raise Failed("the worker did not finish within 300 s") from None
    finally:
        go.touch()  # whatever happened, the gate run ends
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if worker.returncode != 0:
        raise _worker_failed(worker, errors, "failed")
    store = store_of(folder)
    done = len(store.runs_with_status("success")) - 1
    store.close()
    if done != runs:
        raise Failed(f"only {done} of the {runs} runs succeeded")
    return runs / elapsed


def rate_cold_worker(folder: Path, runs: int) -> float:
    """The figure before issue 19: N runs from a cold start, the worker's start-up included."""
    env = project(folder)
    fill(folder, runs, "pending")
    # Validate the new config once (as any earlier command would have): the drain is timed,
    # not the one-time validation that writes the config snapshot.
    if quiet([PY, "-m", "batch_runner", "validate"], env) != 0:
        raise Failed("validate failed")
    started = time.perf_counter()
    code = quiet(WORKER, env)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise Failed(f"the worker failed (exit {code})")
    return runs / elapsed


def rate_python_loop(folder: Path, runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        subprocess.run(["true"], start_new_session=True)
    return runs / (time.perf_counter() - started)


def rate_task_spooler(folder: Path, runs: int) -> float:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TS_")}
    # Its own server (socket) and its output files (one per job, as our run logs) in here.
    env.update(TS_SOCKET=str(folder / "ts.sock"), TMPDIR=str(folder))
    env["TS_MAXFINISHED"] = str(runs + 10)
    go, wait_script = _gate(folder)
    out = folder / "tsp.out"

    def tsp(*argv: str) -> str:
        # Each queued job is a forked tsp client that keeps its stdout: a pipe would make
        # run() wait for the job itself, so the id comes back through a file.
        with open(out, "w+") as sink:
            subprocess.run(["tsp", *argv], env=env, stdout=sink, stderr=DEVNULL)
            sink.seek(0)
            return sink.read()

    try:
        tsp("-S", "1")
        tsp("sh", "-c", wait_script)  # holds the queue while the runs are added
        last = ""
        for _ in range(runs):
            last = tsp("true").strip()
        started = time.perf_counter()
        go.touch()
        tsp("-w", last)
        return runs / (time.perf_counter() - started)
    finally:
        go.touch()
        tsp("-K")  # returns before the server is gone, which removes its socket as it exits
        deadline = time.monotonic() + 5
        while (folder / "ts.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.01)


def rate_nq(folder: Path, runs: int) -> float:
    env = {**os.environ, "NQDIR": str(folder / "nq")}
    go, wait_script = _gate(folder)
    try:
        quiet(["nq", "sh", "-c", wait_script], env)
        for _ in range(runs):
            quiet(["nq", "true"], env)
        started = time.perf_counter()
        go.touch()
        quiet(["nq", "-w"], env)
        return runs / (time.perf_counter() - started)
    finally:
        go.touch()


DRAINS: dict[str, tuple[str | None, Callable[[Path, int], float]]] = {
    "python loop": (None, rate_python_loop),
    "batch_runner": (None, rate_batch_runner),
    "task-spooler": ("tsp", rate_task_spooler),
    "nq": ("nq", rate_nq),
}


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
        subprocess.run(argv, env=env, check=True, stdout=DEVNULL)
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
    store = store_of(root)
    samples = []
    for _ in range(repeat):
        run_id = subprocess.run(
            [PY, "-m", "batch_runner", "queue", "add", "--", "sleep", "1000"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        worker = subprocess.Popen(WORKER, env=env, stdout=DEVNULL, stderr=DEVNULL)
        while (store.get_run(run_id) or {}).get("status") != "running":
            time.sleep(0.01)
        asked = time.time()
        stop = [PY, "-m", "batch_runner", "stop", run_id]
        subprocess.run(stop, env=env, check=True, stdout=DEVNULL, stderr=DEVNULL)
        worker.wait(timeout=60)
        samples.append((store.get_run(run_id) or {})["ended_at"] - asked)
    store.close()
    return samples


Rounds = dict[str, list[float | None]]


def drain_rounds(tmp: Path, runs: int, rounds: int) -> tuple[Rounds, list[str]]:
    """Every queue once a round, the order rotated so none always goes first."""
    names = [name for name, (tool, _) in DRAINS.items() if tool is None or shutil.which(tool)]
    rates: Rounds = {name: [] for name in names}
    failures = []
    for round_ in range(rounds):
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            folder = tmp / f"round{round_ + 1}-{name.replace(' ', '-')}"
            folder.mkdir()
            try:
                rates[name].append(DRAINS[name][1](folder, runs))
            except Failed as failure:
                rates[name].append(None)
                failures.append(f"round {round_ + 1}, {name}: {failure}")
    return rates, failures


def _rate(value: float | None) -> str:
    return "failed" if value is None else f"{value:.0f}"


def _ratio(ours: float | None, other: float | None, form: str) -> str:
    return "n/a" if ours is None or other is None else form.format(ours / other)


def _median(values: list[float | None]) -> float | None:
    # A failed round makes the median n/a rather than a median of the rounds that worked.
    return None if None in values else statistics.median(v for v in values if v is not None)


def print_drains(rates: Rounds, failures: list[str], runs: int, cold: float | None) -> None:
    names, medians = list(rates), {name: _median(values) for name, values in rates.items()}
    rows = [(str(i + 1), {n: rates[n][i] for n in names}) for i in range(len(rates[names[0]]))]
    print(f"\ndrain of {runs} queued `true` runs, runs/s (each round in its own order)")
    print(f"{'round':<8}" + "".join(f"{n:>14}" for n in names) + f"{'br/loop':>9}{'br/tsp':>9}")
    for label, got in [*rows, ("median", medians)]:
        ours, tsp = got["batch_runner"], got.get("task-spooler")
        print(
            f"{label:<8}{''.join(f'{_rate(got[n]):>14}' for n in names)}"
            f"{_ratio(ours, got['python loop'], '{:.0%}'):>9}{_ratio(ours, tsp, '{:.2f}x'):>9}"
        )
    for failure in failures:
        print(f"  FAILED {failure}")
    targets = (("python loop", "{:.0%}", ">= 75%"), ("task-spooler", "{:.2f}x", ">= 1.2x"))
    for name, form, target in (*targets, ("nq", "{:.2f}x", "beside them")):
        value = _ratio(medians["batch_runner"], medians[name], form) if name in medians else "-"
        print(f"{f'batch_runner / {name} (medians)':<54} {value:>10}  {target}")
    if "nq" in medians:
        print(
            "  (nq forks each job at enqueue, where it waits in flock: its drain is an exec per "
            "run, plus rescans of its folder that grow with the queue)"
        )
    cold_label = f"batch_runner, cold start (the old method, {runs} runs)"
    print(f"{cold_label:<54} {_rate(cold):>8} /s  worker start-up included, one sample")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=900)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument(
        "--rounds", type=int, default=3, help="every queue once a round; medians are reported"
    )
    args = parser.parse_args()
    if args.runs > TSP_MAX_QUEUED and shutil.which("tsp"):
        parser.error(f"task-spooler takes about 1,000 queued jobs: use --runs <= {TSP_MAX_QUEUED}")
    print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}, os.cpu_count() {os.cpu_count()}", flush=True)
    # Folders are deleted only at the very end: a mass delete slows file creation for minutes.
    tmp = Path(tempfile.mkdtemp(prefix="br-queue-bench-"))
    try:
        create_ms = file_creation_ms(tmp / "create")
        rates, failures = drain_rounds(tmp, args.runs, args.rounds)
        try:
            cold: float | None = rate_cold_worker(tmp / "cold", args.runs)
        except Failed as failure:
            cold = None
            failures.append(f"cold start: {failure}")
        add_10 = add_latency(tmp / "add10", 10, args.repeat)
        add_10k = add_latency(tmp / "add10k", 10_000, args.repeat)
        list_100k = list_latency(tmp / "list", 100_000, max(5, args.repeat // 3))
        stops = stop_latency(tmp / "stop", max(5, args.repeat // 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{'creating a file on this disk (one per run: its log)':<54} {create_ms:>8.3f} ms  "
        "~0.05 normally; up to ~1 after a mass delete (ext4 without a journal)"
    )
    print_drains(rates, failures, args.runs, cold)
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
