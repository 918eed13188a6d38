"""``logs RUN_ID`` on a cluster (``settings.backend``): the run found in the shared database,
each attempt's output from this host's log file where the attempt ran here, else as the host
that ran it kept it in the database."""

from __future__ import annotations

from pathlib import Path

from batch_runner.cli.commands.history import latest_of_each
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.overview import cluster_store

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# queue add --max-attempts and the config allow no more; a result line could say 10**100.
_MAX_ATTEMPTS = 1000
# Result lines read to tell a unique id prefix from an ambiguous one: more than one run's
# attempts can ever have, so two runs are told apart whatever their attempts.
_SCAN = _MAX_ATTEMPTS + 1


def cluster_runs(ctx: RunnerContext, prefix: str) -> list[dict[str, Any]]:
    """At most two runs whose id starts with ``prefix``: from the runs the database holds,
    else from every host's result lines (runs cleaned from the queue, skipped occurrences)."""
    store = cluster_store(ctx)
    matches = store.find_runs(prefix)
    if matches or not prefix.strip():
        return matches
    return latest_of_each(store.results(run_prefix=prefix, limit=_SCAN), prefix)


def attempt_outputs(ctx: RunnerContext, run: dict[str, Any]) -> list[tuple[int, str, Any]]:
    """``(attempt, path, output)`` of every attempt that left output, in attempt order:
    ``output`` the log file on this host (a Path) or the bytes its host kept (the path is
    then where that host wrote it)."""
    store = cluster_store(ctx)
    run_id = str(run.get("run_id"))
    # Each attempt's own line says where its host wrote its log: hosts' log dirs may differ.
    written = {
        record["attempt"]: record.get("log_file")
        for record in store.results(run_prefix=run_id, limit=_SCAN)
        if record.get("run_id") == run_id and _is_count(record.get("attempt"))
    }
    latest = run.get("attempt")
    attempts = max([*written, latest if _is_count(latest) else 1, 1])
    found: list[tuple[int, str, Any]] = []
    for number in range(1, min(attempts, _MAX_ATTEMPTS) + 1):
        places = _places(ctx, run_id, number, written.get(number), run.get("log_file"))
        here = next((path for path in places if path.exists()), None)
        if here is not None:
            found.append((number, str(here), here))
            continue
        kept = store.kept_output(run_id, number)
        if kept is not None:
            found.append((number, str(places[0]) if places else run_id, kept))
    return found


def _places(ctx: RunnerContext, run_id: str, number: int, own: Any, latest: Any) -> list[Path]:
    """Where an attempt's log may be on this host: where its host wrote it (``own``, from its
    result line), beside the run's latest log, then in this host's own log dir. Either may be
    any JSON value, a result line having been written by hand."""
    name = f"{run_id}.log" if number == 1 else f"{run_id}.attempt{number}.log"
    places = []
    if isinstance(own, str) and own:
        places.append(Path(own))
    if isinstance(latest, str) and latest:
        places.append(Path(latest).parent / name)
    day = places[0].parent.name if places else run_id[:8]
    if len(day) == 8 and day.isdigit():
        places.append(Path(ctx.layout.runs_dir) / day / name)
    return list(dict.fromkeys(places))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
