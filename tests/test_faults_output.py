"""Output abuse: a flood of output, one endless line, binary garbage (SPEC 5, 13).

The runner's peak RSS stays flat (VmHWM, read inside the CLI process after ``main``), the run log
stays within ``run_log_max_bytes`` and the JSONL record is valid JSON with output_truncated.
CI pushes 300 MB through ``run-job``; ``--soak`` pushes 1 GB
(``python -m pytest tests/test_faults_output.py --soak -q``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import job, write_config
from fault_helpers import env_for, jsonl_records

RSS_LIMIT_KB = 80 * 1024

# VmHWM, the peak RSS of this process image: ru_maxrss would also count the peak of the
# pytest process it was forked from (Linux carries it across fork and exec).
WRAPPER = (
    "import sys\n"
    "from batch_runner.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
    "print('maxrss', status, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_job_measured(root: Path, name: str, timeout: float = 240) -> tuple[int, int, str]:
    """``run-job NAME`` in a subprocess: (exit code, peak RSS in KiB, stderr)."""
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, "run-job", name],
        env=env_for(root),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = result.stderr.splitlines()
    rss = int(next(line.split()[1] for line in lines if line.startswith("maxrss")))
    return result.returncode, rss, result.stderr


def check(root: Path, name: str) -> dict:
    code, rss, err = run_job_measured(root, name)
    assert code == 0, err
    assert "Traceback" not in err
    assert rss < RSS_LIMIT_KB, f"peak RSS {rss} KiB"
    records = [r for r in jsonl_records(root) if r["job_name"] == name]
    assert len(records) == 1 and records[0]["status"] == "success"
    assert records[0]["output_truncated"] is True
    json.dumps(records[0])  # round-trips
    logs = list((root / "logs" / "runs").glob("*/*.log"))
    assert logs and max(p.stat().st_size for p in logs) <= 2 * 1024 * 1024 + 4096
    print(f"\n{name}: peak RSS {rss // 1024} MiB")
    return records[0]


@pytest.fixture
def abuse(project: Path, soak: bool) -> Path:
    flood_mb = 1024 if soak else 300
    write_config(
        project,
        [
            job("flood", f"head -c {flood_mb}M /dev/zero | tr '\\0' 'x' | fold -w 100"),
            job("one_line", "head -c 50M /dev/zero | tr '\\0' 'y'"),
            job("garbage", "head -c 20M /dev/urandom"),
        ],
        settings={"run_log_max_bytes": 2 * 1024 * 1024, "output_max_bytes": 65536},
    )
    return project


@pytest.mark.slow
def test_a_flood_of_output_keeps_memory_flat(abuse: Path) -> None:
    record = check(abuse, "flood")
    assert len(record.get("output") or "") <= 2 * 65536


def test_a_single_50_mb_line_keeps_memory_flat(abuse: Path) -> None:
    check(abuse, "one_line")


def test_binary_garbage_gives_valid_json(abuse: Path) -> None:
    record = check(abuse, "garbage")
    assert isinstance(record.get("output", ""), str)
