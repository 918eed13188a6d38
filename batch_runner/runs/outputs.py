"""Where a run's output is: one log file per attempt, beside each other in the run's day
folder."""

from __future__ import annotations

from pathlib import Path

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# queue add --max-attempts and the config allow no more; a result line could say 10**100.
_MAX_ATTEMPTS = 1000


def attempt_logs(run: dict[str, Any]) -> list[tuple[int, Path]]:
    """Every attempt's output file of a run, in attempt order."""
    log_file, attempts = run.get("log_file"), run.get("attempt")
    # A run known only from a (maybe hand-edited) result line may have any JSON value there.
    if not isinstance(log_file, str) or not log_file:
        return []
    if not isinstance(attempts, int) or isinstance(attempts, bool):
        attempts = 1
    folder = Path(log_file).parent
    candidates = [(1, folder / f"{run['run_id']}.log")]
    candidates += [
        (n, folder / f"{run['run_id']}.attempt{n}.log")
        for n in range(2, min(attempts, _MAX_ATTEMPTS) + 1)
    ]
    return [(n, p) for n, p in candidates if p.exists()]
