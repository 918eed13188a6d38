"""Review of issue 20: a startup job runs before anything else at a scheduler start.

README: "each is queued before any other occurrence ..., so in its lane it runs first among runs
of the same priority". A run that was already waiting in the queue when the scheduler started
(an ad-hoc `queue add`, made while no scheduler ran) is started first: the daemon pokes its
dispatcher before the first `_fire_due`, and the queue's order (priority, due_at, seq) puts the
older waiting run ahead of the startup run even once both are queued.
"""

from __future__ import annotations

from pathlib import Path

from conftest import read_results, run_cli, write_config
from test_scheduler import Daemon, start, wait_for


def test_startup_job_runs_before_a_run_left_waiting_in_the_queue(
    project: Path, daemons: list[Daemon]
) -> None:
    order = project / "order"
    write_config(
        project,
        [{"name": "boot", "command": f"echo boot >> {order}", "schedule_type": "startup"}],
    )
    queued = run_cli(project, "queue", "add", "--", "sh", "-c", f"echo queued >> {order}")
    assert queued.returncode == 0, queued.stderr
    daemon = start(project, daemons)
    wait_for(lambda: len(read_results(project)) == 2)
    assert daemon.stop() == 0
    assert order.read_text().split() == ["boot", "queued"]
