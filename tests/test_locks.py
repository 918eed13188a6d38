"""The flock files: who holds them, read by ``status`` from another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from batch_runner.state.locks import FileLock, holder_pid


def test_the_holder_is_named_and_the_lock_is_free_again_after_release(tmp_path: Path) -> None:
    path = tmp_path / "executor.lock"
    path.write_text("12345678901234567890 left by something else\n")
    lock = FileLock(path)
    assert holder_pid(path) is None
    assert lock.acquire(wait=False)
    try:
        # Another process asks (a lock held by this very process would be granted to it).
        probe = (
            "import sys; from batch_runner.state.locks import holder_pid; "
            f"print(holder_pid({str(path)!r}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
        ).stdout
        assert out.strip() == str(os.getpid())
        assert not FileLock(path).acquire(wait=False)  # another open file: refused
    finally:
        lock.release()
    assert holder_pid(path) is None
