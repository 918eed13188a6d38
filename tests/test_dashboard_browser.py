"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
``batch_runner serve`` and a real ``queue worker`` running a job that prints and reports its
progress. With ``BATCH_RUNNER_SCREENSHOTS=1`` it also takes the README's screenshots (one
PNG per page in docs/screenshots/); without, it writes nothing in the checkout."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from conftest import REPO, job

if TYPE_CHECKING:
    from pathlib import Path

    from webserver import WebServer


CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)",
    ),
]
SHOTS = os.environ.get("BATCH_RUNNER_SCREENSHOTS") == "1"
SHOTS_DIR = REPO / "docs" / "screenshots"
# Generous: a loaded 2-core machine starts Python processes slowly.
WAIT_MS = 30_000
HOSTILE = "<script>alert('x')</script>"
BATCH_RUNNER = f"{shlex.quote(sys.executable)} -m batch_runner"


def ticker(root: Path, steps: int = 200) -> dict[str, Any]:
    """A job that prints a line (one with markup in it) and reports its progress, step by
    step, until it is stopped; its script in the project root (the job's working directory)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ticker.sh").write_text(
        f"for i in $(seq 1 {steps}); do\n"
        f'  echo "copied batch $i of {steps}"\n'
        f'  if [ $i = 2 ]; then echo "{HOSTILE}"; fi\n'
        f'  {BATCH_RUNNER} progress --percent $(( i * 100 / {steps} )) "batch $i"\n'
        "  sleep 0.2\n"
        "done\n"
    )
    return job("ticker", "sh ticker.sh", schedule_type="daily", schedule_time="02:30")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    return page


def sign_in(page: Any, web: WebServer, token: str) -> None:
    page.goto(web.url + "/ui/signin")
    shoot(page, "signin")
    page.fill("#token", token)
    page.click("form button:has-text('Sign in')")
    page.wait_for_url(web.url + "/ui/")


def shoot(page: Any, name: str) -> None:
    if SHOTS:
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS_DIR / f"{name}.png"), full_page=True)


def progress_of(page: Any) -> float:
    value = page.locator("#live-run progress").first.get_attribute("value")
    return float(value) if value else -1.0


def seed_history(web: WebServer) -> None:
    """Some finished runs (one failure among them), so the screenshots show marks and bars."""
    for _ in range(6):
        assert web.cli("run-job", "backup").returncode in (0, 1)
    web.cli("run-job", "report")
    web.cli("queue", "add", "--delay", "3600", "--label", "reindex", "--", "true")


def test_watch_a_run_move_then_stop_it(serve_web, browser, tmp_path):
    jobs = [ticker(tmp_path / "web")]
    if SHOTS:
        flaky = (
            "python3 -c 'import random, sys, time; time.sleep(random.random()); "
            "sys.exit(random.random() < 0.25)'"
        )
        jobs += [
            job("backup", flaky),
            job(
                "report",
                "echo done",
                schedule_type="cron",
                schedule_time="15 6 * * 1-5",
                timezone="America/New_York",
            ),
        ]
    web = serve_web(jobs=jobs)
    if SHOTS:
        seed_history(web)
    page = new_page(browser)
    sign_in(page, web, web.token("operate", "alice"))

    # Run it now from its page; a worker takes it.
    page.goto(web.url + "/ui/jobs/ticker")
    page.click("text=Run now")
    page.wait_for_url(web.url + "/ui/jobs/ticker")
    page.click("#live-job a.mono")  # the waiting run's page
    page.wait_for_url("**/ui/runs/*")
    run_url = page.url
    page.evaluate("window.__sameDocument = true")
    worker = web.start_cli("queue", "worker")

    # Status, progress and output change without a reload.
    page.locator("#live-run .status", has_text="running").wait_for()
    page.wait_for_function(
        "() => document.getElementById('output').textContent.includes('batch 3 ')"
    )
    first = progress_of(page)
    page.wait_for_function(
        "(first) => Number(document.querySelector('#live-run progress')?.getAttribute('value'))"
        " > first",
        arg=first,
    )
    page.wait_for_function(
        "() => document.getElementById('output').textContent.includes('batch 6 ')"
    )
    assert page.evaluate("window.__sameDocument") is True
    assert page.get_attribute("body", "data-live-state") == "live"
    assert HOSTILE in page.inner_text("#output")  # the job's markup, as text
    shoot(page, "run")
    if SHOTS:
        others = new_page(browser)
        sign_in(others, web, web.token("operate", "bob"))
        others.locator("#live-overview progress").wait_for()
        shoot(others, "overview")
        for name, path in (
            ("jobs", "/ui/jobs"),
            ("queue", "/ui/queue"),
            ("job", "/ui/jobs/backup"),
        ):
            others.goto(web.url + path)
            shoot(others, name)
        others.context.close()

    page.click("#live-run button:has-text('Stop')")
    page.wait_for_url(run_url)
    page.locator("#live-run .status", has_text="stopped").wait_for()
    assert page.locator("#live-run button").count() == 0
    worker.wait(timeout=60)  # the queue is empty: the worker is done (1: its run failed)
    assert "stopped" in web.cli("queue", "show", run_url.rsplit("/", 1)[1]).stdout
    assert page.dialogs == []
    page.context.close()


def test_pause_and_resume_the_queue(serve_web, browser):
    web = serve_web()
    page = new_page(browser)
    sign_in(page, web, web.token("operate"))
    page.goto(web.url + "/ui/queue")
    page.click("#live-queue button:has-text('Pause')")
    page.locator("#live-queue .state", has_text="Paused").wait_for()
    assert '"paused": true' in web.cli("status", "--json").stdout
    page.click("#live-queue button:has-text('Resume')")
    page.locator("#live-queue .state", has_text="Taking runs").wait_for()
    assert '"paused": false' in web.cli("status", "--json").stdout
    page.context.close()


def test_a_paused_queue_shows_live_on_the_page(serve_web, browser):
    """Pause and resume from the host: the open queue page follows without a reload."""
    web = serve_web()
    page = new_page(browser)
    sign_in(page, web, web.token("operate"))
    page.goto(web.url + "/ui/queue")
    page.locator("body[data-live-state='live']").wait_for()
    assert web.cli("queue", "pause").returncode == 0
    page.locator("#live-queue .state", has_text="Paused").wait_for()
    page.locator("#live-queue button:has-text('Resume')").wait_for()
    assert web.cli("queue", "resume").returncode == 0
    page.locator("#live-queue .state", has_text="Taking runs").wait_for()
    page.context.close()


def test_a_read_token_sees_no_buttons_and_cannot_post(serve_web, browser):
    web = serve_web()
    run_id = web.cli("queue", "add", "--delay", "3600", "--", "true").stdout.strip()
    page = new_page(browser)
    sign_in(page, web, web.token("read"))
    for path in ("/ui/", "/ui/jobs", "/ui/jobs/nightly", "/ui/queue", f"/ui/runs/{run_id}"):
        page.goto(web.url + path)
        assert page.locator("main button").count() == 0, path
        assert page.locator("main form").count() == 0, path
    csrf = page.get_attribute("header input[name=csrf]", "value")
    for path in ("/ui/queue/pause", f"/ui/runs/{run_id}/cancel", "/ui/jobs/nightly/run"):
        answer = page.request.post(web.url + path, form={"csrf": csrf})
        assert answer.status == 403, path
    assert web.cli("queue", "list", "--json").stdout.count(run_id) == 1  # still waiting
    page.context.close()


def test_names_and_output_with_markup_render_as_text(serve_web, browser):
    web = serve_web()
    added = web.cli("queue", "add", "--label", HOSTILE, "--", "echo", f"said {HOSTILE}")
    run_id = added.stdout.strip()
    assert web.cli("queue", "run").returncode == 0
    page = new_page(browser)
    sign_in(page, web, web.token("read"))
    page.goto(f"{web.url}/ui/runs/{run_id}")
    page.get_by_text(f"said {HOSTILE}").wait_for()
    assert page.locator("#live-run").get_by_text(HOSTILE, exact=True).count() >= 1  # the label
    page.goto(web.url + "/ui/")
    page.locator("#live-overview").wait_for()
    page.goto(web.url + "/ui/queue")
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    page.context.close()
