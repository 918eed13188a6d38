"""What the lane tests share: a sampler of the live process groups, and runs from the records.

The sampler looks at the processes themselves, never at the records: a lane that ran four at
once while its records said three would fool a test that trusted the database.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _groups_with(markers: dict[str, str]) -> dict[str, set[int]]:
    """Per key, the process groups of processes whose command line has its marker and that
    were all alive at one moment.

    A scan of /proc is not instantaneous: a run ending early in it and the next starting late
    in it would both be seen. So each process found is looked at again after the scan: one
    alive at its first look and again after every first look was alive throughout a moment
    they all share.
    """
    wanted = {marker.encode(): key for key, marker in markers.items()}
    first: dict[int, tuple[str, int]] = {}  # pid -> (key, process group)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as file:
                words = file.read().split(b"\0")
        except OSError:
            continue
        for word in words:
            key = wanted.get(word)
            if key is not None and _is_a_job(name):
                fields = _stat(int(name))
                if fields is not None:
                    first[int(name)] = (key, int(fields[2]))
                break
    found: dict[str, set[int]] = {key: set() for key in markers}
    for pid, (key, group) in first.items():
        if _stat(pid) is not None:
            found[key].add(group)
    return found


def _is_a_job(pid: str) -> bool:
    """A run's process (it carries BATCH_RUN_ID), not ``queue add -- sleep MARKER`` itself."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return b"\0BATCH_RUN_ID=" in b"\0" + file.read()
    except OSError:
        return False


def _stat(pid: int) -> list[str] | None:
    """A live process's stat fields from its state on; None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in "ZX" else fields


class Sampler:
    """Counts, every 10 ms, the live process groups running each marker (a unique argument
    of the jobs' commands, such as ``sleep 1.000271``); keeps the most seen at once."""

    def __init__(self, **markers: str) -> None:
        self.markers = markers
        self.most = {key: 0 for key in markers}
        self.seen = {key: 0 for key in markers}  # samples with at least one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def now(self) -> dict[str, int]:
        return {key: len(groups) for key, groups in _groups_with(self.markers).items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, count in self.now().items():
                self.most[key] = max(self.most[key], count)
                self.seen[key] += count > 0
            time.sleep(0.01)


def unique_sleep(seconds: float) -> str:
    """A sleep argument no other test uses: ``1.00002711`` sleeps a second and marks the run."""
    return f"{seconds:.1f}{time.monotonic_ns() % 1_000_000:06d}1"


def kill_jobs_of(root: Path) -> None:
    """Kill what is left of the jobs of the project at ``root`` (their runner was killed by
    the test): each carries the project's config in BATCH_RUNNER_CONFIG."""
    import signal

    needle = f"\0BATCH_RUNNER_CONFIG={root}/".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as file:
                environ = b"\0" + file.read()
        except OSError:
            continue
        if needle in environ:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def procs(project: Path) -> Iterator[list]:
    """Processes a test starts (schedulers, run-jobs, workers): killed at its end, and what
    their jobs left with them."""
    started: list = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    kill_jobs_of(project)
