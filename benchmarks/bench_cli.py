"""CLI start-up and runner overhead, measured side by side in one run (issue 2).

    python benchmarks/bench_cli.py [--repeat N] [--skip-gb]

Prints a table of medians and the ratios against the floors measured in the same run:
bare ``python -c pass``, the standard library imports the CLI needs, and ``true`` alone.
Run it with the Python that has batch_runner installed (e.g. ``.venv/bin/python``).
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


def timed(argv: list[str], repeat: int, env: dict[str, str], cwd: str | None = None) -> float:
    """Median wall time of ``argv`` over ``repeat`` runs, in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        samples.append((time.perf_counter() - start) * 1000)
        if result.returncode not in (0,):
            raise SystemExit(f"{argv} failed: {result.stderr.decode()[-500:]}")
    return statistics.median(samples)


def make_project(root: Path, jobs: int, command: str = "true") -> Path:
    config = root / "config" / "batch_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    kinds = [("interval", "3600"), ("daily", "02:00"), ("weekly", "mon,wed 09:30")]
    config.write_text(json.dumps({"jobs": [
        {"name": f"job{i}", "command": command, "schedule_type": kinds[i % 3][0],
         "schedule_time": kinds[i % 3][1]} for i in range(jobs)]}))
    return config


def runner_rss_while_printing(root: Path, gigabytes: float) -> float:
    """Peak RSS (MB) of the runner process itself while its job prints ``gigabytes`` GB."""
    size = int(gigabytes * 1024**3)
    config = root / "config" / "batch_config.json"
    config.write_text(json.dumps({"jobs": [{
        "name": "loud", "command": f"head -c {size} /dev/zero",
        "schedule_type": "daily", "schedule_time": "02:00"}]}))
    probe = ("import resource, sys; from batch_runner.cli.main import main; "
             "code = main(['run-job', 'loud']); "
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    result = subprocess.run([PY, "-c", probe], env=env, capture_output=True, text=True)
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--skip-gb", action="store_true", help="skip the 1 GB output run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-bench-"))
    try:
        rows = measure(tmp, args.repeat, not args.skip_gb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'measure':<44} {'value':>10}  {'target':>10}  note")
    for name, value, unit, target, note in rows:
        target_text = f"< {target:g} {unit}" if target else ""
        verdict = "" if not target else ("ok" if value < target else "MISSED")
        print(f"{name:<44} {value:>7.1f} {unit:<3} {target_text:>10}  {verdict} {note}")


def measure(tmp: Path, repeat: int, with_gb: bool) -> list[tuple]:
    small = tmp / "small"
    make_project(small, 10)
    big = tmp / "big"
    make_project(big, 10_000)
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(small)}
    script = shutil.which("batch_runner", path=str(Path(PY).parent)) or shutil.which("batch_runner")
    cli = [script] if script else [PY, "-m", "batch_runner"]
    stdlib = "import argparse, json, sqlite3, subprocess, selectors, fcntl, zoneinfo, datetime"

    bare = timed([PY, "-c", "pass"], repeat, env)
    std = timed([PY, "-c", stdlib], repeat, env)
    heavy = timed([PY, "-c", "import pydantic, rich.table, schedule"], repeat, env)
    version = timed([*cli, "--version"], repeat, env)
    true_alone = timed(["true"], repeat, env)
    timed([*cli, "run-job", "job0"], 2, env)  # warm the validated snapshot
    run_true = timed([*cli, "run-job", "job0"], repeat, env)
    list_10 = timed([*cli, "list"], repeat, env)
    big_env = {**os.environ, "BATCH_RUNNER_ROOT": str(big)}
    validate_big = timed([*cli, "validate"], 3, big_env)
    rows = [
        ("python -c pass (floor)", bare, "ms", None, ""),
        ("python + stdlib imports the CLI uses", std, "ms", None, ""),
        ("python + pydantic, rich, schedule", heavy, "ms", None, "what the hot paths avoid"),
        ("batch_runner --version", version, "ms", 30,
         f"{version / bare:.1f}x bare python"),
        ("true alone", true_alone, "ms", None, ""),
        ("run-job of `true` (total)", run_true, "ms", None, ""),
        ("run-job overhead (total - true alone)", run_true - true_alone, "ms", 50,
         f"{(run_true - true_alone) / bare:.1f}x bare python"),
        ("list, 10 jobs (piped)", list_10, "ms", 200, ""),
        ("validate, 10,000 jobs", validate_big, "ms", 1000, ""),
    ]
    if with_gb:
        loud = tmp / "loud"
        make_project(loud, 1)
        rows.append(("runner peak RSS while a job prints 1 GB", runner_rss_while_printing(loud, 1),
                     "MB", 60, ""))
    return rows


if __name__ == "__main__":
    main()
