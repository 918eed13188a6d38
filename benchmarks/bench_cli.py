"""CLI start-up and runner overhead, measured side by side in one run (issue 2).

    python benchmarks/bench_cli.py [--repeat N] [--skip-gb] [--instructions]

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
REFERENCE_BARE_MS = 9.0  # bare `python -c pass` where the targets were measured


def timed(argv: list[str], repeat: int, env: dict[str, str], cwd: str | None = None) -> float:
    """Median wall time of ``argv`` over ``repeat`` runs, in milliseconds."""
    return statistics.median(sample(argv, env, cwd) for _ in range(repeat))


def sample(argv: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def timed_side_by_side(
    commands: dict[str, list[str]], repeat: int, env: dict[str, str]
) -> dict[str, float]:
    """Median wall times (ms), the commands taking turns so a drift of the machine's speed
    (seen here: bare python anywhere from 17 to 24 ms within an hour) hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            samples[name].append(sample(argv, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """User-space instructions of one run under callgrind: repeatable whatever the load."""
    if not shutil.which("valgrind"):
        return None
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    for line in result.stderr.splitlines():
        if "Collected" in line:
            return int(line.split()[-1])
    return None


def make_project(root: Path, jobs: int, command: str = "true", *, distinct: bool = False) -> Path:
    """A config of ``jobs`` jobs; ``distinct``: no two with the same schedule."""
    config = root / "config" / "batch_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    def schedule(i: int) -> tuple[str, str]:
        if not distinct:
            return [("interval", "3600"), ("daily", "02:00"), ("weekly", "mon,wed 09:30")][i % 3]
        at = f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        return [
            ("interval", str(60 + i)),
            ("daily", at),
            ("weekly", f"{days[i % 7]},{days[(i + 3) % 7]} {at}"),
        ][i % 3]

    config.write_text(
        json.dumps(
            {
                "jobs": [
                    {
                        "name": f"job{i}",
                        "command": command,
                        "schedule_type": schedule(i)[0],
                        "schedule_time": schedule(i)[1],
                    }
                    for i in range(jobs)
                ]
            }
        )
    )
    return config


def runner_rss_while_printing(root: Path, gigabytes: float) -> float:
    """Peak RSS (MB) of the runner process itself while its job prints ``gigabytes`` GB."""
    size = int(gigabytes * 1024**3)
    config = root / "config" / "batch_config.json"
    config.write_text(
        json.dumps(
            {
                "jobs": [
                    {
                        "name": "loud",
                        "command": f"head -c {size} /dev/zero",
                        "schedule_type": "daily",
                        "schedule_time": "02:00",
                    }
                ]
            }
        )
    )
    probe = (
        "import resource, sys; from batch_runner.cli.main import main; "
        "code = main(['run-job', 'loud']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root)}
    result = subprocess.run([PY, "-c", probe], env=env, capture_output=True, text=True)
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--skip-gb", action="store_true", help="skip the 1 GB output run")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions with valgrind's callgrind (slow)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="br-bench-"))
    try:
        rows = measure(tmp, args.repeat, not args.skip_gb, args.instructions)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'measure':<44} {'value':>10}  {'target':>10}  note")
    for name, value, unit, target, note in rows:
        target_text = f"< {target:g} {unit}" if target else ""
        verdict = "" if not target else ("ok" if value < target else "MISSED")
        print(f"{name:<44} {value:>7.1f} {unit:<3} {target_text:>10}  {verdict} {note}")


def measure(tmp: Path, repeat: int, with_gb: bool, count_instructions: bool) -> list[tuple]:
    small = tmp / "small"
    make_project(small, 10)
    big = tmp / "big"
    make_project(big, 10_000)
    varied = tmp / "varied"
    make_project(varied, 10_000, distinct=True)
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(small)}
    script = shutil.which("batch_runner", path=str(Path(PY).parent)) or shutil.which("batch_runner")
    cli = [script] if script else [PY, "-m", "batch_runner"]
    stdlib = "import argparse, json, sqlite3, subprocess, selectors, fcntl, zoneinfo, datetime"

    timed([*cli, "run-job", "job0"], 2, env)  # warm the validated snapshot
    quick = timed_side_by_side(
        {
            "bare": [PY, "-c", "pass"],
            "version": [*cli, "--version"],
            "true": ["true"],
            "run-job": [*cli, "run-job", "job0"],
        },
        repeat,
        env,
    )
    bare, version, true_alone, run_true = (quick[k] for k in ("bare", "version", "true", "run-job"))
    std = timed([PY, "-c", stdlib], repeat, env)
    heavy = timed([PY, "-c", "import pydantic, rich.table, schedule"], repeat, env)
    list_10 = timed([*cli, "list"], repeat, env)
    big_env = {**os.environ, "BATCH_RUNNER_ROOT": str(big)}
    validate_big = timed([*cli, "validate"], 3, big_env)
    validate_varied = timed([*cli, "validate"], 3, {**os.environ, "BATCH_RUNNER_ROOT": str(varied)})
    overhead = run_true - true_alone
    # The targets were set where bare python starts in 9 ms; this machine's figure scaled by
    # the ratio of the two bare starts (an estimate, shown beside the measured value).
    scale = REFERENCE_BARE_MS / bare
    rows = [
        ("python -c pass (floor)", bare, "ms", None, f"reference machine: {REFERENCE_BARE_MS} ms"),
        ("python + stdlib imports the CLI uses", std, "ms", None, ""),
        ("python + pydantic, rich, schedule", heavy, "ms", None, "what the hot paths avoid"),
        (
            "batch_runner --version",
            version,
            "ms",
            30,
            f"{version / bare:.2f}x bare python; ~{version * scale:.0f} ms at reference speed",
        ),
        ("true alone", true_alone, "ms", None, ""),
        ("run-job of `true` (total)", run_true, "ms", None, ""),
        (
            "run-job overhead (total - true alone)",
            overhead,
            "ms",
            50,
            f"{overhead / bare:.2f}x bare python; ~{overhead * scale:.0f} ms at reference speed",
        ),
        ("list, 10 jobs (piped)", list_10, "ms", 200, ""),
        ("validate, 10,000 jobs", validate_big, "ms", 1000, "3 schedules between them"),
        ("validate, 10,000 jobs, no two schedules alike", validate_varied, "ms", 1000, ""),
    ]
    if count_instructions:
        bare_ir = instructions([PY, "-c", "pass"], env)
        for name, argv in (
            ("--version", [*cli, "--version"]),
            ("run-job of `true`", [*cli, "run-job", "job0"]),
            ("queue add -- true", [*cli, "queue", "add", "--", "true"]),
        ):
            ir = instructions([PY, *argv] if argv[0] == script else argv, env)
            if ir is not None and bare_ir:
                rows.append(
                    (
                        f"instructions, {name}",
                        ir / 1e6,
                        "M",
                        None,
                        f"{ir / bare_ir:.2f}x bare python ({bare_ir / 1e6:.1f}M)",
                    )
                )
    if with_gb:
        loud = tmp / "loud"
        make_project(loud, 1)
        rows.append(
            (
                "runner peak RSS while a job prints 1 GB",
                runner_rss_while_printing(loud, 1),
                "MB",
                60,
                "",
            )
        )
    return rows


if __name__ == "__main__":
    main()
