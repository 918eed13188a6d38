"""Review of issue 21 (outside, adversarial): /metrics' label cardinality. Every distinct
label of an ad-hoc run became a ``job`` label value of ``batch_runner_runs_total`` and of the
duration histogram (14 series more each), kept for the life of the ``serve`` process: an
``operate`` token queueing HTTP calls with a label per call (a request id, a customer) grows
the service's memory, every scrape and Prometheus without bound. The job label must stay
within the configured jobs (plus one value for every ad-hoc run)."""

from __future__ import annotations

import re
from typing import Any

from conftest import job

LABELS = 12


def test_ad_hoc_labels_do_not_each_make_a_series(serve_web: Any) -> None:
    web = serve_web(jobs=[job("nightly", "true")])
    admin = web.client(web.token("admin"))
    admin.get("/metrics")  # counting starts with the first scrape's files
    for n in range(LABELS):
        made = admin.post("/api/v1/runs", json={"command": "true", "label": f"request-{n}"})
        assert made.status_code == 201, made.text
    drained = web.cli("queue", "worker", timeout=120)
    assert drained.returncode == 0, drained.stderr
    text = admin.get("/metrics").text
    counted = re.findall(
        r'^batch_runner_runs_total\{job="([^"]*)",status="success"\} (\S+)', text, re.M
    )
    assert sum(float(value) for _, value in counted) == LABELS, counted
    jobs = {name for name, _ in counted}
    assert len(jobs) <= 2, f"one series per ad-hoc label: {sorted(jobs)}"
