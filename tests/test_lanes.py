"""Lanes as users meet them: several runs at once where the config says so, never more.

Real processes throughout: the scheduler, ``run-job`` as cron runs it, queue workers. How many
run at once is read from the live process groups (``lane_helpers.Sampler``), never from the
records.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from fault_helpers import database, orphans, processes_with, runs
from lane_helpers import Sampler, procs, unique_sleep
from margins import PROMPT, SLOW

from batch_runner.state.sqlite import schema

__all__ = ["procs"]  # the fixture
from batch_runner.state.sqlite.store import SqliteStore


def lanes_config(root: Path, jobs: list[dict], **settings: object) -> None:
    write_config(root, jobs, settings={"lanes": {"wide": 3}, "kill_grace": 0.5, **settings})


def queue_add(root: Path, *argv: str) -> str:
    done = run_cli(root, "queue", "add", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stop_scheduler(scheduler, sig: int = signal.SIGTERM) -> int:
    scheduler.send_signal(sig)
    return scheduler.wait(timeout=SLOW)


def test_a_lane_of_three_drains_nine_one_second_runs_three_at_a_time(
    project: Path, procs: list
) -> None:
    lanes_config(project, [job("idle", "true", enabled=False)])
    marker = unique_sleep(1)
    ids = [queue_add(project, "--lane", "wide", "--", "sleep", marker) for _ in range(9)]
    with Sampler(wide=marker) as sampler:
        procs.append(start_cli(project, "scheduler"))
        wait_for(lambda: sum(s == "success" for s in runs(project).values()) == 9, SLOW)
    records = [r for r in read_results(project) if r["run_id"] in ids]
    assert sorted(r["status"] for r in records) == ["success"] * 9
    first = min(r["start_time"] for r in records)
    last = max(r["end_time"] for r in records)
    span = _seconds(last) - _seconds(first)
    # Three at a time: 3 s of sleeping (one at a time would take 9 s); the margin is start-up.
    assert 2.9 <= span <= 6.0, span
    assert sampler.most["wide"] == 3
    assert stop_scheduler(procs[0]) == 0


def _seconds(iso: str) -> float:
    from batch_runner.timefmt import parse_iso

    return parse_iso(iso)


def test_run_job_no_wait_is_busy_only_when_its_lane_is_full(project: Path, procs: list) -> None:
    marker = unique_sleep(100)
    lanes_config(
        project,
        [
            job("a", ["sleep", marker], lane="wide"),
            job("b", ["sleep", marker], lane="wide"),
            job("c", ["sleep", marker], lane="wide"),
            job("d", ["sleep", marker], lane="wide"),
            job("here", ["true"]),
        ],
    )
    with Sampler(wide=marker) as sampler:
        for name in "abc":
            procs.append(start_cli(project, "run-job", name, "--no-wait"))
        wait_for(lambda: sampler.now()["wide"] == 3, SLOW)
        full = run_cli(project, "run-job", "d", "--no-wait")
        assert full.returncode == 75
        assert full.stderr.strip() == (
            "error: lane wide is full (3 runs at once); d was not started"
        )
        other = run_cli(project, "run-job", "here", "--no-wait")
        assert other.returncode == 0, other.stderr
        assert sampler.most["wide"] == 3
    assert [r["status"] for r in read_results(project) if r["job_name"] == "d"] == []


def test_three_run_jobs_in_a_lane_of_two_never_run_three_at_once(
    project: Path, procs: list
) -> None:
    marker = unique_sleep(1)
    write_config(
        project,
        [job(name, ["sleep", marker], lane="pair") for name in ("a", "b", "c")],
        settings={"lanes": {"pair": 2}},
    )
    with Sampler(pair=marker) as sampler:
        for name in "abc":
            procs.append(start_cli(project, "run-job", name))
        for proc in procs:
            assert proc.wait(timeout=SLOW) == 0, proc.stderr.read()
    assert sampler.most["pair"] == 2
    assert sorted(r["status"] for r in read_results(project)) == ["success"] * 3


def test_the_default_lane_stays_serial_with_a_scheduler_a_cron_run_job_and_a_worker(
    project: Path, procs: list
) -> None:
    serial, wide = unique_sleep(0.3), unique_sleep(2)
    lanes_config(
        project,
        [
            job("tick", ["sleep", serial], schedule_time="1"),
            job("cron", ["sleep", serial]),
            *[job(f"w{i}", ["sleep", wide], lane="wide", schedule_time="2") for i in range(3)],
        ],
    )
    with Sampler(serial=serial, wide=wide) as sampler:
        procs.append(start_cli(project, "scheduler"))
        procs.append(start_cli(project, "queue", "worker", "--forever"))
        for _ in range(4):
            queue_add(project, "--", "sleep", serial)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            done = run_cli(project, "run-job", "cron", timeout=SLOW)
            assert done.returncode in (0, 75), done.stderr
        # Waiting runs: pending, or reserved as a lane's next ones by the thread draining it.
        wait_for(lambda: not {"pending", "reserved"} & set(runs(project).values()), SLOW)
        assert stop_scheduler(procs[0]) == 0
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(timeout=SLOW)
    assert sampler.most["serial"] == 1
    assert sampler.most["wide"] == 3  # busy meanwhile: the default lane kept to itself
    records = read_results(project)
    started = [(r["run_id"], r["attempt"]) for r in records if r["status"] != "skipped"]
    assert len(started) == len(set(started))  # each attempt ran once
    assert sum(r["job_name"] == "cron" and r["status"] == "success" for r in records) >= 2


def three_in_flight(project: Path, procs: list, **settings: object) -> tuple:
    """A scheduler running three `sleep 100` runs in a lane of width 3; it and their marker."""
    marker = unique_sleep(100)
    jobs = [job(f"w{i}", ["sleep", marker], lane="wide") for i in range(3)]
    lanes_config(project, jobs, **settings)
    scheduler = start_cli(project, "scheduler")
    procs.append(scheduler)
    wait_for(lambda: (project / "logs" / "state" / "scheduler.lock").exists(), SLOW)
    for i in range(3):
        assert run_cli(project, "run-job", f"w{i}", "--queue").returncode == 0
    with Sampler(wide=marker) as sampler:
        wait_for(lambda: sampler.now()["wide"] == 3, SLOW)
    return scheduler, marker


def test_sigkill_of_a_scheduler_with_three_runs_in_flight_leaves_three_interrupted(
    project: Path, procs: list
) -> None:
    scheduler, _ = three_in_flight(project, procs)
    ids = {run_id for run_id, status in runs(project).items() if status == "running"}
    assert len(ids) == 3
    stop_scheduler(scheduler, signal.SIGKILL)
    assert orphans(project, ids)  # still there: nobody has cleaned up yet
    done = run_cli(project, "queue", "worker", timeout=SLOW)
    assert done.returncode == 0, done.stderr
    assert {runs(project)[i] for i in ids} == {"interrupted"}
    assert (
        sorted(r["status"] for r in read_results(project) if r["run_id"] in ids)
        == ["interrupted"] * 3
    )
    wait_for(lambda: not orphans(project, ids), SLOW)


def test_sigterm_gives_every_running_attempt_the_grace_then_interrupts_them_all(
    project: Path, procs: list
) -> None:
    scheduler, marker = three_in_flight(project, procs, shutdown_grace=0.5)
    with Sampler(wide=marker) as sampler:
        began = time.monotonic()
        code = stop_scheduler(scheduler)
        took = time.monotonic() - began
        assert code == 0, scheduler.stderr.read()
        assert sampler.now()["wide"] == 0
    assert took < SLOW / 2  # not the jobs' 100 s
    assert sorted(r["status"] for r in read_results(project)) == ["interrupted"] * 3
    log = scheduler.stderr.read()
    assert "the running attempts did not finish within 0.5 s" in log, log


def test_a_killed_run_job_in_one_slot_is_reaped_while_the_other_slot_runs_on(
    project: Path, procs: list
) -> None:
    slow, lost = unique_sleep(3), unique_sleep(100)
    write_config(
        project,
        [job("stays", ["sleep", slow], lane="pair"), job("lost", ["sleep", lost], lane="pair")],
        settings={"lanes": {"pair": 2}, "kill_grace": 0.5},
    )
    with Sampler(slow=slow, lost=lost) as sampler:
        stays = start_cli(project, "run-job", "stays")
        procs.append(stays)
        wait_for(lambda: sampler.now()["slow"] == 1, SLOW)
        killed = start_cli(project, "run-job", "lost")
        procs.append(killed)
        wait_for(lambda: sampler.now()["lost"] == 1, SLOW)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=SLOW)
        # `stop` finds the run's slot free: its runner is gone. The other slot is held.
        lost_run = [
            run_id
            for run_id, status in runs(project).items()
            if status == "running" and _job_of(project, run_id) == "lost"
        ]
        assert len(lost_run) == 1
        done = run_cli(project, "stop", "lost")
        assert done.returncode == 0, done.stderr
        assert runs(project)[lost_run[0]] == "interrupted"
        wait_for(lambda: sampler.now()["lost"] == 0, SLOW)
        assert stays.wait(timeout=SLOW) == 0
    assert [r["status"] for r in read_results(project) if r["job_name"] == "stays"] == ["success"]
    assert not processes_with(f"BATCH_RUN_ID={lost_run[0]}")


def _job_of(root: Path, run_id: str) -> str:
    with sqlite3.connect(root / "logs" / "state" / "batch_runner.sqlite3") as db:
        return db.execute("SELECT job_name FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]


def test_queue_add_to_a_lane_that_is_not_configured_is_a_usage_error(project: Path) -> None:
    lanes_config(project, [job("idle", "true")])
    done = run_cli(project, "queue", "add", "--lane", "wied", "--", "true")
    assert done.returncode == 2
    assert 'did you mean "wide"?' in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not database(project).exists()  # nothing was queued


def test_a_version_3_database_upgrades_with_its_waiting_runs_in_the_default_lane(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "batch_runner.sqlite3"
    path.parent.mkdir()
    old = schema.SCHEMA.replace(
        ",\n    lane TEXT NOT NULL DEFAULT 'default',\n    slot INTEGER", ""
    )
    old = old[: old.index("CREATE INDEX IF NOT EXISTS runs_waiting_lane")]
    assert "lane" not in old
    with sqlite3.connect(path) as db:
        db.executescript(old)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '3')")
        db.execute(
            "INSERT INTO runs (run_id, job_name, kind, spec, trigger, status, due_at, "
            "created_at) VALUES ('r1', 'j', 'job', '{}', 'queue', 'pending', 1, 1)"
        )
    store = SqliteStore(path)
    try:
        assert store.claim_next(2.0, 1, "h", lane="wide", slot=0) is None
        claimed = store.claim_next(2.0, 1, "h", lane="default", slot=0)
        assert claimed is not None and claimed["run_id"] == "r1" and claimed["lane"] == "default"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(schema.SCHEMA_VERSION),
        )


def test_each_lane_claims_its_own_runs_in_priority_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    try:
        for run_id, lane, priority in [
            ("a1", "a", 0),
            ("b1", "b", 0),
            ("a2", "a", 5),
            ("b2", "b", -1),
        ]:
            store.insert_run(
                {
                    "run_id": run_id,
                    "job_name": run_id,
                    "kind": "adhoc",
                    "spec": {},
                    "trigger": "queue",
                    "priority": priority,
                    "status": "pending",
                    "due_at": 1.0,
                    "created_at": 1.0,
                    "lane": lane,
                }
            )
        assert store.lanes_waiting(2.0)[0][0] == "a"  # its best run ranks first
        assert [row[:2] for row in store.lanes_waiting(2.0)] == [("a", 2), ("b", 2)]
        assert store.count_due("a", 2.0, 1) == 1 and store.count_due("a", 2.0, 9) == 2
        order = [store.claim_next(2.0, 1, "h", lane="a", slot=1)["run_id"] for _ in range(2)]
        assert order == ["a2", "a1"]
        assert store.claim_next(2.0, 1, "h", lane="a", slot=1) is None
        b = store.claim_next(2.0, 1, "h", lane="b", slot=0)
        assert b is not None and (b["run_id"], b["slot"]) == ("b1", 0)
        assert store.next_due_at(lane="b") == 1.0 and store.next_due_at(lane="a") is None
    finally:
        store.close()


def test_a_worker_gives_another_lane_its_turn_within_a_second_or_so(project: Path) -> None:
    write_config(project, [job("idle", "true")], settings={"lanes": {"a": 1, "b": 1}})
    for _ in range(40):
        queue_add(project, "--lane", "a", "--", "sleep", "0.1")  # 4 s of work in lane a
    other = queue_add(project, "--lane", "b", "--", "true")
    done = run_cli(project, "queue", "worker", timeout=SLOW)
    assert done.returncode == 0, done.stderr
    records = read_results(project)
    assert len(records) == 41
    order = [r["run_id"] for r in sorted(records, key=lambda r: r["start_time"])]
    # Lane b's run comes after about a second of lane a (10 runs), not after all 40.
    assert order.index(other) < 30, order.index(other)


def test_a_run_job_in_a_wide_lane_starts_its_own_run_not_those_queued_ahead(
    project: Path, procs: list
) -> None:
    """One wide, a run-job runs what is due ahead of its run first, in order. Wider, its own
    run takes a slot of its own: the runs ahead are for the lane's other slots (and another
    run-job waiting for one of those would otherwise wait for this one's whole run)."""
    ahead = unique_sleep(100)
    write_config(
        project,
        [job("mine", ["true"], lane="pair")],
        settings={"lanes": {"pair": 2}, "kill_grace": 0.5},
    )
    queued = queue_add(project, "--lane", "pair", "--", "sleep", ahead)
    done = run_cli(project, "run-job", "mine", timeout=PROMPT)
    assert done.returncode == 0, done.stderr
    assert runs(project)[queued] == "pending"  # for a worker or the scheduler
