"""Issue 16.6: ``history`` and ``logs`` read results from the end in blocks, in bounded memory.

The reader's peak is measured with tracemalloc (every bytes and dict it allocates, the same on
any machine) and the CLI's with the kernel's high-water mark of its own address space (VmHWM,
which starts afresh at exec, unlike ``ru_maxrss`` which a child inherits from pytest).
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
from conftest import REPO, job, write_config

from batch_runner.state import results
from batch_runner.state.layout import LogLayout

MB = 1024 * 1024
OLDEST = "20000101-000000-oldest"


def _records(day: datetime, count: int) -> Iterator[str]:
    """``count`` lines in the order attempts end; the first (oldest) is the only error."""
    for i in range(count):
        start = day + timedelta(seconds=i * 0.5)
        end = start + timedelta(seconds=900 if i % 300 == 0 else 0.2)  # a few long runs
        yield (
            json.dumps(
                {
                    "job_name": "rare" if i == 0 else f"job{i % 7}",
                    "start_time": start.astimezone().isoformat(),
                    "end_time": end.astimezone().isoformat(),
                    "status": "error" if i == 0 else "success",
                    "output": f"line {i}\n" * 30,
                    "error": "exit code 1" if i == 0 else None,
                    "run_id": OLDEST if i == 0 else f"run-{i:08d}",
                    "attempt": 1,
                    "max_attempts": 1,
                    "log_file": None,
                }
            )
            + "\n"
        )


def _write_day(root: Path, megabytes: int) -> Path:
    day = (datetime.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    folder = root / "logs" / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"batch_{day:%Y%m%d}.jsonl"
    with path.open("w") as out:
        lines = _records(day, sys.maxsize)
        while out.tell() < megabytes * MB:
            out.write("".join(next(lines) for _ in range(1000)))
    return path


def _traced_peak(work: Iterator[dict]) -> tuple[list[dict], int]:
    tracemalloc.start()
    try:
        got = list(work)
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_newest_records_and_a_whole_scan_take_memory_bounded_by_the_output(
    tmp_path: Path,
) -> None:
    _write_day(tmp_path, 8)
    layout = LogLayout(tmp_path / "logs")
    newest = islice(results.iter_results_newest_first(layout), 20)
    got, peak = _traced_peak(newest)
    assert len(got) == 20 and got[0]["start_time"] > got[-1]["start_time"]
    assert peak < MB, f"{peak / MB:.1f} MB to read 20 records of an 8 MB file"
    # Nothing but the oldest line matches: the whole file is read, never held.
    errors = (r for r in results.iter_results_newest_first(layout) if r["status"] == "error")
    got, peak = _traced_peak(errors)
    assert [r["run_id"] for r in got] == [OLDEST]
    assert peak < MB, f"{peak / MB:.1f} MB to scan an 8 MB file"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_history_and_logs_scan_a_large_day_file_in_bounded_memory(project: Path) -> None:
    write_config(project, [job("rare", "true"), *(job(f"job{i}", "true") for i in range(7))])
    size = _write_day(project, 32).stat().st_size
    floor = _cli_peak(project, "history", "--limit", "0")  # start-up alone, reads no results
    for argv in (
        ("history", "--status", "error", "--limit", "1"),
        ("history", "rare"),
        ("logs", OLDEST[:16]),
    ):
        peak = _cli_peak(project, *argv)
        assert peak - floor < 12, (
            f"{argv}: {peak:.0f} MB (start-up {floor:.0f} MB, file {size / MB:.0f} MB)"
        )


def _cli_peak(root: Path, *argv: str) -> float:
    """Peak RSS in MB of ``batch_runner ARGV``, from its own address space's high-water mark."""
    probe = (
        "import sys\n"
        # Loaded up front, so a run that validates the config again (a module of the package
        # edited since the snapshot) peaks no higher than one that trusts the snapshot.
        "import batch_runner.config.validation\n"
        "from batch_runner.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "sys.stdout.flush()\n"
        "with open('/proc/self/status') as status:\n"
        "    hwm = next(l for l in status if l.startswith('VmHWM:'))\n"
        "print('peak', int(hwm.split()[1]) / 1024, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("peak ")]
    return float(line.split()[1])


def _splitlines_backwards(data: bytes, block: int, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    monkeypatch.setattr(results, "_BLOCK", block)
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.flush()
        fd = file.fileno()
        lines = list(results._lines_backwards(fd, len(data)))
        assert results._count_lines(fd, len(data)) == len(data.splitlines())
    return lines


def test_lines_read_backwards_in_blocks_are_the_lines_splitlines_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Line numbers in the warnings count as the whole-file reader did (bytes.splitlines).
    rng = random.Random(16)
    for _ in range(400):
        data = bytes(rng.choice(b'ab{"\n\n\r') for _ in range(rng.randrange(0, 40)))
        for block in (1, 2, 3, 7, 64):
            got = _splitlines_backwards(data, block, monkeypatch)
            assert got == data.splitlines()[::-1], (data, block)


def test_a_damaged_line_is_skipped_and_named_by_its_number_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(results, "_BLOCK", 64)  # lines cross many block boundaries
    day = datetime.now().replace(hour=1, minute=0, second=0, microsecond=0)
    lines = list(_records(day, 6))
    lines[2] = lines[2][:50] + "\n"  # torn
    folder = tmp_path / "logs" / "batch"
    folder.mkdir(parents=True)
    path = folder / f"batch_{day:%Y%m%d}.jsonl"
    path.write_text("".join(lines[:3]) + "\r\n\n" + "".join(lines[3:]))
    with caplog.at_level(logging.WARNING, logger="batch_runner"):
        got = list(results.iter_results_newest_first(LogLayout(tmp_path / "logs")))
    assert len(got) == 5
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped line 3 of {path}: not a whole JSON record (a torn or damaged line)"
    ]
