"""Reading back 200 MB of results: peak memory and time of ``history`` and ``logs`` (issue 16.6).

    python benchmarks/bench_history.py [--megabytes N] [--repeat N]

Builds one day file of N MB of JSONL results (default 200) in a temporary log dir, then measures
each command's peak RSS (``/usr/bin/time``'s %M, else ``ru_maxrss`` from ``os.wait4``) and wall
time, the commands taking turns, beside a baseline that reads the same file with a standard
tool (``tail -n 20``, ``grep -c``). The records the filters and ``logs`` look for are the oldest
in the file (the run is known only from the results), so those commands read all of it;
``history --limit 0`` (which reads no results) is the floor of the CLI itself. Run it with the
Python that has batch_runner installed (``.venv/bin/python``).
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
from datetime import datetime, timedelta
from pathlib import Path

PY = sys.executable
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
OLD_RUN = "20000101-000000-0bench"  # the oldest record: what `logs` and the filters look for


def make_project(root: Path, megabytes: int) -> Path:
    """A config of a few jobs and one day file of ``megabytes`` MB; returns the file."""
    config = root / "config" / "batch_config.json"
    config.parent.mkdir(parents=True)
    jobs = [f"job{i}" for i in range(10)] + ["rare"]
    config.write_text(
        json.dumps(
            {
                "jobs": [
                    {
                        "name": n,
                        "command": "true",
                        "schedule_type": "daily",
                        "schedule_time": "02:00",
                    }
                    for n in jobs
                ]
            }
        )
    )
    day = (datetime.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    folder = root / "logs" / "batch"
    folder.mkdir(parents=True)
    results = folder / f"batch_{day:%Y%m%d}.jsonl"
    run_log = root / "logs" / "runs" / f"{day:%Y%m%d}" / f"{OLD_RUN}.log"
    run_log.parent.mkdir(parents=True)
    run_log.write_text("the output of the oldest run\n")
    with results.open("w") as out:
        out.write(_line(day, 0, "rare", "error", OLD_RUN, str(run_log)))
        size, i = 0, 1
        while size < megabytes * 1_000_000:
            chunk = "".join(
                _line(day, i + k, f"job{(i + k) % 10}", "success", f"run-{i + k:08d}", None)
                for k in range(1000)
            )
            out.write(chunk)
            size += len(chunk)
            i += 1000
    return results


def _line(day: datetime, i: int, name: str, status: str, run_id: str, log: str | None) -> str:
    start = day + timedelta(seconds=i * 0.2)
    # Every 500th run is long: it ends after many shorter runs that started later.
    end = start + timedelta(seconds=600 if i % 500 == 0 else 0.1)
    record = {
        "job_name": name,
        "start_time": start.astimezone().isoformat(timespec="milliseconds"),
        "end_time": end.astimezone().isoformat(timespec="milliseconds"),
        "status": status,
        "output": f"processed batch {i}\nrows: {i * 7 % 1000}\nall done\n" * 4,
        "error": "exit code 1" if status == "error" else None,
        "run_id": run_id,
        "attempt": 1,
        "max_attempts": 1,
        "exit_code": 1 if status == "error" else 0,
        "duration_seconds": round((end - start).total_seconds(), 3),
        "trigger": "schedule",
        "scheduled_for": start.astimezone().isoformat(timespec="seconds"),
        "output_truncated": False,
        "log_file": log,
        "host": "bench-host",
        "pid": 10_000 + i % 50_000,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time (ms) and peak RSS (MB) of one run of ``argv``.

    Its output goes to a file: GNU grep stops at the first match when its output is /dev/null.
    """
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as report:
        # A child forked from this process counts this process's RSS in its peak; the child of
        # /usr/bin/time does not, so the small figures of the baselines stay true.
        wrapper = [TIME, "-f", "%M", "-o", report.name] if TIME else []
        start = time.perf_counter()
        child = subprocess.Popen([*wrapper, *argv], env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = (time.perf_counter() - start) * 1000
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{argv} failed: {out.read().decode()[-500:]}")
        peak_kb = int(report.read().split()[-1]) if TIME else usage.ru_maxrss
    return elapsed, peak_kb / 1024


def side_by_side(
    commands: dict[str, list[str]], repeat: int, env: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """Median wall time and median peak RSS of each, the commands taking turns.

    The median, not the largest peak: a run that recompiles a module another hand just edited
    (the .pyc is stale) peaks higher for reasons that have nothing to do with reading results.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            samples[name].append(measure(argv, env))
    return {
        name: (statistics.median(t for t, _ in got), statistics.median(r for _, r in got))
        for name, got in samples.items()
    }


def check(cli: list[str], env: dict[str, str]) -> None:
    """The commands find what the benchmark says they find (the oldest records)."""

    def out(*argv: str) -> str:
        done = subprocess.run([*cli, *argv], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed: {done.stderr[-500:]}")
        return done.stdout

    assert [r["run_id"] for r in json.loads(out("history", "--status", "error", "--json"))] == [
        OLD_RUN
    ]
    assert [r["run_id"] for r in json.loads(out("history", "rare", "--json"))] == [OLD_RUN]
    assert len(json.loads(out("history", "--json"))) == 20
    assert out("logs", OLD_RUN[:18]) == "the output of the oldest run\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-bench-history-"))
    try:
        results = make_project(tmp, args.megabytes)
        size = results.stat().st_size
        rows = run(tmp, results, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, size, args.repeat)


def report(rows: list[tuple], size: int, repeat: int) -> None:
    how = "/usr/bin/time %M" if TIME else "wait4's ru_maxrss (counts this process's RSS too)"
    print(f"\nresults: one day file of {size / 1e6:.0f} MB; medians of {repeat} runs each")
    print(f"peak RSS from {how}; '+RSS': above the start-up floor (first row)\n")
    print(
        f"{'command':<38} {'RSS MB':>7} {'+RSS':>6} {'time ms':>8}   {'baseline':<28} "
        f"{'RSS MB':>7} {'time ms':>8}  {'time ratio':>10}"
    )
    floor = rows[0][1][1]
    for name, (ms, rss), base, (base_ms, base_rss) in rows:
        left = f"{name:<38} {rss:>7.1f} {rss - floor + 0.0:>6.1f} {ms:>8.0f}   "
        if not base:
            print(left)
            continue
        print(f"{left}{base:<28} {base_rss:>7.1f} {base_ms:>8.0f}  {ms / base_ms:>9.1f}x")


def run(root: Path, results: Path, repeat: int) -> list[tuple]:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    script = shutil.which("batch_runner", path=str(Path(PY).parent)) or shutil.which("batch_runner")
    cli = [script] if script else [PY, "-m", "batch_runner"]
    check(cli, env)  # also warms the config snapshot and the page cache
    file = str(results)
    pairs = [
        ("history --limit 0 (reads no results)", ["history", "--limit", "0"], "", []),
        ("history --limit 20", ["history", "--limit", "20"], "tail -n 20", ["tail", "-n", "20"]),
        (
            "history --status error --limit 1",
            ["history", "--status", "error", "--limit", "1"],
            'grep -c \'"status": "error"\'',
            ["grep", "-c", '"status": "error"'],
        ),
        (
            "history rare (a job's 20 latest)",
            ["history", "rare"],
            "grep -c rare",
            ["grep", "-c", "rare"],
        ),
        (
            "logs RUN_ID of the oldest run",
            ["logs", OLD_RUN[:18]],
            "grep -c RUN_ID",
            ["grep", "-c", OLD_RUN[:18]],
        ),
        (
            "history --json --limit 20",
            ["history", "--json", "--limit", "20"],
            "tail -n 20",
            ["tail", "-n", "20"],
        ),
    ]
    commands = {name: [*cli, *argv] for name, argv, _, _ in pairs}
    commands.update({base: [*argv, file] for _, _, base, argv in pairs if base})
    figures = side_by_side(commands, repeat, env)
    return [
        (name, figures[name], base, figures[base] if base else (0.0, 0.0))
        for name, _, base, _ in pairs
    ]


if __name__ == "__main__":
    main()
