"""/metrics against a real ``serve``: Prometheus text 0.0.4, parsed back with prometheus_client's
own parser; counts from the result lines appended since the service started, gauges from the
state at each scrape."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import job, wait_for
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

TYPE_CHECKING = False
if TYPE_CHECKING:
    from webserver import WebServer


def _scrape(web: WebServer, token: str) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    answer = web.client(token).get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        assert family.name.startswith("batch_runner_")
        assert family.documentation  # every metric says what it counts
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _old_line(root: Path) -> None:
    """A result line written before the service started: not counted."""
    results = root / "logs" / "batch"
    results.mkdir(parents=True)
    record = {
        "job_name": "before",
        "start_time": "2020-01-01T00:00:00.000+00:00",
        "end_time": "2020-01-01T00:00:01.000+00:00",
        "status": "success",
        "duration_seconds": 1.0,
    }
    (results / f"batch_{time.strftime('%Y%m%d')}.jsonl").write_text(json.dumps(record) + "\n")


def test_counts_gauges_and_escaping(serve_web, tmp_path):
    _old_line(tmp_path / "web")
    web = serve_web(
        jobs=[
            job("ok", "true"),
            job("bad", "exit 3", disable_after=1),
            job("off", "true", enabled=False),
        ],
        settings={"lanes": {"default": 1, "http": 2}},
    )
    token = web.token("read")
    assert web.client().get("/metrics").status_code == 401
    assert web.cli("run-job", "ok").returncode == 0
    assert web.cli("run-job", "ok").returncode == 0
    assert web.cli("run-job", "bad").returncode == 1
    weird = 'a "quoted" \\ label\u00e9'
    assert web.cli("queue", "add", "--label", weird, "--", "true").returncode == 0
    assert web.cli("queue", "worker").returncode == 0
    samples = _scrape(web, token)
    runs = {k[1]: v for k, v in samples.items() if k[0] == "batch_runner_runs_total"}
    # An ad-hoc run's free label is no series of its own (a client could make millions):
    # every name the config does not hold is counted as "adhoc".
    assert runs == {
        (("job", "ok"), ("status", "success")): 2,
        (("job", "bad"), ("status", "error")): 1,
        (("job", "adhoc"), ("status", "success")): 1,
    }
    assert samples["batch_runner_run_duration_seconds_count", (("job", "ok"),)] == 2
    assert samples["batch_runner_run_duration_seconds_bucket", (("job", "ok"), ("le", "+Inf"))] == 2
    assert samples["batch_runner_job_error_count", (("job", "bad"),)] == 1
    assert samples["batch_runner_job_error_count", (("job", "ok"),)] == 0
    disabled = {k[1][0][1]: v for k, v in samples.items() if k[0] == "batch_runner_job_disabled"}
    assert disabled == {"ok": 0, "bad": 1, "off": 1}
    assert samples["batch_runner_scheduler_up", ()] == 0
    assert samples["batch_runner_queue_paused", ()] == 0

    # The counts go on from where they were: only what was appended since is read.
    assert web.cli("run-job", "ok").returncode == 0
    assert web.cli("queue", "pause").returncode == 0
    assert web.cli("queue", "add", "--lane", "http", "--", "true").returncode == 0
    assert web.cli("queue", "add", "--", "true").returncode == 0
    assert web.cli("queue", "add", "--", "true").returncode == 0
    (results,) = (web.root / "logs" / "batch").glob(f"batch_{time.strftime('%Y%m%d')}.jsonl")
    with open(results, "a") as lines:  # typed in by hand: a lone surrogate is no text
        lines.write('{"job_name": "x\\ud800", "status": "success"}\n')
    samples = _scrape(web, token)
    assert samples["batch_runner_runs_total", (("job", "adhoc"), ("status", "success"))] == 2
    assert samples["batch_runner_runs_total", (("job", "ok"), ("status", "success"))] == 3
    assert samples["batch_runner_queue_paused", ()] == 1
    assert samples["batch_runner_queue_depth", (("lane", "default"),)] == 2
    assert samples["batch_runner_queue_depth", (("lane", "http"),)] == 1
    assert samples["batch_runner_running", (("lane", "http"),)] == 0


def test_scheduler_up_and_lateness(serve_web):
    web = serve_web(jobs=[job("tick", "true", schedule_time="1")])
    token = web.token("read")
    web.start_cli("scheduler")

    def scheduled_runs() -> float:
        samples = _scrape(web, token)
        return samples.get(("batch_runner_dispatch_lateness_seconds_count", ()), 0)

    wait_for(lambda: scheduled_runs() >= 2, 60, 0.2)
    samples = _scrape(web, token)
    assert samples["batch_runner_scheduler_up", ()] == 1
    assert samples["batch_runner_runs_total", (("job", "tick"), ("status", "success"))] >= 2
    late = samples["batch_runner_dispatch_lateness_seconds_sum", ()]
    count = samples["batch_runner_dispatch_lateness_seconds_count", ()]
    assert 0 <= late / count < 30
    assert samples["batch_runner_dispatch_lateness_seconds_bucket", (("le", "+Inf"),)] == count
